"""r1interp: mechanistic interpretability registry for reasoning models."""

# First, before anything can load torch or numpy: pin the numerics (r1interp/numerics.py) so that
# rebuilt artifacts have the same bytes on every x86-64 machine.
import time as _time

STARTED = _time.perf_counter()  # stage wall times (reports/timings/) count from here, imports included

from r1interp import numerics as _numerics  # noqa: E402

_numerics.pin()

from r1interp import lean_imports as _lean_imports  # noqa: E402

_lean_imports.install()  # transformers without scikit-learn: ~2 s less per stage start (lean_imports.py)

__version__ = "0.1.0"
