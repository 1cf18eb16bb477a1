"""Download a profile's model from the Hub at its pinned commit, verified, into a local directory.

- Only the pinned commit sha is ever requested, never a branch: a branch can move under the pipeline,
  a commit cannot. The Hub must resolve the pin to itself.
- Only safe files are downloaded (config/tokenizer JSON and text, safetensors, chat templates, cards):
  never *.bin/*.pt/*.pth/*.pkl, so nothing is ever unpickled. A revision without safetensors weights
  (or without config.json / tokenizer_config.json) is refused before anything is downloaded.
- Every file is checked against the Hub's own hashes (sha256 for LFS files, the git blob id for the
  others) and the directory against `check_model_dir`, then installed atomically with a `fetch.json`
  receipt: {repo_id, revision, files: {path: {sha256, size}}, bytes, seconds}.
- Interrupted downloads resume: files land in `.<name>.tmp-download` next to the destination (ignored by
  DVC through `.*.tmp-*`), which survives a failed run and becomes the destination on success.
- A destination whose fetch.json records the same repo and revision, with every file present at its
  recorded size, is kept as it is without touching the network.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from r1interp.errors import ArtifactError, ConfigError
from r1interp.io import atomic_path, replace
from r1interp.models import ModelSpec, check_model_dir
from r1interp.registry.hub import HubError, api, endpoint, hub_errors, same_content, sibling_files, token_from_env
from r1interp.registry.manifest import sha256_file
from r1interp.registry.remote_names import check_remote_names

RECEIPT = "fetch.json"
SAFE_PATTERNS = ("*.json", "*.safetensors", "*.txt", "*.jinja", "*.md", "tokenizer.model", "LICENSE")
PICKLED_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.pkl", "*.ckpt")
COMMIT_RE = re.compile(r"[0-9a-f]{40}")


def fetch_model(spec: ModelSpec, dest: str | Path, *, log: Callable[[str], None] = print) -> dict:
    """Install `spec.repo_id` at `spec.revision` into `dest`; returns the fetch.json receipt."""
    repo, pin, dest = spec.repo_id, spec.revision, Path(dest)
    if not repo or not pin or not COMMIT_RE.fullmatch(pin):
        raise ConfigError(f"model {spec.role}: a Hub model needs a repo and a full 40-hex commit sha, got {repo}@{pin}")
    name = f"{repo}@{pin[:12]}"
    receipt = installed(dest, repo, pin)
    if receipt is not None:
        log(f"fetch {spec.role}: {name} already in {dest} ({_size(receipt['bytes'])}), nothing downloaded")
        return receipt

    token = token_from_env(required=False)
    start = time.monotonic()
    staging = dest.parent / f".{dest.name}.tmp-download"
    wanted = _safe_remote_files(repo, pin, token, staging)
    total = sum(f["size"] for f in wanted.values())
    log(f"fetch {spec.role}: {name}: {len(wanted)} files, {_size(total)} -> {dest}")

    staging.mkdir(parents=True, exist_ok=True)
    from huggingface_hub import snapshot_download

    with hub_errors(repo, pin):
        # allow_patterns are the exact names checked above; local_dir keeps per-file metadata, so a
        # re-run after an interruption only fetches what is missing.
        snapshot_download(repo, revision=pin, allow_patterns=sorted(wanted), local_dir=staging,
                          endpoint=endpoint(), token=token)  # fmt: skip
    missing = _missing(staging, wanted)
    if missing:  # e.g. the connection dropped after the file list: keep what came, for the re-run
        raise HubError(f"{name}: download incomplete, missing or truncated: {', '.join(missing[:5])}",
                       hint="re-run to resume the download")  # fmt: skip
    # huggingface_hub's bookkeeping (per-file metadata, partial *.incomplete files) is only needed to resume
    shutil.rmtree(staging / ".cache", ignore_errors=True)
    try:
        files = _verify(staging, wanted, name)
        check_model_dir(staging)
    except ArtifactError as exc:
        shutil.rmtree(staging, ignore_errors=True)  # complete but wrong: start over next time
        raise ArtifactError(str(exc).replace(str(staging), name), hint=exc.hint) from None
    seconds = round(time.monotonic() - start, 1)
    # no download time in the receipt: it lies in a hashed output, and the same pin must give the same bytes
    receipt = {"repo_id": repo, "revision": pin, "files": files, "bytes": total}
    (staging / RECEIPT).write_text(json.dumps(receipt, indent=2, sort_keys=True) + "\n")
    replace(staging, dest)
    rate = total / seconds / 1e6 if seconds else 0.0
    log(f"fetch {spec.role}: {name}: {_size(total)} in {seconds:.1f} s ({rate:.1f} MB/s), verified -> {dest}")
    return receipt


def install_model(spec: ModelSpec, source: Path, dest: Path) -> dict:
    """Copy a finished fetch of `spec` from `source` (the fetch stage's download) into `dest` (the role's model
    location), atomically; returns its receipt. Refuses a download of another repo or revision, or an incomplete
    one, naming what to run."""
    receipt = installed(source, spec.repo_id, spec.revision)
    if receipt is None:
        raise ArtifactError(
            f"{source}: no complete download of {spec.repo_id}@{spec.revision} (its fetch.json is "
            "missing, names another revision, or files are missing)",
            hint="run `dvc repro fetch`",
        )
    with atomic_path(dest, directory=True) as tmp:
        for rel in sorted([*receipt["files"], RECEIPT]):
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / rel, tmp / rel)
    return receipt


def installed(dest: Path, repo: str, pin: str) -> dict | None:
    """The receipt of a finished fetch of repo@pin in `dest`, or None if it must be (re)downloaded."""
    try:
        receipt = json.loads((dest / RECEIPT).read_text())
        same = receipt["repo_id"] == repo and receipt["revision"] == pin
        complete = all(_has_size(dest / p, f["size"]) for p, f in receipt["files"].items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return receipt if same and complete else None


def _safe_remote_files(repo: str, pin: str, token: str | None, staging: Path) -> dict[str, dict]:
    """{path: {size, sha256 | blob_id}} of the safe files at the pin (refusing a revision without safetensors, or
    one whose file list names a path outside the download folder)."""
    with hub_errors(repo, pin):
        info = api(token).model_info(repo, revision=pin, files_metadata=True)
    if info.sha != pin:
        raise HubError(f"{repo}: revision {pin} resolves to commit {info.sha}, not to itself; refusing")
    remote = sibling_files(info)
    check_remote_names(remote, staging, f"{repo}@{pin[:12]}")
    wanted = {p: f for p, f in remote.items() if _matches(p, SAFE_PATTERNS)}
    if not any(p.endswith(".safetensors") for p in wanted):
        pickled = sorted(p for p in remote if _matches(p, PICKLED_PATTERNS))
        only = f": it only has {', '.join(pickled)} (pickled, never downloaded)" if pickled else ""
        raise HubError(f"{repo}@{pin[:12]}: no *.safetensors weights{only}",
                       hint="pick a revision of the repo that has safetensors weights")  # fmt: skip
    missing = [f for f in ("config.json", "tokenizer_config.json") if f not in wanted]
    if missing:
        raise HubError(f"{repo}@{pin[:12]}: not a transformers model with its tokenizer: no {', '.join(missing)}")
    return wanted


def _missing(root: Path, wanted: dict[str, dict]) -> list[str]:
    """Files not (fully) downloaded; anything unwanted (left by an attempt at another pin) is removed."""
    for path in list(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and rel not in wanted and not rel.startswith(".cache/"):
            path.unlink()
    return [rel for rel, f in sorted(wanted.items()) if not _has_size(root / rel, f["size"])]


def _has_size(path: Path, size: int) -> bool:
    return path.is_file() and path.stat().st_size == size


def _verify(root: Path, wanted: dict[str, dict], name: str) -> dict[str, dict]:
    """{path: {sha256, size}}, after checking every file against the Hub's hash."""
    files, bad = {}, []
    for rel, remote in sorted(wanted.items()):
        if not same_content(root / rel, remote):  # sha256 for LFS files, the git blob id for the rest
            bad.append(rel)
        files[rel] = {"sha256": sha256_file(root / rel), "size": remote["size"]}
    if bad:
        raise ArtifactError(f"{name}: downloaded files do not match the Hub's hashes: {', '.join(bad[:5])}",
                            hint="run the fetch again (the download starts over)")  # fmt: skip
    return files


def _matches(path: str, patterns: tuple[str, ...]) -> bool:
    name = path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(name, p) for p in patterns)


def _size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"
