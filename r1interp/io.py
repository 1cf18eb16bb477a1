"""Atomic artifact writes: a temp file/dir in the same folder, then a rename.

An interrupted stage therefore leaves either the previous artifact or none at all,
never a half-written file that a later stage would trust. Temp names carry the writer's pid
(`.NAME.tmp-PID-XXXX`), so the next write of the same target removes what a killed run left
behind (its pid is gone) without touching a live writer's folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(target: str | Path, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `target`; move it into place only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_debris(target)
    prefix = f".{target.name}.tmp-{os.getpid()}-"
    umask = os.umask(0)
    os.umask(umask)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes 0700; artifacts get normal permissions
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, dir=target.parent)
        os.close(fd)
        tmp = Path(name)
        tmp.chmod(0o666 & ~umask)  # mkstemp makes 0600
    try:
        yield tmp
        replace(tmp, target)
    except BaseException:
        _remove(tmp)
        raise


def replace(src: Path, target: Path) -> None:
    """Move `src` onto `target`; for directories the old one is removed only after the swap."""
    if src.is_dir() and target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        _remove(old)
        os.replace(target, old)
        os.replace(src, target)
        _remove(old)
    else:
        os.replace(src, target)


def remove_debris(target: Path) -> list[Path]:
    """Delete the temp/old siblings of `target` left by writers that no longer run (killed, crashed)."""
    removed = []
    lead = f".{target.name}."
    for sibling in sorted(target.parent.iterdir()):
        if not sibling.name.startswith(lead):
            continue
        kind, _, rest = sibling.name[len(lead) :].partition("-")
        if kind not in ("tmp", "old"):
            continue
        pid = rest.split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue  # another live process is writing it
        if pid.isdigit() and int(pid) == os.getpid() and kind == "tmp":
            continue  # ours, e.g. a nested write of the same target in this process
        _remove(sibling)
        removed.append(sibling)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_parquet(path: str | Path, df: Any) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
