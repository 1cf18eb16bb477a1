"""`r1interp pull`: a released transcoder set from the Hub, at a pinned revision, verified and converted.

- Only safe file types are downloaded (json, yaml, safetensors, markdown): nothing is ever unpickled.
- When releases.yaml has an entry for the repo and revision, every file's sha256 must match it, or the
  pull is refused and nothing is installed.
- Every coder is checked (cfg, tensor shapes, finiteness; d_in against the model when given). Layouts:
  ours (`layers.N.mlp/` + `circuit-tracer/`) and EleutherAI's (`layers.N.mlp/{cfg.json,sae.safetensors}`,
  old cfg without a `transcode` key, possibly only some layers).
- Layers the model has but the release lacks are reported; the circuit-tracer layout (which needs every
  layer) is only written when none is missing.
The result is installed atomically into the output directory with a `pull.json` describing it.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from r1interp import paths
from r1interp.errors import ArtifactError
from r1interp.io import atomic_path
from r1interp.registry.hub import HubError, api, check_pinned, endpoint, hub_errors, progress, token_from_env
from r1interp.registry.manifest import MANIFEST, find_release, read_manifest, sha256_file
from r1interp.registry.remote_names import check_remote_names
from r1interp.transcoders.layout import (
    check_sparsify_coder,
    find_coders,
    layer_of,
    write_circuit_tracer_config,
    write_circuit_tracer_layer,
)

SAFE_PATTERNS = ["*.json", "*.yaml", "*.safetensors", "*.md"]


@dataclass
class PullResult:
    repo_id: str
    revision: str
    out_dir: str
    layers: list[int]
    missing_layers: list[int]
    verified_against_manifest: bool
    skipped_files: list[str]
    k: int
    num_latents: int
    d_in: int


def default_out(repo_id: str) -> Path:
    return paths.pulled_dir(repo_id)


def pull(
    repo_id: str,
    revision: str | None,
    out_dir: Path,
    *,
    d_model: int | None = None,
    n_layers: int | None = None,
    layers: list[int] | None = None,
    manifest: Path = MANIFEST,
    require_manifest: bool = False,
    allow_unpinned: bool = False,
    how_to_allow: str = "--allow-unpinned",
    replace: bool = False,
    log=None,
) -> PullResult:
    """Pull `repo_id` at `revision` into `out_dir`. An existing `out_dir` is replaced only if it is empty, an
    earlier pull's output (it has pull.json) or `replace` is set; checked before any network request. The
    revision must be a commit sha or a tag unless `allow_unpinned` (`how_to_allow` names that switch)."""
    from huggingface_hub import snapshot_download

    log = log or (lambda msg: print(msg, file=sys.stderr))  # stdout stays machine-readable (--json)
    check_out_dir(Path(out_dir), replace)
    read_manifest(manifest)  # a malformed manifest fails here, before any request
    token = token_from_env(required=False)
    hf = api(token)
    retry = "check the network (and HF_ENDPOINT, HF_TOKEN), then pull again"
    with hub_errors(repo_id, revision, retry):
        info = hf.model_info(repo_id, revision=revision, files_metadata=False)
        sha = info.sha
        check_pinned(hf, repo_id, revision, sha, allow_unpinned=allow_unpinned, how_to_allow=how_to_allow, log=log)
    entry = find_release(repo_id, revision, manifest) or find_release(repo_id, sha, manifest)
    if entry and entry["revision"] != sha:
        raise HubError(
            f"{repo_id}: {revision} resolves to {sha[:12]} but releases.yaml pins {entry['revision'][:12]}; refusing"
        )
    if require_manifest and entry is None:
        raise HubError(f"{repo_id}@{sha[:12]}: not in {manifest}; refusing an unverified release")
    remote_names = [s.rfilename for s in info.siblings or []]
    check_remote_names(remote_names, out_dir, f"{repo_id}@{sha[:12]}")
    wanted = _wanted(remote_names, layers)
    skipped = sorted(n for n in remote_names if not _safe(n) and n != ".gitattributes")
    with tempfile.TemporaryDirectory(prefix="r1interp-pull-") as tmp:
        tmp = Path(tmp)
        with hub_errors(repo_id, sha, retry):
            snapshot_download(
                repo_id, revision=sha, allow_patterns=wanted, local_dir=tmp, endpoint=endpoint(), token=token
            )
        if entry:
            _verify(tmp, entry, manifest)
        coder_dirs = [d for d in find_coders(tmp) if layers is None or layer_of(d.name) in layers]
        if not coder_dirs:
            raise ArtifactError(f"{repo_id}@{sha[:12]}: no transcoders (layers.N.mlp/cfg.json + sae.safetensors)")
        infos = [
            check_sparsify_coder(d, d_model=d_model) for d in progress(coder_dirs, "checking transcoders", "layer")
        ]
        present = [i.layer for i in infos]
        expected = layers if layers is not None else (list(range(n_layers)) if n_layers else present)
        missing = [layer for layer in expected if layer not in present]
        if missing:
            log(f"{repo_id}@{sha[:12]}: no transcoder for layers {missing} (the release has layers {present})")
        with atomic_path(out_dir, directory=True) as dest:
            for d in coder_dirs:
                shutil.copytree(d, dest / "sparsify" / d.name)
            if not missing:
                files = {}
                for d in progress(coder_dirs, "writing the circuit-tracer layout", "layer"):
                    files[layer_of(d.name)] = f"layer_{layer_of(d.name)}.safetensors"
                    write_circuit_tracer_layer(d, dest / "circuit-tracer" / files[layer_of(d.name)])
                write_circuit_tracer_config(dest / "circuit-tracer", files, scan=f"{repo_id}@{sha[:12]}", k=infos[0].k)
            result = PullResult(
                repo_id,
                sha,
                str(out_dir),
                present,
                missing,
                entry is not None,
                skipped,
                infos[0].k,
                infos[0].num_latents,
                infos[0].d_in,
            )
            (dest / "pull.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    return result


def check_out_dir(out_dir: Path, replace: bool) -> None:
    """Refuse to replace a folder that holds anything but an earlier pull (unless `replace`), and never replace
    the current directory or a folder above it."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ArtifactError(f"{out_dir}: exists and is not a directory; choose another --out")
    here = Path.cwd().resolve()
    if out_dir.resolve() == here or out_dir.resolve() in here.parents:
        raise ArtifactError(
            f"{out_dir}: is the current directory or a folder above it; refusing to replace it",
            hint="choose a new directory for --out",
        )
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "pull.json").is_file() and not replace:
        raise ArtifactError(
            f"{out_dir}: exists, is not empty and is not an earlier pull (no pull.json); refusing to replace it",
            hint="choose another --out, or pass --replace to overwrite it",
        )


def _safe(name: str) -> bool:
    return any(Path(name).match(p) for p in SAFE_PATTERNS)


def _wanted(names: list[str], layers: list[int] | None) -> list[str]:
    """allow_patterns: safe files only, and only the requested layers' directories."""
    out = []
    for name in names:
        if not _safe(name):
            continue
        top = name.split("/", 1)[0]
        if layers is not None and top.startswith("layers.") and top.endswith(".mlp") and layer_of(top) not in layers:
            continue
        out.append(name)
    return out


def _verify(root: Path, entry: dict, manifest: Path) -> None:
    bad = []
    for path, digest in progress(entry["files"].items(), "verifying sha256 against releases.yaml"):
        local = root / path
        if not _safe(path):
            continue
        if not local.is_file():
            bad.append(f"{path} (missing)")
        elif sha256_file(local) != digest:
            bad.append(path)
    if bad:
        raise HubError(
            f"{entry['repo_id']}@{entry['revision'][:12]}: sha256 differs from {manifest} for {', '.join(bad[:5])}; refusing",
            hint="the remote files changed since they were published: pull another revision or re-publish",
        )
