"""Keep `import transformers` from loading scikit-learn, which no r1interp code path needs from it.

transformers imports `sklearn.metrics.roc_curve` at module level in `transformers.generation.candidate_generator`
whenever scikit-learn is installed (it is: the clusters stage and the flaw repairs use it), for one feature we
never call (assisted decoding with a learned confidence threshold). Loading scikit-learn pulls in scipy.stats:
about 1.2 s of every stage process's start on a 2-core machine (bench/stage_imports.py: 8.62 -> 7.40 s, 0.86x),
where a tiny-profile stage's own work is often under a second.

`install()` (r1interp/__init__.py calls it, before anything can import transformers) registers an import hook
that, once transformers' `utils.import_utils` module has run, marks scikit-learn as unavailable *to
transformers*. Nothing else changes: our own `import sklearn` still works, and the rebuilt artifacts are
byte-identical (the one transformers feature that would use it, assisted decoding with
`assistant_confidence_threshold`, is never called here).
The flag is private to transformers (pinned in constraints.txt); if a release renames it, the hook does
nothing and the only cost is the import time again (tests/test_lean_imports.py notices).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

TRANSFORMERS_FLAGS = "transformers.utils.import_utils"
SKLEARN_FLAG = "_sklearn_available"


class _TransformersWithoutSklearn(importlib.abc.MetaPathFinder):
    """Finds `transformers.utils.import_utils` like the path finder does, then clears its scikit-learn flag
    right after the module has run (before any other transformers module can read it)."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None):
        if fullname != TRANSFORMERS_FLAGS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run_module = spec.loader.exec_module

        def run_then_hide_sklearn(module: ModuleType) -> None:
            run_module(module)
            if hasattr(module, SKLEARN_FLAG):
                setattr(module, SKLEARN_FLAG, False)

        spec.loader.exec_module = run_then_hide_sklearn  # type: ignore[method-assign]
        return spec


def install() -> None:
    """Register the hook once per process; a no-op when transformers is already loaded (too late to matter)."""
    if TRANSFORMERS_FLAGS in sys.modules or any(isinstance(f, _TransformersWithoutSklearn) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _TransformersWithoutSklearn())
