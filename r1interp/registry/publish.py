"""`r1interp publish`: transcoders (+ card) to a model repo, labels and feature summaries to a dataset repo.

A release is one Hub commit per repo (all files at once: the Hub applies a commit atomically, so an upload
that fails part-way publishes nothing), then a tag on each commit, then an entry in releases.yaml. The
manifest is written last: a release that failed anywhere before leaves it untouched. Publishing the same
artifacts again finds the remote files identical (sha256 for LFS files, git blob ids for the rest) and
makes no new commit. The token comes from HF_TOKEN only and is passed to the client, never written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from r1interp import paths
from r1interp.config import Params, to_dict
from r1interp.errors import ArtifactError
from r1interp.models import PROFILES
from r1interp.registry import card
from r1interp.registry.hub import HubError, api, progress, remote_files, same_content
from r1interp.registry.manifest import MANIFEST, add_release, sha256_file
from r1interp.transcoders import SET_ROOT, TRAIN_ROOT
from r1interp.transcoders.layout import check_sparsify_coder, find_coders

KEEP_REMOTE = {".gitattributes"}
MARKER = "r1interp.json"  # present in every repo we publish to: "other content" means a repo without it


@dataclass
class Upload:
    path_in_repo: str
    local: Path
    sha256: str
    size: int


@dataclass
class ReleasePlan:
    name: str
    repo_type: str  # model | dataset
    repo_id: str
    files: list[Upload]
    metrics: dict[str, Any]
    params_hash: str
    tag: str = ""
    staging: list[Path] = field(default_factory=list)

    def cleanup(self) -> None:
        for d in self.staging:
            shutil.rmtree(d, ignore_errors=True)

    def __post_init__(self) -> None:
        content = hashlib.sha256(
            "".join(
                f"{u.path_in_repo}\0{u.sha256}\n" for u in sorted(self.files, key=lambda u: u.path_in_repo)
            ).encode()
        )
        self.tag = self.tag or f"r1interp-{self.name}-{content.hexdigest()[:12]}"


def params_hash(params: Params) -> str:
    return hashlib.sha256(json.dumps(to_dict(params), sort_keys=True).encode()).hexdigest()


def _upload(path_in_repo: str, local: Path) -> Upload:
    return Upload(path_in_repo, local, sha256_file(local), local.stat().st_size)


def _transcoder_metrics(model: str, root: Path) -> dict[str, Any]:
    path = root / paths.TRANSCODERS_METRICS
    if not path.exists():
        raise ArtifactError(f"{path}: not found", hint="run `dvc repro evaluate` before publishing")
    data = json.loads(path.read_text()).get(model)
    if data is None:
        raise ArtifactError(f"{path}: no metrics for {model}", hint="add it to train.models and `dvc repro evaluate`")
    per_layer = {
        layer: {"fvu": m.get("fvu"), "dead_pct": m.get("dead_pct"), "ce_increase": m["completion"]["ce_increase"]}
        for layer, m in data["layers"].items()
    }
    return {"summary": data["summary"], "all_layers": data["all_layers"]["completion"], "per_layer": per_layer}


def _training(model: str, root: Path) -> dict[str, Any]:
    tokens = 0
    for summary in sorted((root / TRAIN_ROOT).glob("*/training.json")):
        tokens = max(tokens, int(json.loads(summary.read_text()).get(model, {}).get("tokens", 0)))
    return {"tokens": tokens}


def plan_model_release(params: Params, model: str, repo_id: str, root: Path = Path(".")) -> ReleasePlan:
    set_dir = root / SET_ROOT / model
    coder_dirs = find_coders(set_dir / "sparsify")
    if not coder_dirs:
        raise ArtifactError(f"{set_dir / 'sparsify'}: no transcoders", hint=f"run `dvc repro transcoders@{model}`")
    infos = [check_sparsify_coder(d) for d in progress(coder_dirs, f"checking {model} transcoders", "layer")]
    files = []
    for d in progress(coder_dirs, "hashing (sha256)", "layer"):
        files += [_upload(f"{d.name}/{name}", d / name) for name in ("cfg.json", "sae.safetensors")]
    ct = set_dir / "circuit-tracer"
    files += [_upload(f"circuit-tracer/{p.name}", p) for p in sorted(ct.iterdir()) if p.is_file()]
    metrics = _transcoder_metrics(model, root)
    p_hash = params_hash(params)
    spec = PROFILES[params.model.profile][model]
    staging = Path(tempfile.mkdtemp(prefix="r1interp-publish-"))
    (staging / "README.md").write_text(
        card.model_card(
            repo_id=repo_id,
            profile=params.model.profile,
            model=model,
            base_model=spec.repo_id,
            datasets=[params.corpus.hub.dataset] if spec.repo_id else [],
            coders=[vars(i) for i in infos],
            training=_training(model, root),
            metrics=metrics,
            params_hash=p_hash,
        )
    )
    (staging / "r1interp.json").write_text(
        json.dumps(
            {"profile": params.model.profile, "model": model, "params_hash": p_hash, "metrics": metrics["summary"]},
            indent=2,
            sort_keys=True,
        )
        + "\n"
    )
    files += [_upload("README.md", staging / "README.md"), _upload("r1interp.json", staging / "r1interp.json")]
    return ReleasePlan(
        f"{params.model.profile}-{model}-transcoders",
        "model",
        repo_id,
        files,
        metrics["summary"],
        p_hash,
        staging=[staging],
    )


def plan_dataset_release(params: Params, model: str, repo_id: str, root: Path = Path(".")) -> ReleasePlan:
    from r1interp.schemas import FeatureSchema, LabelSchema, read_parquet

    labels = read_parquet(root / paths.LABELS_PARQUET, LabelSchema, "run `dvc repro labels`")
    labels = labels[labels["model"] == model].reset_index(drop=True)
    features = read_parquet(root / paths.features_parquet(model), FeatureSchema, "run `dvc repro activations`")
    staging = Path(tempfile.mkdtemp(prefix="r1interp-publish-"))
    labels.to_parquet(staging / "labels.parquet", index=False)
    features.to_parquet(staging / "features.parquet", index=False)
    labeled = int(labels["label"].notna().sum())
    (staging / "README.md").write_text(
        card.dataset_card(
            repo_id=repo_id,
            profile=params.model.profile,
            model=model,
            labeler=params.labels.labeler,
            n_labels=labeled,
            n_features=len(features),
        )
    )
    p_hash = params_hash(params)
    metrics = {
        "labeled": labeled,
        "detection_balanced_accuracy": _mean(labels, "detection_balanced_accuracy"),
        "fuzzing_balanced_accuracy": _mean(labels, "fuzzing_balanced_accuracy"),
    }
    (staging / "r1interp.json").write_text(
        json.dumps(
            {"profile": params.model.profile, "model": model, "params_hash": p_hash, "metrics": metrics},
            indent=2,
            sort_keys=True,
        )
        + "\n"
    )
    files = [_upload(n, staging / n) for n in ("labels.parquet", "features.parquet", "README.md", "r1interp.json")]
    return ReleasePlan(
        f"{params.model.profile}-{model}-labels", "dataset", repo_id, files, metrics, p_hash, staging=[staging]
    )


def _mean(df: pd.DataFrame, col: str) -> float | None:
    v = df[col].dropna()
    return round(float(v.mean()), 4) if len(v) else None


def describe(plan: ReleasePlan) -> str:
    size = sum(u.size for u in plan.files)
    lines = [f"{plan.repo_type} repo {plan.repo_id}: {len(plan.files)} files, {size / 1e6:.2f} MB, tag {plan.tag}"]
    lines += [f"  {u.path_in_repo:<48} {u.size:>12,d} B  sha256 {u.sha256[:16]}" for u in plan.files]
    return "\n".join(lines)


def publish(plans: list[ReleasePlan], token: str, manifest: Path = MANIFEST, log=print) -> list[dict[str, Any]]:
    """Commit every plan (or find it already published), tag, then record the releases in `manifest`."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete
    from huggingface_hub.utils import HfHubHTTPError

    hf = api(token)
    shas: dict[str, str] = {}
    try:
        for plan in plans:
            remote = remote_files(hf, plan.repo_id, plan.repo_type)
            if remote is None:
                hf.create_repo(plan.repo_id, repo_type=plan.repo_type)
                remote = remote_files(hf, plan.repo_id, plan.repo_type)
            head, existing = remote
            ours = {u.path_in_repo for u in plan.files}
            stale = sorted(set(existing) - ours - KEEP_REMOTE)
            if stale and MARKER not in existing:
                raise HubError(
                    f"{plan.repo_type} repo {plan.repo_id} exists with other content ({', '.join(stale[:5])}"
                    f"{'...' if len(stale) > 5 else ''}); refusing to overwrite it",
                    hint="publish to a new repo id (--repo / --dataset-repo)",
                )
            changed = [
                u
                for u in progress(plan.files, f"{plan.repo_id}: comparing with the Hub")
                if u.path_in_repo not in existing or not same_content(u.local, existing[u.path_in_repo])
            ]
            if not changed and not stale:
                log(f"{plan.repo_id}: already up to date at {head[:12]} (no new commit)")
                shas[plan.repo_id] = head
                continue
            ops = [CommitOperationAdd(u.path_in_repo, str(u.local)) for u in changed]
            ops += [CommitOperationDelete(p) for p in stale]
            info = hf.create_commit(
                plan.repo_id,
                ops,
                commit_message=f"r1interp release {plan.tag}",
                repo_type=plan.repo_type,
                parent_commit=head,
            )
            shas[plan.repo_id] = info.oid
            log(f"{plan.repo_id}: committed {len(changed)} changed file(s), {len(stale)} removed -> {info.oid[:12]}")
        for plan in plans:
            _tag(hf, plan, shas[plan.repo_id], log)
    except HfHubHTTPError as exc:
        raise HubError(
            f"Hub request failed: {_scrub(str(exc), token)}",
            hint="nothing was recorded in releases.yaml; re-run to resume",
        ) from None
    except (OSError, RuntimeError, ValueError) as exc:  # connection drops, refused uploads
        raise HubError(
            f"upload failed: {_scrub(str(exc), token)}", hint="nothing was recorded in releases.yaml; re-run to resume"
        ) from None
    finally:
        for plan in plans:
            plan.cleanup()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    entries = []
    for plan in plans:
        entry = {
            "name": plan.name,
            "kind": plan.repo_type,
            "repo_id": plan.repo_id,
            "revision": shas[plan.repo_id],
            "tag": plan.tag,
            "files": {u.path_in_repo: u.sha256 for u in plan.files},
            "metrics": plan.metrics,
            "params_hash": plan.params_hash,
            "published_at": now,
        }
        entry["recorded"] = add_release(entry, manifest)
        entries.append(entry)
    return entries


def _tag(hf, plan: ReleasePlan, sha: str, log) -> None:
    refs = hf.list_repo_refs(plan.repo_id, repo_type=plan.repo_type)
    existing = {t.name: t.target_commit for t in refs.tags}
    if plan.tag in existing:
        if existing[plan.tag] != sha:
            raise HubError(
                f"{plan.repo_id}: tag {plan.tag} already points at {existing[plan.tag][:12]}, not {sha[:12]}"
            )
        return
    hf.create_tag(plan.repo_id, tag=plan.tag, revision=sha, repo_type=plan.repo_type)
    log(f"{plan.repo_id}: tagged {sha[:12]} as {plan.tag}")


def _scrub(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text
