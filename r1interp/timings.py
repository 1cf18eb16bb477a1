"""Wall and CPU times of a stage, kept out of every hashed artifact.

Times differ from run to run and machine to machine; inside an output that DVC hashes they would make
every rebuild "changed" and mark the downstream stages stale. So stages report them here instead:
`reports/timings/<stage>.json` is written next to the artifacts but is no DVC output (not hashed, not
cached) and is ignored by git. `dvc metrics show reports/timings/*.json` prints them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from r1interp.io import write_json
from r1interp.paths import TIMINGS_DIR


def path_for(stage: str, root: Path | None = None) -> Path:
    name = stage.replace("@", "-").replace("/", "-")
    return (root or Path()) / TIMINGS_DIR / f"{name}.json"


def record(stage: str, values: dict[str, Any], root: Path | None = None) -> Path:
    """Merge `values` into the stage's timings file (a stage may record several parts)."""
    path = path_for(stage, root)
    current: dict[str, Any] = {}
    if path.is_file():
        try:
            current = json.loads(path.read_text())
        except (OSError, ValueError):
            current = {}  # a torn file from an interrupted run: timings are informative only
    current.update(values)
    write_json(path, current)
    return path


def read(stage: str, root: Path | None = None) -> dict[str, Any]:
    path = path_for(stage, root)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
