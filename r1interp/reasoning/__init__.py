"""Reasoning analysis: steps of `<think>` traces, their feature profiles, clusters and taxonomy."""
