"""End-to-end: the `clusters` stage on the tiny pipeline (steps, clusters, taxonomy, maps)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from helpers import copied_project, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(full_project, tmp_path_factory) -> Path:
    """A copy of the fully built shared project: `dvc repro` built `clusters` and `interventions` there."""
    return copied_project(full_project, tmp_path_factory.mktemp("clusters") / "project")


def test_clusters_stage_builds_a_taxonomy(project: Path):
    steps = pd.read_parquet(project / "data/clusters/steps.parquet")
    corpus = pd.read_parquet(project / "data/corpus/corpus.parquet")
    heldout = corpus[corpus["split"] == "heldout"]
    assert steps["problem_id"].nunique() == len(heldout)
    # every step of every trace, with the generator's step type as ground truth
    assert len(steps) == sum(len(s.split("|")) for s in heldout["step_types"])
    assert set(steps["true_type"]) <= {
        "column_sum",
        "column_sum_carry",
        "column_product",
        "column_product_carry",
        "final_carry",
    }
    metrics = json.loads((project / "reports/metrics/clusters.json").read_text())
    k = metrics["k"]
    assert 3 <= k <= 10 and set(steps["cluster_kmeans"]) == set(range(k))
    from sklearn.metrics import adjusted_rand_score

    for algorithm in ("kmeans", "agglomerative"):
        # the reported ARI is the one of the written clusters against the generator's step types
        ari = round(float(adjusted_rand_score(steps["true_type"], steps[f"cluster_{algorithm}"])), 4)
        assert metrics[algorithm]["ari_vs_true_step_types"] == ari
        assert set(steps[f"cluster_{algorithm}"]) == set(range(k))
        boot = metrics[algorithm]
        assert -1 <= boot["bootstrap_ari_min"] <= boot["bootstrap_ari_mean"] <= 1
    tax = json.loads((project / "reports/clusters/taxonomy.json").read_text())
    assert len(tax["clusters"]) == k and sum(c["size"] for c in tax["clusters"]) == len(steps)
    assert all(c["examples"] and c["characteristic_features"] and c["name"] for c in tax["clusters"])
    trans = pd.read_csv(project / "reports/clusters/transitions.csv")
    assert trans.groupby("from")["probability"].sum().round(6).eq(1).all()
    for png in ("layer_map.png", "problem_feature_map.png", "transitions.png", "tree.png"):
        assert (project / "reports/clusters" / png).read_bytes()[:4] == b"\x89PNG"


def test_interventions_stage_measures_every_arm_with_controls(project: Path):
    results = pd.read_csv(project / "reports/interventions/results.csv")
    groups = {"add_carry", "add_no_carry", "mul_carry", "ood_add", "ood_mul"}
    assert groups <= set(results["group"])
    arms = set(results["intervention"])
    assert {
        "baseline",
        "ablation",
        "ablation_random",
        "weight_edit",
        "weight_edit_random",
        "steering",
        "steering_random",
    } <= arms
    assert set(results[results["model"] == "base"]["intervention"]) == {"baseline", "steering", "steering_random"}
    # every row: n, accuracy inside its 95% interval
    assert (results["n"] > 0).all() and (results["correct"] <= results["n"]).all()
    assert (
        (results["ci_low"] <= results["accuracy"] + 1e-9) & (results["accuracy"] <= results["ci_high"] + 1e-9)
    ).all()
    # each ablation size has its random control, on the same groups
    for size in (4, 16):
        for name in ("ablation", "ablation_random"):
            assert set(results[(results["intervention"] == name) & (results["size"] == size)]["group"]) == set(
                results[results["intervention"] == "baseline"]["group"]
            )
    ood = results[results["group"] == "ood_add"]
    assert (ood["n"] == 6).all()
    ranked = pd.read_csv(project / "reports/interventions/ranked_features.csv")
    assert len(ranked) == 16 and ranked["effect"].is_monotonic_decreasing
    metrics = json.loads((project / "reports/metrics/interventions.json").read_text())
    assert metrics["feature_ranking"]["target_clusters"] and metrics["feature_ranking"]["contrast_clusters"]
    assert not set(metrics["feature_ranking"]["target_clusters"]) & set(metrics["feature_ranking"]["contrast_clusters"])
    assert [a["size"] for a in metrics["ablation"]] == [4.0, 16.0]
    assert {g["group"] for g in metrics["ood_improvement"]} == {"ood_add", "ood_mul"}
    ft = metrics["finetune"]
    # the tiny organisms fail enough training problems: the fine-tune arm runs (a skip would hide it)
    assert "skipped" not in ft, ft.get("skipped")
    assert set(ft["finetune"]["groups"]) == set(metrics["baseline"])
    assert set(ft["finetune_random"]["groups"]) == set(metrics["baseline"])
    for name in ("finetune", "finetune_random"):
        rows = results[(results["intervention"] == name) & (results["model"] == "reasoner")]
        assert set(rows["group"]) == set(results[results["intervention"] == "baseline"]["group"])
        assert rows["gold_nll"].notna().all() and (rows["n"] > 0).all()
    for png in ("ablation_size.png", "steering_alpha.png", "edits_finetune.png"):
        assert (project / "reports/interventions" / png).read_bytes()[:4] == b"\x89PNG"
    # a bad value fails before any work, naming the key and what is allowed, and leaves the results alone
    before = (project / "reports/interventions/results.csv").read_bytes()
    bad = (project / "params.yaml").read_text().replace("target_step_type: final_carry", "target_step_type: borrow")
    (project / "bad.yaml").write_text(bad)
    out = run([sys.executable, "stages/interventions.py", "--params", "bad.yaml"], project, check=False)
    assert out.returncode == 2 and "interventions.target_step_type: 'borrow' is not allowed" in out.stderr
    assert "column_sum_carry" in out.stderr
    assert (project / "reports/interventions/results.csv").read_bytes() == before
