"""Automatic interpretation of transcoder features: evidence, labelers, scorers, the Claude transport."""
