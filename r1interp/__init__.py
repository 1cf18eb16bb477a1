"""r1interp: mechanistic interpretability registry for reasoning models."""

# First, before anything can load torch or numpy: pin the numerics (r1interp/numerics.py) so that
# rebuilt artifacts have the same bytes on every x86-64 machine.
from r1interp import numerics as _numerics

_numerics.pin()

__version__ = "0.1.0"
