"""Deterministic numerics: the same code and params give the same bytes on any x86-64 machine.

Floating-point results of the numeric libraries follow the CPU they run on: torch dispatches its
own kernels to AVX2 or AVX-512 code, MKL and OpenBLAS pick kernels per micro-architecture and numpy
picks SIMD loops at run time. Each sums in a different order, so the trained weights (and everything
downstream) differ between an AVX2 and an AVX-512 machine. Every one of those choices is made once,
when the library loads, from an environment variable; so `pin()` sets them before torch or numpy is
imported. `r1interp/__init__.py` calls it: importing anything from r1interp first is enough.

The pinned values need an x86-64 CPU with AVX2 (x86-64-v3: Intel since Haswell, AMD since Zen): every
such CPU then runs the same instructions. torch's AVX2 kernels are pinned rather than its generic ones
because the generic ones made the default pipeline 1.5x slower (evaluate alone 8x; README: Reproducibility),
and the AVX2 ones are exact (no approximate reciprocal / square-root instructions, which differ by vendor).
MKL has no such promise for non-Intel CPUs above its SSE2 branch, so it keeps COMPATIBLE.
A user's environment that sets one of these variables to another value is refused by `require()`
(every stage calls it) with one line, rather than silently producing other bytes.

`R1INTERP_NUMERICS=native` leaves the environment alone: the machine's own kernels, faster for training
(bench/numerics_cost.py), bytes that depend on the CPU. A stage runs in it only when params.yaml says so
too (`model.numerics: native`, a tracked parameter of every stage), so DVC never records native outputs
as portable ones or the reverse.
"""

from __future__ import annotations

import os
import sys

from r1interp.errors import ConfigError

# variable -> (pinned value, why). Read by the libraries when they load, never later.
PINNED: dict[str, tuple[str, str]] = {
    "MKL_CBWR": ("COMPATIBLE", "MKL: one conditional-numerical-reproducibility code path on every CPU"),
    "ATEN_CPU_CAPABILITY": ("avx2", "torch's own kernels: the AVX2 ones, also on AVX-512 machines"),
    "OPENBLAS_CORETYPE": (
        "Haswell",
        "numpy / scipy BLAS: the AVX2 kernels on every machine (SkylakeX ones on AVX-512)",
    ),
    "NPY_DISABLE_CPU_FEATURES": (
        "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
        "numpy's ufunc loops: the x86-64-v2 baseline only",
    ),
    "ONEDNN_MAX_CPU_ISA": ("AVX2", "oneDNN (torch's mkldnn ops): at most AVX2 kernels"),
}
TORCH_CAPABILITY = "AVX2"  # what torch.backends.cpu.get_cpu_capability() reports under the pin
# Libraries whose kernel choice is fixed once they are loaded.
LOADERS = ("torch", "numpy", "scipy", "sklearn", "pandas")

MODE_VARIABLE = "R1INTERP_NUMERICS"
MODES = ("portable", "native")

_state: dict[str, list[str]] = {"conflicts": [], "loaded_before": []}


def mode() -> str:
    return os.environ.get(MODE_VARIABLE, "portable") or "portable"


def pin() -> None:
    """Set every pinned variable that is unset; remember any set to another value and any library
    that was already loaded (then the pin comes too late for it)."""
    _state["loaded_before"] = [name for name in LOADERS if name in sys.modules]
    _state["conflicts"] = []
    if mode() != "portable":
        return
    for var, (value, _) in PINNED.items():
        current = os.environ.setdefault(var, value)
        if current != value:
            _state["conflicts"].append(var)


def problems(expected: str = "portable") -> list[str]:
    """Why this process does not run the `expected` numerics mode (empty when it does)."""
    if mode() not in MODES:
        return [f"{MODE_VARIABLE}={mode()!r} is not a numerics mode; allowed: {', '.join(MODES)}"]
    if mode() != expected:
        return [
            f"this process runs {mode()!r} numerics ({MODE_VARIABLE}={os.environ.get(MODE_VARIABLE, '')!r}), "
            f"not the {expected!r} ones"
        ]
    if expected == "native":
        return []
    found = [
        f"environment variable {var}={os.environ.get(var)!r} differs from the pinned {PINNED[var][0]!r} ({PINNED[var][1]})"
        for var in _state["conflicts"]
    ]
    if _state["loaded_before"]:
        found.append(
            f"{', '.join(_state['loaded_before'])} {'was' if len(_state['loaded_before']) == 1 else 'were'} imported "
            "before r1interp: import r1interp first so its "
            "numerics are pinned (r1interp/numerics.py)"
        )
    torch = sys.modules.get("torch")
    if torch is not None and not found:
        capability = torch.backends.cpu.get_cpu_capability()
        if capability != TORCH_CAPABILITY:
            found.append(
                f"torch runs its {capability} kernels, not the pinned {TORCH_CAPABILITY} ones (this CPU lacks AVX2?)"
            )
    return found


def require(declared: str = "portable", params_file: str = "params.yaml") -> None:
    """Refuse to build artifacts under another numerics mode than params.yaml declares (one line)."""
    found = problems(declared)
    if not found:
        return
    if mode() != declared and mode() in MODES:
        flip = "R1INTERP_NUMERICS=native dvc repro" if declared == "native" else f"unset {MODE_VARIABLE}"
        raise ConfigError(
            f"{params_file}: model.numerics is {declared!r} but {found[0]}",
            hint=f"{flip}, or set model.numerics: {mode()} (README: Reproducibility)",
        )
    raise ConfigError(
        f"numerics not pinned: {found[0]}",
        hint="unset it (r1interp sets the pinned value itself); rebuilt artifacts are only byte-identical "
        "across machines with the pinned numerics (README: Reproducibility)",
    )


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def set_threads(threads: int) -> None:
    """Every thread pool (torch, MKL, OpenBLAS, the OpenMP runtimes of torch and scikit-learn) gets exactly
    `threads` threads, whatever the machine's core count: how work is split over threads changes the order
    of floating-point sums, so the count is a parameter (model.threads), not a property of the machine.
    Libraries loaded later, and child processes, read the environment; loaded ones are limited directly."""
    from threadpoolctl import threadpool_limits

    for var in THREAD_VARIABLES:
        os.environ[var] = str(threads)
    threadpool_limits(limits=threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


def describe() -> dict[str, str]:
    """The pinned variables and their values in this process (for `doctor` and reports)."""
    return {var: os.environ.get(var, "") for var in PINNED}
