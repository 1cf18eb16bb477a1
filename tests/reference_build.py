"""The reference build of the tiny pipeline: `dvc repro` from nothing while emulating another CPU, its dvc.lock
kept in the repository (tests/data/reference-build.lock.yaml).

test_reproducible_e2e compares the suite's own build (conftest.py's `full_project`, this machine's own settings)
with it: wherever a stage's code, params and inputs are those of the reference build, its outputs must have the
same hashes. That is the bit-identity guarantee across instruction sets and core counts, and across the machine
that wrote the reference and whichever machine runs the suite, without a second build in every test run.

When a change is meant to alter outputs, rebuild the reference (about 5 minutes on 2 cores):

    python tests/reference_build.py
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

# Another CPU, as far as one machine can emulate it: MKL on its SSE4.2 kernels, numpy without its AVX2 loops, and
# another core count (other thread-pool sizes). Without the pins of r1interp/numerics.py these change the bytes
# (tests/test_numerics.py shows the kernels matter). torch's and OpenBLAS's kernel choices cannot be emulated from
# the environment without conflicting with their pins (both pinned to AVX2; another value is refused).
OTHER_CPU = {
    "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",  # numpy on a CPU without AVX2
    "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",  # MKL there
    "OMP_NUM_THREADS": "3",  # another core count: thread pools sized by the machine
    "OPENBLAS_NUM_THREADS": "3",
    "MKL_NUM_THREADS": "3",
}
REFERENCE_LOCK = Path(__file__).resolve().parent / "data" / "reference-build.lock.yaml"
HEADER = (
    "# The tiny pipeline's dvc.lock from `dvc repro` on nothing, emulating another CPU (tests/reference_build.py,\n"
    "# which rebuilds it). tests/test_reproducible_e2e.py holds the suite's own build to these hashes.\n"
)


def hashed_outputs(lock: dict) -> dict[str, str]:
    """`stage: path` -> md5 of every output a parsed dvc.lock records (outs, metrics and plots alike)."""
    return {
        f"{stage}: {out['path']}": out["md5"]
        for stage, entry in lock["stages"].items()
        for out in entry.get("outs", [])
    }


@dataclass
class Verdict:
    """How a build's dvc.lock compares with the reference build's, output by output."""

    same: int = 0  # outputs with the reference's hash
    # outputs with another hash although their stage ran the same command on the same deps (code and data) and
    # params as in the reference build: the rebuild is not bit-identical
    not_reproducible: list[str] = field(default_factory=list)
    # outputs with another hash (or only on one side) where the stage's command, deps or params changed: the
    # reference predates the code or params, and nothing can be concluded until it is rebuilt
    reference_outdated: list[str] = field(default_factory=list)


def compare_with_reference(lock: dict, reference: dict) -> Verdict:
    """Compare two parsed dvc.lock files: same inputs must give the same outputs (what DVC's cache assumes)."""
    verdict = Verdict()
    mine, theirs = lock["stages"], reference["stages"]
    for name in sorted(set(mine) | set(theirs)):
        if name not in mine or name not in theirs:
            verdict.reference_outdated.append(f"{name} (stage {'not built' if name not in mine else 'new'})")
            continue
        same_inputs = all(mine[name].get(key) == theirs[name].get(key) for key in ("cmd", "deps", "params"))
        expected = {out["path"]: out["md5"] for out in theirs[name].get("outs", [])}
        got = {out["path"]: out["md5"] for out in mine[name].get("outs", [])}
        for path in sorted(set(expected) | set(got)):
            if path in got and expected.get(path) == got[path]:
                verdict.same += 1
            elif same_inputs and path in got and path in expected:
                verdict.not_reproducible.append(f"{name}: {path}")
            else:
                verdict.reference_outdated.append(f"{name}: {path}")
    return verdict


def build(project: Path) -> Path:
    """A tiny project at `project`, built from nothing under OTHER_CPU; returns its dvc.lock."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from helpers import _env, make_project

    make_project(project)
    env = {k: v for k, v in _env().items() if k not in OTHER_CPU} | OTHER_CPU
    subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=project, env=env, check=True)
    return project / "dvc.lock"


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="reference-build-") as tmp:
        lock = build(Path(tmp) / "p")
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        settings = " ".join(f"{k}={v!r}" for k, v in OTHER_CPU.items())
        text = HEADER + f"# built on: {machine}; with {settings}\n" + lock.read_text()
        partial = REFERENCE_LOCK.with_suffix(".partial")
        partial.write_text(text)
        partial.replace(REFERENCE_LOCK)
    print(f"wrote {REFERENCE_LOCK}")


if __name__ == "__main__":
    main()
