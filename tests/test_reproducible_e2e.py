"""Rebuilds mean something: the whole tiny pipeline, built from nothing on this machine with its own settings,
gives the same bytes as the reference build kept in the repository, which was built from nothing while emulating
another CPU (tests/reference_build.py: MKL on its SSE4.2 kernels, numpy without its AVX2 loops, other thread-pool
sizes), on whichever machine last rebuilt it.

The suite's build is conftest.py's `full_project` (the shared tiny pipeline with every remaining stage built), so
the guarantee costs no second build. Without the pins of r1interp/numerics.py the emulated CPU changes the bytes
(tests/test_numerics.py shows the kernels matter); with them, every output whose stage has the reference's code,
params and inputs must have the reference's hash. torch's and OpenBLAS's kernel choices cannot be emulated from an
environment variable without conflicting with their pins (both are pinned to their AVX2 kernels; another value is
refused, test_numerics), and an AVX2-only machine cannot show the AVX-512 side: that rests on the pins and on the
check that torch runs the pinned kernels before any stage starts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import REPO, _env, copied_project
from r1interp.contract import import_closure, load_stages
from reference_build import REFERENCE_LOCK, compare_with_reference, hashed_outputs


@pytest.fixture(scope="module")
def built(full_project, tmp_path_factory) -> Path:
    """A copy of the suite's own full build (this machine's settings), for the tests that edit it."""
    return copied_project(full_project, tmp_path_factory.mktemp("repro-a") / "p")


@pytest.mark.slow
def test_every_output_has_the_hash_of_the_reference_build_from_another_cpu(built):
    lock = yaml.safe_load((built / "dvc.lock").read_text())
    reference = yaml.safe_load(REFERENCE_LOCK.read_text())
    assert len(hashed_outputs(lock)) >= 30
    verdict = compare_with_reference(lock, reference)
    assert not verdict.not_reproducible, (
        f"{len(verdict.not_reproducible)} outputs differ from the reference build although their stages ran the "
        f"same code on the same params and inputs: {verdict.not_reproducible}"
    )
    assert not verdict.reference_outdated, (
        f"the reference build predates a change that alters {len(verdict.reference_outdated)} outputs "
        f"({verdict.reference_outdated}); if that change is meant to alter outputs, rebuild the reference: "
        "python tests/reference_build.py"
    )
    assert verdict.same == len(hashed_outputs(lock))


def _lock(**stages: dict) -> dict:
    return {"schema": "2.0", "stages": stages}


def _stage(code: str = "c1", x: int = 1, out: str = "o1", **more_outs: str) -> dict:
    outs = {"out": out} | more_outs
    return {
        "cmd": "python stages/s.py",
        "deps": [{"path": "stages/s.py", "hash": "md5", "md5": code, "size": 10}],
        "params": {"params.yaml": {"s.x": x}},
        "outs": [{"path": path, "hash": "md5", "md5": md5, "size": 1} for path, md5 in outs.items()],
    }


def test_the_same_inputs_with_another_output_are_not_reproducible():
    verdict = compare_with_reference(_lock(s=_stage(out="o2", log="l1")), _lock(s=_stage(log="l1")))
    assert (verdict.same, verdict.not_reproducible, verdict.reference_outdated) == (1, ["s: out"], [])


def test_changed_code_or_params_with_another_output_mean_an_outdated_reference():
    for changed in (_stage(code="c2", out="o2"), _stage(x=2, out="o2")):
        verdict = compare_with_reference(_lock(s=changed), _lock(s=_stage()))
        assert (verdict.same, verdict.not_reproducible, verdict.reference_outdated) == (0, [], ["s: out"])


def test_changed_code_that_keeps_the_bytes_matches():
    verdict = compare_with_reference(_lock(s=_stage(code="c2")), _lock(s=_stage()))
    assert (verdict.same, verdict.not_reproducible, verdict.reference_outdated) == (1, [], [])


def test_stages_and_outputs_on_one_side_only_mean_an_outdated_reference():
    verdict = compare_with_reference(_lock(s=_stage(), t=_stage()), _lock(s=_stage(), u=_stage()))
    assert verdict.reference_outdated == ["t (stage new)", "u (stage not built)"] and verdict.same == 1
    verdict = compare_with_reference(_lock(s=_stage(log="l1")), _lock(s=_stage(plot="p1")))
    assert verdict.reference_outdated == ["s: log", "s: plot"] and not verdict.not_reproducible


def test_the_reference_build_has_every_stage_of_the_pipeline():
    """A stage added to dvc.yaml without rebuilding the reference fails here at once, not only in the slow test."""
    reference = yaml.safe_load(REFERENCE_LOCK.read_text())
    assert set(reference["stages"]) == {stage.name for stage in load_stages(REPO / "dvc.yaml")}
    assert len(hashed_outputs(reference)) >= 30


@pytest.mark.slow
def test_timings_stay_beside_the_hashed_outputs(built):
    """Times differ between the builds, so they live in reports/timings/ (no DVC output, ignored by git)."""
    a = built
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
def test_editing_an_imported_module_makes_exactly_its_stages_stale(built):
    """The stage contract seen through DVC: a comment added to a module marks the stages whose scripts
    import it (directly or not) and no other."""
    a = built
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
def test_threads_rerun_the_pipeline_and_runtime_knobs_rerun_nothing(built):
    """model.threads splits floating-point sums differently (measured: other organism weights), so it is a
    tracked parameter; knobs that cannot change results (workers, client concurrency, timeouts) are not —
    only the report, whose overview page shows the whole params file, is rebuilt for them."""
    a = built
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
