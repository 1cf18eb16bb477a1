"""Talking to the Hub: the token (environment only), the API client, and comparing local files with a
remote revision without downloading them."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
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
        raise HubError(
            f"{TOKEN_ENV} is not set", hint=f"export {TOKEN_ENV}=hf_... (it is read from the environment only)"
        )
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


@contextlib.contextmanager
def hub_errors(
    repo: str,
    pin: str | None,
    retry: str = "check the network (and HF_ENDPOINT, HF_TOKEN); re-running resumes the download",
) -> Iterator[None]:
    """huggingface_hub/requests exceptions -> one-line HubErrors."""
    import requests
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = endpoint() or "https://huggingface.co"
    at = f"{repo}@{pin[:12]}" if pin else repo
    try:
        yield
    except (requests.RequestException, OfflineModeIsEnabled) as exc:
        # hf_hub_download reports a failed per-file HEAD (connection or HTTP error) as
        # LocalEntryNotFoundError "from" the real error: classify that one.
        if isinstance(exc, LocalEntryNotFoundError) and exc.__cause__ is not None:
            exc = exc.__cause__
        if isinstance(exc, GatedRepoError):
            hint = "accept its terms on the Hub, then export HF_TOKEN=hf_..."
            raise HubError(f"{repo}: gated repository", hint=hint) from None
        if isinstance(exc, RepositoryNotFoundError):
            raise HubError(f"{repo}: repository not found on {where} (a private repo needs HF_TOKEN)") from None
        if isinstance(exc, RevisionNotFoundError):
            raise HubError(f"{repo}: revision {pin} not found on {where}") from None
        if isinstance(exc, OfflineModeIsEnabled):
            raise HubError(f"{repo}: HF_HUB_OFFLINE is set, cannot download", hint="unset HF_HUB_OFFLINE") from None
        if isinstance(exc, HfHubHTTPError) and not isinstance(exc, LocalEntryNotFoundError):
            status = getattr(exc.response, "status_code", None)
            why = exc.server_message or next((line for line in str(exc).splitlines() if line.strip()
                                              and not line.startswith("(Request ID")), type(exc).__name__)  # fmt: skip
            raise HubError(f"{at}: download failed: HTTP {status}: {why}", hint=retry) from None
        # connection refused/reset, timeouts, or a LocalEntryNotFoundError without a cause
        what = f"network failure reaching {where} ({type(exc).__name__})"
        raise HubError(f"{at}: {what}", hint=retry) from None


def is_commit_sha(revision: str | None) -> bool:
    return bool(revision) and len(revision) == 40 and all(c in "0123456789abcdef" for c in revision)


def check_pinned(
    hf,
    repo_id: str,
    revision: str | None,
    sha: str,
    *,
    repo_type: str = "model",
    allow_unpinned: bool = False,
    how_to_allow: str = "--allow-unpinned",
    log=None,
) -> bool:
    """Whether `revision` pins what was resolved (`sha`): the commit sha itself, or a tag. A branch, or no
    revision, moves under the user's feet: refused unless `allow_unpinned`, then one warning line."""
    if revision and (revision == sha or (not is_commit_sha(revision) and revision in _tags(hf, repo_id, repo_type))):
        return True
    what = f"revision {revision!r} is a branch" if revision else "no revision given"
    if not allow_unpinned:
        raise HubError(
            f"{repo_id}: {what}, not a pin (a commit sha or tag); refusing",
            hint=f"pin its current commit {sha}, or set {how_to_allow} to use a moving revision",
        )
    (log or print)(f"warning: {repo_id}: {what}, not a pin; using its current commit {sha[:12]} (not reproducible)")
    return False


def _tags(hf, repo_id: str, repo_type: str) -> set[str]:
    return {tag.name for tag in hf.list_repo_refs(repo_id, repo_type=repo_type).tags}
