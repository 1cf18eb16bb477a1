"""The last good outputs survive a bad param, a bad input file and a killed stage (real `dvc repro` in a copy of
the tiny pipeline). DVC deletes a stage's outputs before running it unless they are `persist`; our stages
replace them atomically, so with `persist` a failure keeps the previous ones, and `dvc status` stays clean."""

from __future__ import annotations

import hashlib
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
REPO = Path(__file__).resolve().parents[1]


def test_every_output_of_every_stage_is_persist():
    """Without `persist`, DVC deletes an output before the stage runs: a failing run would lose it."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    lost = []
    for name, stage in stages.items():
        body = stage.get("do", stage)
        for kind in ("outs", "metrics", "plots"):
            for out in body.get(kind) or []:
                path, opts = (out, {}) if isinstance(out, str) else next(iter(out.items()))
                if not (opts or {}).get("persist"):
                    lost.append(f"{name}: {path}")
    assert lost == []


def _digest(root: Path, paths: list[str]) -> dict[str, str]:
    """sha256 of every file under `paths` (files or folders), by relative path."""
    out = {}
    for rel in paths:
        target = root / rel
        files = [target] if target.is_file() else sorted(p for p in target.rglob("*") if p.is_file())
        assert files, f"{rel} is missing or empty"
        for f in files:
            out[f.relative_to(root).as_posix()] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def project(pipeline_project, tmp_path_factory) -> Path:
    return copied_project(pipeline_project, tmp_path_factory.mktemp("keep-outputs") / "project")


def _with_params(project: Path, change, target: str) -> subprocess.CompletedProcess:
    """`dvc repro TARGET` under changed params; the good params.yaml is put back afterwards. (A target: the stages
    the shared pipeline has not built, such as `clusters`, are no business of these tests.)"""
    path = project / "params.yaml"
    good = path.read_text()
    data = yaml.safe_load(good)
    change(data)
    try:
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return run(DVC + ["repro", target], project, check=False)
    finally:
        path.write_text(good)


def _status_clean(project: Path, *targets: str) -> None:
    status = run(DVC + ["status", *targets], project).stdout
    assert "up to date" in status, status


@pytest.mark.slow
def test_a_bad_param_keeps_a_report_folder_and_its_metrics(project: Path):
    kept = ["reports/motifs/compare", "reports/metrics/compare.json"]
    before = _digest(project, kept)
    proc = _with_params(project, lambda d: d["compare"].__setitem__("bootstrap", "lots"), "compare")
    assert proc.returncode != 0
    assert "error: params.yaml: compare.bootstrap: expected an integer, got str 'lots'" in proc.stdout + proc.stderr
    assert _digest(project, kept) == before
    _status_clean(project, "compare")


@pytest.mark.slow
def test_a_malformed_reference_graph_is_one_line_and_keeps_the_motif_tables(project: Path):
    kept = ["reports/motifs/tables", "reports/metrics/motifs.json"]
    before = _digest(project, kept)
    bad = project / "data" / "reference" / "broken.json"
    cases = [(b'{"nodes": [', "data/reference/broken.json: not valid JSON"),
             (b'{"nodes": [], "links": []}', "data/reference/broken.json: graph has no nodes"),
             (b"[1, 2]", "data/reference/broken.json: top level is list")]  # fmt: skip
    try:
        for content, message in cases:
            bad.write_bytes(content)
            proc = _with_params(
                project, lambda d: d["motifs"].__setitem__("reference_graphs", ["data/reference/broken.json"]), "motifs"
            )
            out = proc.stdout + proc.stderr
            assert proc.returncode != 0 and f"error: {message}" in out and "Traceback" not in out, out[-2000:]
        many = {"nodes": [{"node_id": f"n{i}"} for i in range(11)], "links": []}
        bad.write_text(json.dumps(many))
        proc = _with_params(project, lambda d: (d["motifs"].__setitem__("reference_graphs", ["data/reference/broken.json"]),
                                                d["motifs"].__setitem__("max_graph_nodes", 10)), "motifs")  # fmt: skip
        assert (
            "error: data/reference/broken.json: 11 nodes is over the motifs.max_graph_nodes limit of 10"
            in proc.stdout + proc.stderr
        )
    finally:
        bad.unlink(missing_ok=True)
    proc = _with_params(project, lambda d: d["motifs"].__setitem__("reference_graphs", ["/etc/passwd"]), "motifs")
    assert (
        "error: params.yaml: motifs.reference_graphs[0]: '/etc/passwd' must be a relative path to a .json file"
        in proc.stdout + proc.stderr
    )
    assert _digest(project, kept) == before
    _status_clean(project, "motifs")


@pytest.mark.slow
def test_a_killed_training_keeps_the_coders_and_the_complete_training_log(project: Path):
    kept = ["models/transcoders/train/all", "reports/train/reasoner-all", "reports/train/base-all"]
    before = _digest(project, kept)
    train_dir = project / "models" / "transcoders" / "train"
    live_dir = project / "reports" / "train"
    proc = subprocess.Popen(
        DVC + ["repro", "--force", "--single-item", "train@all"],
        cwd=project,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        # Wait until training writes its dvclive log (temp folder named by the stage's pid), then kill the stage.
        deadline = time.monotonic() + 240
        temp_logs: list[Path] = []
        while time.monotonic() < deadline and proc.poll() is None:
            temp_logs = [p for p in live_dir.glob(".*.tmp-*") if any(p.rglob("*.tsv"))]
            if temp_logs:
                break
            time.sleep(0.2)
        assert temp_logs, "training never started writing its log"
        stage_pid = int(temp_logs[0].name.split(".tmp-")[1].split("-")[0])
        os.kill(stage_pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0, out[-2000:]
    assert _digest(project, kept) == before  # coders and the complete logs of the last good run
    debris = sorted(p.name for p in [*train_dir.glob(".all.tmp-*"), *live_dir.glob(".*.tmp-*")])
    assert debris, "the killed stage left no temp folders: the test did not kill it mid-write"
    _status_clean(project, "train@all")
    # The next run of the stage removes what the killed one left.
    run(DVC + ["repro", "--force", "--single-item", "train@all"], project)
    assert sorted(p.name for p in [*train_dir.glob(".all.tmp-*"), *live_dir.glob(".*.tmp-*")]) == []
    _status_clean(project, "train@all")
