"""Rebuilds mean something: the whole tiny pipeline, built twice from scratch under two different
instruction-set and thread settings, gives byte-identical outputs (every hash in dvc.lock equal).

Build A runs with this machine's own choices. Build B emulates another CPU: what a machine without
AVX2 would make torch, numpy and MKL choose (their generic / SSE4.2 kernels) and a different core count
(other thread-pool sizes in the environment). Without the pins of r1interp/numerics.py, B's bytes
differ from A's from `organism@base` on (tests/test_numerics.py shows the kernels matter); with them,
every output must be equal. OpenBLAS's kernel choice cannot be emulated here: it is pinned to the
Haswell kernels, and a different value is refused (test_numerics).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import _env, make_project

OTHER_CPU = {
    "ATEN_CPU_CAPABILITY": "default",  # torch on a CPU without AVX2
    "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",  # numpy there
    "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",  # MKL there
    "OMP_NUM_THREADS": "3",  # another core count: thread pools sized by the machine
    "OPENBLAS_NUM_THREADS": "3",
    "MKL_NUM_THREADS": "3",
}


def _repro(project: Path, extra: dict[str, str]) -> None:
    env = {k: v for k, v in _env().items() if k not in OTHER_CPU}
    proc = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=project, env={**env, **extra},
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"dvc repro failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def hashed_outputs(project: Path) -> dict[str, str]:
    """`stage: path` -> md5 of every output recorded in dvc.lock (outs, metrics and plots alike)."""
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    return {f"{stage}: {out['path']}": out["md5"] for stage, entry in lock["stages"].items() for out in entry.get("outs", [])}


@pytest.fixture(scope="module")
def twin_builds(tmp_path_factory) -> tuple[Path, Path]:
    a = make_project(tmp_path_factory.mktemp("repro-a") / "p")
    b = make_project(tmp_path_factory.mktemp("repro-b") / "p")
    _repro(a, {})
    _repro(b, OTHER_CPU)
    return a, b


@pytest.mark.slow
def test_every_output_is_byte_identical_under_another_instruction_set(twin_builds):
    a, b = twin_builds
    first, second = hashed_outputs(a), hashed_outputs(b)
    assert len(first) >= 30 and set(first) == set(second)
    differ = sorted(k for k in first if first[k] != second[k])
    assert not differ, f"{len(differ)} of {len(first)} outputs differ between the builds: {differ}"


@pytest.mark.slow
def test_timings_stay_beside_the_hashed_outputs(twin_builds):
    """Times differ between the builds, so they live in reports/timings/ (no DVC output, ignored by git)."""
    a, _ = twin_builds
    lock = (a / "dvc.lock").read_text()
    assert "reports/timings" not in lock
    timing_files = sorted(p.name for p in (a / "reports" / "timings").glob("*.json"))
    assert {"organism-base.json", "train-all.json", "graphs.json", "motifs.json", "interventions.json"} <= set(timing_files)
    ignored = subprocess.run(["git", "check-ignore", "-q", "reports/timings/motifs.json"], cwd=a)
    assert ignored.returncode == 0, "reports/timings/ must be ignored by git"


@pytest.mark.slow
def test_changing_threads_is_tracked_because_it_changes_bytes(twin_builds):
    """model.threads splits floating-point sums differently (measured: other organism weights), so it stays
    a tracked parameter of the stages that compute with torch; pure runtime knobs are not tracked."""
    a, _ = twin_builds
    declared = yaml.safe_load((a / "dvc.yaml").read_text())["stages"]
    tracks = {name for name, stage in declared.items()
              if any("model.threads" == p or p == "model" for p in stage.get("do", stage).get("params", []) if isinstance(p, str))}
    assert "organism" in tracks and "train" in tracks
    for knob in ("motifs.workers", "labels.claude.concurrency", "train.log_every"):
        assert not any(knob in (stage.get("do", stage).get("params") or []) for stage in declared.values()), knob
    assert os.environ.get("R1INTERP_NUMERICS", "portable") == "portable"
