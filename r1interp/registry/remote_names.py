"""File names a remote lists, checked before anything from it is written under a local folder.

A Hub mirror is not trusted: huggingface_hub rejects `..` in file names only on Windows, so a listing with
`../escape/x.json` would be written outside `local_dir`. Every download path (`fetch`, `pull`) checks the whole
listing first and refuses the revision on the first unsafe name, before any file is requested.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from r1interp.registry.hub import HubError

_DRIVE = re.compile(r"^[A-Za-z]:")


def unsafe_reason(name: str) -> str | None:
    """Why `name` may not become a path under a download folder, or None if it is a plain relative POSIX path."""
    if not name:
        return "an empty name"
    if "\x00" in name or any(ord(c) < 32 for c in name):
        return "a control character"
    if "\\" in name:
        return "a backslash (a Windows path separator)"
    if name.startswith("/"):
        return "an absolute path"
    if _DRIVE.match(name):
        return "a drive letter"
    parts = name.split("/")
    if ".." in parts:
        return "a '..' part (a path outside the folder)"
    if any(p in ("", ".") for p in parts):
        return "an empty or '.' part"
    return None


def check_remote_names(names: Iterable[str], root: Path, where: str) -> None:
    """Raise HubError naming the first name that is unsafe or would resolve outside `root`."""
    base = Path(root).resolve()
    for name in names:
        reason = unsafe_reason(name)
        if reason is None and not (base / name).resolve().is_relative_to(base):
            reason = "a path that resolves outside the folder"
        if reason is not None:
            raise HubError(
                f"{where}: the remote lists {name!r}, which has {reason}; refusing to download anything from it",
                hint="this mirror's file list is malformed or hostile; use the Hub or a trusted mirror",
            )
