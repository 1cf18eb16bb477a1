"""The seed-spread command: per-seed copies of the project and the claims compared across them."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from r1interp import readme, seeds
from r1interp.errors import ArtifactError

DIFF_FIELDS = ["comparison", "statistic", "mean_a", "mean_b", "difference", "ci_low", "ci_high", "n_a", "n_b"]


def _write_reports(
    root: Path,
    *,
    ffl: float,
    think: float,
    carry_drop: float,
    ari: float,
    steer_ok: bool,
    organism_seed: int,
    reasoner: float = 1.0,
    flawed: tuple[float, float] = (0.0, 0.99),  # the flaw group, the lowest other group
) -> None:
    """The few report files the claims read, with chosen values (CIs +- 0.05 around each difference)."""
    (root / "reports/motifs/compare").mkdir(parents=True, exist_ok=True)
    (root / "reports/metrics").mkdir(parents=True, exist_ok=True)
    with open(root / "reports/motifs/compare/differences.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, DIFF_FIELDS)
        w.writeheader()
        for comparison, d in (("reasoner_vs_base", ffl), ("think_vs_answer", think)):
            w.writerow(
                {
                    "comparison": comparison,
                    "statistic": "coherent_fraction",
                    "mean_a": 0.5 + d,
                    "mean_b": 0.5,
                    "difference": d,
                    "ci_low": d - 0.05,
                    "ci_high": d + 0.05,
                    "n_a": 10,
                    "n_b": 10,
                }
            )
    spec = [
        {"size": 50.0, "drop_add_carry": 0.9, "drop_add_no_carry": 0.9, "random_drop_add_carry": 0.9},
        {"size": 300.0, "drop_add_carry": carry_drop, "drop_add_no_carry": 0.08, "random_drop_add_carry": 0.02},
    ]
    (root / "reports/metrics/interventions.json").write_text(json.dumps({"ablation_specificity": spec}))
    (root / "reports/metrics/clusters.json").write_text(json.dumps({"kmeans": {"ari_vs_true_step_types": ari}}))
    techniques = ("steer", "feature_steer", "neuron_edit", "cluster_finetune")
    verdicts = {t: {"meets_bar": (steer_ok and t == "steer") or t == "feature_steer"} for t in techniques}
    arms: dict[str, dict] = {t: {"lift": {"steer": 0.9, "feature_steer": 0.8}.get(t, 0.1)} for t in techniques}
    acc = {"flaw": flawed[0], "add_carry": 1.0, "add_no_carry": flawed[1], "mul": 0.97}
    arms["unmodified"] = {g: {"accuracy": a, "ci": [a - 0.05, a], "n": 100} for g, a in acc.items()} | {"lift": 0.0}
    localise = {
        "precision_at_16": 0.9,
        "selective_share": 0.6,
        "features": {"precision_at_16": 0.75 if steer_ok else 0.06, "selective_share": 0.03},
    }
    (root / "reports/metrics/flaw.json").write_text(
        json.dumps({"arms": arms, "verdicts": verdicts, "localise": localise})
    )
    organism = {"reasoner": {"accuracy": {"add": reasoner, "mul": reasoner, "overall": reasoner}}}
    (root / "reports/metrics/organism.json").write_text(json.dumps(organism))
    (root / "params.yaml").write_text(yaml.safe_dump({"organism": {"seed": organism_seed, "layers": 4}, "flaw": {}}))


@pytest.fixture
def three_seeds(tmp_path: Path) -> Path:
    _write_reports(tmp_path, ffl=0.31, think=-0.2, carry_drop=0.9, ari=0.58, steer_ok=True, organism_seed=0)
    _write_reports(
        tmp_path / ".seeds/seed-1", ffl=0.2, think=0.01, carry_drop=0.4, ari=0.61, steer_ok=True, organism_seed=1
    )
    _write_reports(
        tmp_path / ".seeds/seed-2",
        ffl=0.26,
        think=-0.1,
        carry_drop=0.3,
        ari=0.45,
        steer_ok=False,
        organism_seed=2,
        reasoner=0.95,  # at the bar: competent
        flawed=(0.6, 0.95),  # the flaw group at its bar: not on target
    )
    return tmp_path


def test_collect_reports_every_claim_per_seed_with_its_verdict(three_seeds: Path):
    out = seeds.collect([1, 2], root=three_seeds)
    assert out["seeds"] == [0, 1, 2] and out["varied"] == "organism.seed"
    claims = {c["name"]: c for c in out["claims"]}
    assert list(claims) == [c.name for c in seeds.CLAIMS]
    ffl = claims["ffl_reasoner_vs_base"]
    assert ffl["values"] == {"0": 0.31, "1": 0.2, "2": 0.26} and ffl["holds_in_every_seed"] and ffl["holds_in"] == 3
    assert ffl["mean"] == pytest.approx(0.2567, abs=1e-4) and ffl["sd"] == pytest.approx(0.0551, abs=1e-4)
    assert (ffl["min"], ffl["max"]) == (0.2, 0.31)
    competent = claims["reasoner_competent"]
    assert competent["values"] == {"0": 1.0, "1": 1.0, "2": 0.95} and competent["holds_in_every_seed"]
    target = claims["flawed_organism_on_target"]  # the lowest other group shown; seed 2's flaw group is at 0.60
    assert target["values"] == {"0": 0.97, "1": 0.97, "2": 0.95}
    assert target["holds"] == {"0": True, "1": True, "2": False}
    think = claims["ffl_think_vs_answer"]  # seed 1: CI [-0.04, 0.06] includes 0
    assert think["holds"] == {"0": True, "1": False, "2": True} and not think["holds_in_every_seed"]
    # specificity margin at the largest size: carry drop - max(random drop, no-carry drop); the bar is 0.30
    ablation = claims["carry_ablation_specificity"]
    assert ablation["values"] == {"0": 0.82, "1": 0.32, "2": 0.22}
    assert ablation["holds"] == {"0": True, "1": True, "2": False}
    assert claims["cluster_ari"]["holds"] == {"0": True, "1": True, "2": False}  # ARI >= 0.5
    assert (
        claims["fix_steer"]["holds"] == {"0": True, "1": True, "2": False} and claims["fix_steer"]["values"]["0"] == 0.9
    )
    assert claims["fix_neuron_edit"]["holds_in"] == 0
    features, neurons = claims["localise_features"], claims["localise_neurons"]  # precision at top / share
    assert features["values"] == {"0": 25.0, "1": 25.0, "2": 2.0} and features["holds_in_every_seed"]  # 2x: holds
    assert neurons["values"] == {"0": 1.5, "1": 1.5, "2": 1.5} and neurons["holds_in"] == 0
    feature_steer = claims["fix_feature_steer"]
    assert feature_steer["holds_in_every_seed"] and feature_steer["values"] == {"0": 0.8, "1": 0.8, "2": 0.8}


def test_collect_refuses_a_seed_copy_with_other_params(three_seeds: Path):
    copy = three_seeds / ".seeds/seed-2/params.yaml"
    copy.write_text(yaml.safe_dump({"organism": {"seed": 2, "layers": 8}, "flaw": {}}))
    with pytest.raises(ArtifactError, match=r"seed-2: its params differ from params.yaml beyond organism.seed"):
        seeds.collect([1, 2], root=three_seeds)
    with pytest.raises(ArtifactError, match=r"seed-3 is missing") as info:
        seeds.collect([3], root=three_seeds)
    assert info.value.hint == "run `python -m r1interp.seeds run --seeds 3`"


def test_readme_table_is_generated_from_the_spread(three_seeds: Path):
    spread = seeds.collect([1, 2], root=three_seeds)
    lines = readme.seed_spread(readme.Sources(three_seeds, {readme.SEEDS_SPREAD: spread}))
    assert lines[2] == "| claim | seed 0 | seed 1 | seed 2 | mean (sd) | holds in |"
    think = next(line for line in lines if line.startswith("| the reasoner's think graphs"))
    assert think.endswith("| -0.200 | 0.010 (no) | -0.100 | -0.097 (0.105) | 2 of 3 |")
    ffl = next(line for line in lines if line.startswith("| the reasoner's FFLs"))
    assert ffl.endswith("| 0.310 | 0.200 | 0.260 | 0.257 (0.055) | every seed |")


def test_one_seed_has_no_spread(three_seeds: Path):
    out = seeds.collect([0], root=three_seeds)
    assert out["seeds"] == [0] and all(math.isnan(c["sd"]) for c in out["claims"])


def test_prepare_copies_the_project_without_outputs_and_changes_only_the_seed(tmp_path: Path):
    root = tmp_path / "project"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    (root / "params.yaml").write_text(yaml.safe_dump({"organism": {"seed": 0, "layers": 4}}))
    for rel in (
        "stages/x.py",
        "data/prompts/organism.json",
        "data/corpus/corpus.parquet",
        "reports/metrics/a.json",
        "models/lm/base/config.json",
        "dvc.lock",
    ):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    dest = seeds.prepare(7, root=root)
    assert dest == root / ".seeds/seed-7"
    assert yaml.safe_load((dest / "params.yaml").read_text()) == {"organism": {"seed": 7, "layers": 4}}
    assert (dest / "stages/x.py").read_text() == "stages/x.py" and (dest / "data/prompts/organism.json").is_file()
    for rel in ("data/corpus/corpus.parquet", "reports/metrics/a.json", "models/lm/base/config.json", "dvc.lock"):
        assert not (dest / rel).exists(), rel
    cache = subprocess.run(
        [sys.executable, "-m", "dvc", "cache", "dir"], cwd=dest, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert Path(cache) == (root / ".dvc/cache").resolve()
    assert subprocess.run(["git", "status", "--porcelain"], cwd=dest, capture_output=True, text=True).stdout == ""
    # a second prepare starts from scratch, and the copy never copies other seeds' copies
    (dest / "stale").write_text("x")
    again = seeds.prepare(8, root=root)
    assert not (again / ".seeds").exists() and not (root / ".seeds/seed-8/stale").exists()
