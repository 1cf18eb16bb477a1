"""releases.yaml: one entry per published release, kept in git.

    releases:
      - name: organism-reasoner            # what was published
        kind: model | dataset
        repo_id: owner/name
        revision: <40-hex commit sha>      # the commit the files were published in
        tag: v-...                         # the tag pointing at it
        files: {path: sha256}              # every file of the commit
        metrics: {...}                     # evaluation summary at publish time
        params_hash: sha256 of the params that built the artifacts
        published_at: ISO time

Written atomically, and only after the Hub commit and tag succeeded: a failed publish leaves it untouched.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml

from r1interp.errors import ArtifactError
from r1interp.io import write_text

MANIFEST = Path("releases.yaml")
_ENTRY_KEYS = ("name", "kind", "repo_id", "revision", "files")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_manifest(path: str | Path = MANIFEST) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return []
    if not path.is_file():
        raise ArtifactError(f"{path}: not a regular file; a release manifest is a YAML file like releases.yaml")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ArtifactError(
            f"{path}: not a release manifest: not valid YAML text ({str(exc).splitlines()[0]})"
        ) from None
    if doc == {}:
        return []
    if not isinstance(doc, dict) or not isinstance(doc.get("releases"), list):
        raise ArtifactError(
            f"{path}: not a release manifest: expected a mapping with a 'releases' list (as `r1interp publish` writes)"
        )
    releases = doc["releases"]
    for i, entry in enumerate(releases):
        missing = [k for k in _ENTRY_KEYS if not isinstance(entry, dict) or k not in entry]
        if missing:
            raise ArtifactError(f"{path}: releases[{i}] misses {', '.join(missing)}")
    return releases


def add_release(entry: dict[str, Any], path: str | Path = MANIFEST) -> bool:
    """Record `entry`; False (and no write) when the same release is already recorded."""
    current = read_manifest(path)
    for r in current:
        if (r["repo_id"], r["revision"], r["files"]) == (entry["repo_id"], entry["revision"], entry["files"]):
            return False
    releases = [r for r in current if not (r["repo_id"] == entry["repo_id"] and r["revision"] == entry["revision"])]
    releases.append(entry)
    header = "# Published releases (written by `r1interp publish`; `r1interp pull` verifies against it).\n"
    write_text(path, header + yaml.safe_dump({"releases": releases}, sort_keys=False))
    return True


def find_release(repo_id: str, revision: str | None, path: str | Path = MANIFEST) -> dict[str, Any] | None:
    """The manifest entry for repo_id at `revision` (a sha, or a tag), or the latest one when revision is None."""
    matches = [r for r in read_manifest(path) if r["repo_id"] == repo_id]
    if revision is not None:
        matches = [r for r in matches if revision in (r["revision"], r.get("tag"))]
    return matches[-1] if matches else None
