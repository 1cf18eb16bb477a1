"""End-to-end: train -> transcoders -> evaluate, an interrupted run, distributed training, and a
2x2 sweep as DVC experiments, on the tiny params profile in a temp git repo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers import _env, copied_project, run

DVC = [sys.executable, "-m", "dvc"]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(pipeline_project, tmp_path_factory) -> Path:
    """A copy of the shared tiny pipeline (built through `evaluate` and beyond): this module changes it."""
    return copied_project(pipeline_project, tmp_path_factory.mktemp("tc-project") / "project")


def test_layouts_and_metrics(project: Path):
    from r1interp.transcoders import load_coders
    from r1interp.transcoders.layout import read_circuit_tracer_config

    coders = load_coders(project / "models/transcoders/reasoner/sparsify")
    assert sorted(coders) == [0, 1]
    config = read_circuit_tracer_config(project / "models/transcoders/reasoner/circuit-tracer")
    assert len(config["transcoders"]) == 2 and all(Path(p).is_file() for p in config["transcoders"])
    metrics = json.loads((project / "reports/metrics/transcoders.json").read_text())["reasoner"]
    assert set(metrics["layers"]) == {"0", "1"}
    for entry in metrics["layers"].values():
        assert {"all", "think", "answer", "fvu", "l0", "dead_pct"} <= set(entry)
        assert entry["think"]["tokens"] > 0 and entry["answer"]["tokens"] > 0
        assert 0 < entry["l0"] <= 8
    # per-step training curves went to dvclive, not wandb
    curves = list((project / "reports/train/reasoner-all").rglob("*.tsv"))
    assert any("fvu" in str(c) for c in curves) and any("dead_pct" in str(c) for c in curves)


def test_interrupted_training_is_never_trusted(project: Path):
    out = project / "models/transcoders/train/all/reasoner/layers.0.mlp/sae.safetensors"
    before = out.read_bytes()
    params = project / "params.yaml"
    good = params.read_text()
    data = yaml.safe_load(good)
    data["train"]["seed"] = 1
    data["train"]["batch_size"] = 1  # many small steps: the run is still going when we kill it
    params.write_text(yaml.safe_dump(data, sort_keys=False))
    try:
        proc = subprocess.Popen(
            DVC + ["repro", "train@all"],
            cwd=project,
            env=_env(),
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        scratch = project / "models/transcoders/train"
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and not list(scratch.rglob(".*.training")):
            time.sleep(0.05)
        assert proc.poll() is None, "training finished before it could be interrupted"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        # the last complete checkpoint is untouched and dvc knows the stage must rerun
        assert out.read_bytes() == before
        status = run(DVC + ["status", "train@all"], project).stdout
        assert "changed" in status
    finally:
        params.write_text(good)
    # back to the committed params: the intact outputs match the lock again
    run(DVC + ["repro", "evaluate"], project)
    assert "up to date" in run(DVC + ["status", "evaluate", "--with-deps"], project).stdout


def test_distributed_training_with_two_cpu_ranks(project: Path, tmp_path: Path):
    data = yaml.safe_load((project / "params.yaml").read_text())
    data["train"]["distributed"] = {"enabled": True, "nproc": 2, "backend": "gloo"}
    dist_params = project / "params-dist.yaml"
    dist_params.write_text(yaml.safe_dump(data, sort_keys=False))
    try:
        run([sys.executable, "stages/train.py", "all", "--params", str(dist_params)], project)
        root = project / "models/transcoders/train/all/reasoner"
        assert sorted(p.name for p in root.iterdir()) == ["layers.0.mlp", "layers.1.mlp"]
        for hook in ("layers.0.mlp", "layers.1.mlp"):
            assert sorted(p.name for p in (root / hook).iterdir()) == ["cfg.json", "sae.safetensors"]
        summary = json.loads((project / "models/transcoders/train/all/training.json").read_text())
        assert summary["reasoner"]["world_size"] == 2
    finally:
        dist_params.unlink()
        run(DVC + ["checkout", "-f", "train@all"], project)


def test_sweep_as_dvc_experiments(project: Path):
    # one model keeps the sweep short (graphs.models must stay within train.models)
    run(
        DVC
        + [
            "exp",
            "run",
            "--queue",
            "evaluate",
            "-S",
            "train.expansion_factor=4",
            "-S",
            "train.k=4,8",
            "-S",
            "train.models=[reasoner]",
            "-S",
            "graphs.models=[reasoner]",
        ],
        project,
    )
    run(DVC + ["exp", "run", "--run-all"], project)
    shown = run(DVC + ["exp", "show", "--json"], project).stdout
    names = [n for n in json.dumps(json.loads(shown)).split('"name": ')[1:]]
    assert len(names) >= 2
    pareto = run([sys.executable, "-m", "r1interp.cli", "sweep", "pareto"], project)
    report = json.loads((project / "reports/sweep/pareto.json").read_text())
    swept = [p for p in report["points"] if p["params"].get("k") in (4, 8) and p["params"].get("expansion_factor") == 4]
    assert len({(p["params"]["k"], p["params"]["expansion_factor"]) for p in swept}) == 2
    assert report["front"] and (project / "reports/sweep/pareto.png").stat().st_size > 1000
    assert "Pareto front" in pareto.stdout
    branch = run(["git", "branch", "--show-current"], project).stdout.strip()
    by_params = {(p["params"]["k"], p["params"]["expansion_factor"]): p["name"] for p in swept if p["name"] != branch}
    diff = json.loads(
        run(DVC + ["metrics", "diff", by_params[(4, 4)], by_params[(8, 4)], "--all", "--json"], project).stdout
    )
    changed = diff["reports/metrics/transcoders.json"]
    assert changed["reasoner.summary.mean_l0"]["old"] < changed["reasoner.summary.mean_l0"]["new"]  # k=4 -> k=8
    chosen = next(p for p in swept if p["params"]["k"] == 4 and p["params"]["expansion_factor"] == 4)
    run([sys.executable, "-m", "r1interp.cli", "sweep", "apply", chosen["name"]], project)
    applied = yaml.safe_load((project / "params.yaml").read_text())["train"]
    assert (applied["k"], applied["expansion_factor"]) == (4, 4)
