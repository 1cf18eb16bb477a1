"""r1interp: mechanistic interpretability registry for reasoning models."""
__version__ = "0.1.0"
