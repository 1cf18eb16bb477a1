"""Talking to the Hub: the token (environment only), the API client, and comparing local files with a
remote revision without downloading them."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from r1interp.errors import R1InterpError

TOKEN_ENV = "HF_TOKEN"


class HubError(R1InterpError):
    """A Hub operation failed or was refused; nothing was published or installed."""


def progress(items, desc: str, unit: str = "file"):
    """A tqdm bar on stderr for local work between the Hub's own bars (hashing, verifying, converting): shown on a
    terminal only, and off with HF_HUB_DISABLE_PROGRESS_BARS=1 like huggingface_hub's."""
    import sys

    from tqdm.auto import tqdm

    off = os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS", "").lower() in ("1", "true", "yes") or None
    return tqdm(items, desc=desc, unit=unit, file=sys.stderr, leave=False, disable=off)


def token_from_env(required: bool = True) -> str | None:
    token = os.environ.get(TOKEN_ENV) or None
    if required and not token:
        raise HubError(f"{TOKEN_ENV} is not set", hint=f"export {TOKEN_ENV}=hf_... (it is read from the environment only)")
    return token


def endpoint() -> str | None:
    """HF_ENDPOINT when set (a mirror or a local test server); None means huggingface.co."""
    return os.environ.get("HF_ENDPOINT") or None


def api(token: str | None):
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint(), token=token)


def git_blob_oid(data: bytes) -> str:
    """The id git (and the Hub) gives a regular file's content."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def remote_files(hf, repo_id: str, repo_type: str, revision: str | None = None) -> tuple[str, dict[str, dict]] | None:
    """(commit sha, {path: {"sha256"|"blob_id": ..., "size": n}}) of a repo revision, or None if the repo
    does not exist."""
    from huggingface_hub.utils import RepositoryNotFoundError

    try:
        info = hf.repo_info(repo_id, repo_type=repo_type, revision=revision, files_metadata=True)
    except RepositoryNotFoundError:
        return None
    return info.sha, sibling_files(info)


def sibling_files(info) -> dict[str, dict]:
    """{path: {"size", "blob_id", and "sha256" for LFS files}} from a repo info fetched with files_metadata."""
    files = {}
    for s in info.siblings or []:
        entry = {"size": s.size, "blob_id": s.blob_id}
        if s.lfs:
            entry["sha256"] = s.lfs.sha256 if hasattr(s.lfs, "sha256") else s.lfs["sha256"]
        files[s.rfilename] = entry
    return files


def same_content(local: Path, remote: dict) -> bool:
    data = local.read_bytes()
    if "sha256" in remote:
        return hashlib.sha256(data).hexdigest() == remote["sha256"]
    return git_blob_oid(data) == remote.get("blob_id")
