"""End-to-end: the `flawed-organism` and `flaw` stages on the tiny pipeline (real `dvc repro` in a copy)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from helpers import copied_project, run
from r1interp.flaw.experiment import TECHNIQUES, verdict

pytestmark = pytest.mark.slow
DVC = [sys.executable, "-m", "dvc"]
ARMS = [
    "unmodified",
    "steer",
    "steer_random",
    "feature_steer",
    "feature_steer_random",
    "neuron_edit",
    "neuron_edit_random",
    "cluster_finetune",
    "cluster_finetune_random",
    "unconstrained",
]


@pytest.fixture(scope="module")
def flawed_project(full_project: Path, tmp_path_factory) -> Path:
    """A copy of the fully built shared project, where `dvc repro` built `flawed-organism` and `flaw`. (That a
    rebuild gives the same bytes is test_reproducible_e2e's: that build agrees with the reference build on every
    output.)"""
    return copied_project(full_project, tmp_path_factory.mktemp("flaw") / "p")


def _params(project: Path) -> dict:
    return yaml.safe_load((project / "params.yaml").read_text())


def test_flaw_stage_reports_find_localise_and_every_repair_with_controls(flawed_project: Path):
    project = flawed_project
    per_group = _params(project)["flaw"]["repair"]["problems_per_group"]
    rows = pd.read_csv(project / "reports/flaw/repairs.csv")
    assert rows["arm"].tolist() == ARMS
    groups = ["flaw", "add_carry", "add_no_carry", "mul"]
    for g in groups:
        assert (rows[f"{g}_n"] == per_group).all()
        assert (
            (rows[f"{g}_ci_low"] <= rows[f"{g}_accuracy"] + 1e-9)
            & (rows[f"{g}_accuracy"] <= rows[f"{g}_ci_high"] + 1e-9)
        ).all()
        assert (rows[f"{g}_accuracy"] == rows[f"{g}_correct"] / per_group).all()
    base = rows.iloc[0]
    assert (rows["lift"].round(4) == (rows["flaw_accuracy"] - base["flaw_accuracy"]).round(4)).all()
    # params changed: the steering offset + gate, whole down_proj columns, all weights for the unconstrained control
    neurons = _params(project)["flaw"]["repair"]["neurons"]
    changed = dict(zip(rows["arm"], rows["params_changed"], strict=True))
    assert changed["steer"] == changed["steer_random"] == changed["feature_steer"] == 2 * neurons + 1
    assert changed["feature_steer_random"] <= changed["feature_steer"]  # as many alive features as that layer has
    assert changed["neuron_edit"] == changed["neuron_edit_random"] == neurons * 32  # organism.hidden (tiny)
    assert changed["unconstrained"] > 100 * changed["neuron_edit"]

    metrics = json.loads((project / "reports/metrics/flaw.json").read_text())
    assert metrics["applicable"] and metrics["pattern"] == "carry_through_nine"
    assert set(metrics["arms"]) == set(ARMS)
    for tech in TECHNIQUES:  # the verdicts follow from the table
        assert metrics["verdicts"][tech] == verdict(rows, tech, f"{tech}_random")
    assert metrics["meets_bar"] == [t for t in TECHNIQUES if metrics["verdicts"][t]["meets_bar"]]
    find = metrics["find"]
    assert (
        0
        < find["failing_problems"]
        <= find["discovery_problems"]
        == 2 * _params(project)["flaw"]["find"]["problems_per_task"]
    )
    flagged = find["flagged_group"]
    assert flagged["true_positive"] + flagged["false_negative"] == per_group  # every flaw-group problem has the pattern
    loc = metrics["localise"]
    assert sum(loc["layer_mass"].values()) == pytest.approx(1.0, abs=1e-3) and set(loc["layer_mass"]) == {"0", "1"}
    assert loc["neurons_ranked"] == 2 * 64  # layers x intermediate (tiny)
    neurons_csv = pd.read_csv(project / "reports/flaw/neurons.csv")
    assert len(neurons_csv) == 128 and neurons_csv["attribution"].abs().is_monotonic_decreasing
    assert loc["selective_share"] == round(loc["selective_neurons"] / 128, 4)
    by_feature = loc["features"]  # the reasoner's transcoders, every layer
    latents = 2 * 32 * _params(project)["train"]["expansion_factor"]  # layers x d_model x expansion (tiny)
    assert by_feature["features_ranked"] == latents and set(by_feature["layer_mass"]) == {"0", "1"}
    assert 0 <= by_feature["selective_features"] <= latents and by_feature[f"precision_at_{neurons}"] <= 1
    features_csv = pd.read_csv(project / "reports/flaw/features.csv")
    assert list(features_csv.columns) == ["layer", "feature", "attribution", "positive_share", "auroc"]
    assert len(features_csv) == latents and features_csv["attribution"].abs().is_monotonic_decreasing
    assert (features_csv["attribution"] != 0).any()
    arms = json.loads((project / "reports/flaw/arms.json").read_text())
    steer = arms["steer"]
    assert len(steer["neurons"]) == neurons and set(steer["neurons"]).isdisjoint(arms["steer_random"]["neurons"])
    by_feature = arms["feature_steer"]  # the top features of the layer with the most feature attribution
    mass = metrics["localise"]["features"]["layer_mass"]
    assert by_feature["layer"] == int(max(mass, key=lambda k: mass[k])) == arms["feature_steer_random"]["layer"]
    ranked = pd.read_csv(project / "reports/flaw/features.csv")
    assert by_feature["features"] == sorted(ranked[ranked["layer"] == by_feature["layer"]]["feature"].head(neurons))
    assert (project / "reports/flaw/repairs.png").read_bytes()[:4] == b"\x89PNG"
    assert run(DVC + ["status", "flaw"], project).stdout.strip().endswith("up to date.")


def test_a_repair_budget_beyond_the_pattern_problems_fails_before_training(flawed_project: Path, tmp_path):
    project = copied_project(flawed_project, tmp_path / "p")
    log = json.loads((project / "models/flawed/training.json").read_text())
    params = _params(project)
    params["flaw"]["repair"]["examples"] = log["pattern_problems"] + 1
    params["flaw"]["organism"]["steps"] += 1  # the model must be retrained: the check has to come first
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    model_before = (project / "models/flawed/model.safetensors").read_bytes()
    proc = run(DVC + ["repro", "flawed-organism"], project, check=False)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        f"error: flaw.repair.examples: {log['pattern_problems'] + 1} corrected examples asked, the "
        f"training split has {log['pattern_problems']} problems with pattern 'carry_through_nine'; "
        f"allowed: 1..{log['pattern_problems']}"
    ], proc.stderr[-2000:]
    assert "organism flawed" not in proc.stderr + proc.stdout  # no training step ran
    assert (project / "models/flawed/model.safetensors").read_bytes() == model_before  # the last good model stays
