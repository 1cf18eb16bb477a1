"""Pinned numerics (r1interp/numerics.py): set before torch loads, refused when the environment differs.

Each check runs a fresh interpreter: the variables only act when the libraries load."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# A small training run whose bytes follow the kernels that compute it: a matmul, a softmax, a GELU,
# a reduction and an optimizer step, then the resulting weights' SHA-256.
TRAIN_SNIPPET = """
import hashlib, torch
torch.manual_seed(0)
torch.set_num_threads(1)
w = torch.nn.Linear(96, 96)
opt = torch.optim.AdamW(w.parameters(), lr=1e-2)
x = torch.randn(256, 96)
for _ in range(20):
    loss = torch.nn.functional.gelu(w(x)).softmax(-1).log().sum()
    opt.zero_grad(); loss.backward(); opt.step()
print(torch.backends.cpu.get_cpu_capability(), hashlib.sha256(w.weight.detach().numpy().tobytes()).hexdigest())
"""


def _python(code: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in (*_pinned(), "R1INTERP_NUMERICS")}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**base, "PYTHONPATH": str(REPO), **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _pinned() -> dict[str, str]:
    from r1interp.numerics import PINNED

    return {var: value for var, (value, _) in PINNED.items()}


def _run(code: str, env=None) -> str:
    proc = _python(code, env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


def test_importing_r1interp_pins_every_variable_before_torch_loads():
    out = _run(
        "import os, r1interp, torch; from r1interp import numerics\n"
        "print(torch.backends.cpu.get_cpu_capability(), numerics.problems())\n"
        "print({v: os.environ[v] for v in numerics.PINNED})"
    )
    first, second = out.splitlines()
    assert first == "AVX2 []"
    assert eval(second) == _pinned()  # noqa: S307 (our own printed dict)


def test_pinned_training_is_identical_under_other_instruction_set_settings():
    """The pin makes the weights independent of what the CPU offers MKL: forcing it onto its SSE4.2 or AVX
    kernels (what another CPU would get) changes nothing."""
    pinned = _run("import r1interp\n" + TRAIN_SNIPPET)
    assert pinned.startswith("AVX2 ")
    for mkl in ("SSE4_2", "AVX"):
        assert _run("import r1interp\n" + TRAIN_SNIPPET, {"MKL_ENABLE_INSTRUCTIONS": mkl}) == pinned


def test_without_the_pin_the_instruction_set_changes_the_bytes():
    """The negative control: the same run, torch loaded first (no pin), on its AVX2 kernels vs the generic
    ones, and without MKL's reproducible branch. If these agreed, pinning would prove nothing."""
    generic = _run(TRAIN_SNIPPET, {"ATEN_CPU_CAPABILITY": "default"})
    avx2 = _run(TRAIN_SNIPPET, {"ATEN_CPU_CAPABILITY": "avx2"})
    if avx2.split()[0] != "AVX2":
        pytest.skip("this CPU has no AVX2 kernels to compare against")
    assert avx2.split()[1] != generic.split()[1]


@pytest.mark.parametrize("var", ["ATEN_CPU_CAPABILITY", "MKL_CBWR", "OPENBLAS_CORETYPE"])
def test_a_conflicting_environment_is_refused_in_one_line(tmp_path, var):
    from r1interp.numerics import PINNED

    other = {"ATEN_CPU_CAPABILITY": "avx512", "MKL_CBWR": "AUTO", "OPENBLAS_CORETYPE": "Sandybridge"}[var]
    proc = _python("from r1interp import numerics; numerics.require()", {var: other})
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("r1interp.errors.ConfigError: numerics not pinned: environment variable")
    assert f"{var}={other!r}" in last and repr(PINNED[var][0]) in last


def test_stage_refuses_a_conflicting_environment_before_any_work(tmp_path):
    """A stage under another numerics mode: one error line naming the variable, exit 2, nothing written."""
    from helpers import make_project

    project = make_project(tmp_path / "p")
    proc = subprocess.run(
        [sys.executable, "stages/corpus.py"],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, "ATEN_CPU_CAPABILITY": "avx512", "PYTHONPATH": str(REPO)},
        timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: numerics not pinned: environment variable ATEN_CPU_CAPABILITY='avx512'")
    assert not (project / "data" / "corpus").exists()


def test_the_numerics_mode_is_a_parameter_and_a_mismatch_is_refused(tmp_path):
    """model.numerics (tracked by every stage) and the process's mode must agree: DVC never records native
    outputs as portable ones. A mismatch is one line naming params.yaml and the key; nothing is written."""
    from helpers import make_project

    project = make_project(tmp_path / "p")

    def corpus(mode: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k not in _pinned()}
        return subprocess.run(
            [sys.executable, "stages/corpus.py"],
            cwd=project,
            capture_output=True,
            text=True,
            env={**env, "R1INTERP_NUMERICS": mode, "PYTHONPATH": str(REPO)},
            timeout=300,
        )

    native = corpus("native")
    assert native.returncode == 2
    assert native.stderr.splitlines()[0] == (
        "error: params.yaml: model.numerics is 'portable' but this process runs "
        "'native' numerics (R1INTERP_NUMERICS='native'), not the 'portable' ones"
    )
    assert not (project / "data" / "corpus").exists()
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("numerics: portable", "numerics: native"))
    portable = corpus("portable")
    assert portable.returncode == 2 and "model.numerics is 'native' but" in portable.stderr
    assert "R1INTERP_NUMERICS=native dvc repro" in portable.stderr
    assert not (project / "data" / "corpus").exists()
    assert corpus("native").returncode == 0 and (project / "data" / "corpus" / "corpus.parquet").is_file()


def test_torch_imported_first_is_named():
    proc = _python("import torch, r1interp; from r1interp import numerics; numerics.require()")
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "numerics not pinned: torch, numpy were imported before r1interp" in last


def test_set_threads_limits_every_pool():
    out = _run(
        "import r1interp, numpy, torch, threadpoolctl; from r1interp import numerics\n"
        "numerics.set_threads(3)\n"
        "print(torch.get_num_threads(), sorted({p['num_threads'] for p in threadpoolctl.threadpool_info()}))",
        {"OMP_NUM_THREADS": "1"},
    )
    assert out == "3 [3]"
