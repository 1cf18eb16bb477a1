"""Every entry script imports `r1interp` before any third-party module: importing it pins the numerics
(r1interp/numerics.py) before torch or numpy load. An import sorter (`ruff check --fix`, rule I001) would move
`import r1interp` below `import pandas`; a `# isort: split` comment after it keeps it first."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(
    p for p in [*REPO.glob("stages/*.py"), *REPO.glob("scripts/*.py")] if "import r1interp" in p.read_text()
)


def _first_third_party_import(path: Path) -> str | None:
    """The top-level module of the first import (at module level, in order) that is not standard library."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top not in sys.stdlib_module_names and top != "__future__":
                return top
    return None


def test_the_entry_scripts_are_found():
    assert len(SCRIPTS) >= 15 and REPO / "stages/tokens.py" in SCRIPTS


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_r1interp_is_imported_before_any_third_party_module(path: Path):
    assert _first_third_party_import(path) == "r1interp"
