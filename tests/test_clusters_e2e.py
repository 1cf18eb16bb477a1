"""End-to-end: the `clusters` stage on the tiny pipeline (steps, clusters, taxonomy, maps)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import run

pytestmark = pytest.mark.slow


def test_clusters_stage_builds_a_taxonomy(pipeline_project: Path):
    project = pipeline_project
    run([sys.executable, "-m", "dvc", "repro", "clusters"], project)
    steps = pd.read_parquet(project / "data/clusters/steps.parquet")
    corpus = pd.read_parquet(project / "data/corpus/corpus.parquet")
    heldout = corpus[corpus["split"] == "heldout"]
    assert steps["problem_id"].nunique() == len(heldout)
    # every step of every trace, with the generator's step type as ground truth
    assert len(steps) == sum(len(s.split("|")) for s in heldout["step_types"])
    assert set(steps["true_type"]) <= {"column_sum", "column_sum_carry", "column_product", "column_product_carry", "final_carry"}
    metrics = json.loads((project / "reports/metrics/clusters.json").read_text())
    k = metrics["k"]
    assert 3 <= k <= 10 and set(steps["cluster_kmeans"]) == set(range(k))
    for algorithm in ("kmeans", "agglomerative"):
        assert -1 <= metrics[algorithm]["ari_vs_true_step_types"] <= 1 and metrics[algorithm]["bootstrap_ari_mean"] is not None
    tax = json.loads((project / "reports/clusters/taxonomy.json").read_text())
    assert len(tax["clusters"]) == k and sum(c["size"] for c in tax["clusters"]) == len(steps)
    assert all(c["examples"] and c["characteristic_features"] and c["name"] for c in tax["clusters"])
    trans = pd.read_csv(project / "reports/clusters/transitions.csv")
    assert trans.groupby("from")["probability"].sum().round(6).eq(1).all()
    for png in ("layer_map.png", "problem_feature_map.png", "transitions.png", "tree.png"):
        assert (project / "reports/clusters" / png).read_bytes()[:4] == b"\x89PNG"
