"""Whether the flaw stages apply to a profile, and what they write when they do not.

Imports nothing heavy, so on a Hub profile the stages record "not applicable" without loading torch (seconds a
stage, in every real-profile build).
"""

from __future__ import annotations

import json
from pathlib import Path

from r1interp.io import atomic_path

NOT_APPLICABLE = "not_applicable.json"
PROFILE = "organism"  # the planted flaw is trained into the embedded organism only


def applies(profile: str) -> bool:
    return profile == PROFILE


def reason(profile: str) -> str:
    return f"profile {profile!r}: the planted flaw lives in the embedded organism only"


def record(out_dir: Path, content: dict, indent: int | None = None) -> None:
    """Replace `out_dir` by a folder holding only not_applicable.json with `content`."""
    with atomic_path(out_dir, directory=True) as tmp:
        (tmp / NOT_APPLICABLE).write_text(json.dumps(content, indent=indent) + "\n")


def record_model(out_dir: Path, profile: str) -> None:
    """What `flawed-organism` writes on a Hub profile instead of a model."""
    record(
        out_dir,
        {
            "profile": profile,
            "reason": "the planted flaw is trained into the embedded organism; "
            "Hub profiles have no training run to plant it in",
        },
        indent=1,
    )
