"""Rebuilds mean something: the whole tiny pipeline, built twice from scratch under two different
instruction-set and thread settings, gives byte-identical outputs (every hash in dvc.lock equal).

Build A runs with this machine's own choices: it is the fully built shared project of conftest.py
(`full_project`: the shared tiny pipeline with every remaining stage built), copied. Build B emulates another
CPU as far as one machine can: MKL dispatching to its SSE4.2 kernels, numpy without its AVX2 loops, and a different core count (other
thread-pool sizes in the environment). Without the pins of r1interp/numerics.py those change the bytes
(tests/test_numerics.py shows the kernels matter); with them, every output must be equal. torch's and
OpenBLAS's kernel choices cannot be emulated from an environment variable without conflicting with their
pins (both are pinned to their AVX2 kernels; another value is refused, test_numerics), and an AVX2-only
machine cannot show the AVX-512 side: that rests on the pins and on the check that torch runs the pinned
kernels before any stage starts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import _env, copied_project, make_project
from r1interp.contract import import_closure, load_stages

OTHER_CPU = {
    "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",  # numpy on a CPU without AVX2
    "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",  # MKL there
    "OMP_NUM_THREADS": "3",  # another core count: thread pools sized by the machine
    "OPENBLAS_NUM_THREADS": "3",
    "MKL_NUM_THREADS": "3",
}


def _repro(project: Path, extra: dict[str, str]) -> None:
    env = {k: v for k, v in _env().items() if k not in OTHER_CPU}
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "repro"], cwd=project, env={**env, **extra}, capture_output=True, text=True
    )
    assert proc.returncode == 0, f"dvc repro failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def hashed_outputs(project: Path) -> dict[str, str]:
    """`stage: path` -> md5 of every output recorded in dvc.lock (outs, metrics and plots alike)."""
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    return {
        f"{stage}: {out['path']}": out["md5"]
        for stage, entry in lock["stages"].items()
        for out in entry.get("outs", [])
    }


@pytest.fixture(scope="module")
def twin_builds(request, tmp_path_factory) -> tuple[Path, Path]:
    b = make_project(tmp_path_factory.mktemp("repro-b") / "p")
    _repro(b, OTHER_CPU)  # first: meanwhile the other worker builds the shared pipeline, then the full project
    # asked for only now: as a fixture argument it would be resolved first, and this worker would wait idle
    full_project = request.getfixturevalue("full_project")
    return copied_project(full_project, tmp_path_factory.mktemp("repro-a") / "p"), b


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
    assert {"organism-base.json", "train-all.json", "graphs.json", "motifs.json", "interventions.json"} <= set(
        timing_files
    )
    ignored = subprocess.run(["git", "check-ignore", "-q", "reports/timings/motifs.json"], cwd=a)
    assert ignored.returncode == 0, "reports/timings/ must be ignored by git"


def _stale(project: Path) -> set[str]:
    """Stage names `dvc status` reports as changed."""
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "status", "--json"],
        cwd=project,
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(proc.stdout or "{}"))


@pytest.mark.slow
def test_editing_an_imported_module_makes_exactly_its_stages_stale(twin_builds):
    """The stage contract seen through DVC: a comment added to a module marks the stages whose scripts
    import it (directly or not) and no other."""
    a, _ = twin_builds
    assert _stale(a) == set()
    edited = "r1interp/reasoning/steps.py"
    importers = {
        stage.name
        for stage in load_stages(a / "dvc.yaml")
        if stage.script and edited in import_closure(a / stage.script, a / "r1interp")
    }
    # the stages known to use step labels, and not the ones before them in the graph
    assert {"clusters", "interventions"} <= importers
    assert not importers & {"corpus", "organism@base", "organism@reasoner", "train@all", "compare"}
    module = a / edited
    original = module.read_text()
    try:
        module.write_text(original + "\n# edited\n")
        assert _stale(a) == importers
    finally:
        module.write_text(original)
    assert _stale(a) == set()


@pytest.mark.slow
def test_threads_rerun_the_pipeline_and_runtime_knobs_rerun_nothing(twin_builds):
    """model.threads splits floating-point sums differently (measured: other organism weights), so it is a
    tracked parameter; knobs that cannot change results (workers, client concurrency, timeouts) are not —
    only the report, whose overview page shows the whole params file, is rebuilt for them."""
    a, _ = twin_builds
    params_file = a / "params.yaml"
    original = params_file.read_text()
    data = yaml.safe_load(original)
    try:
        knobs = yaml.safe_load(original)
        knobs["motifs"]["workers"] += 1
        knobs["motifs"]["max_seconds_per_graph"] *= 2
        knobs["labels"]["claude"]["concurrency"] += 1
        knobs["labels"]["claude"]["timeout_s"] *= 2
        knobs["model"]["device"] = "cpu"
        params_file.write_text(yaml.safe_dump(knobs, sort_keys=False))
        assert _stale(a) == {"report"}
        data["model"]["threads"] += 1
        params_file.write_text(yaml.safe_dump(data, sort_keys=False))
        stale = _stale(a)
        assert {"organism@base", "train@all", "graphs", "interventions"} <= stale
    finally:
        params_file.write_text(original)
