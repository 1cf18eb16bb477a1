"""`r1interp publish` and `r1interp pull`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from r1interp import paths


def add_parsers(sub) -> None:
    pub = sub.add_parser("publish", help="publish transcoders (model repo) and labels (dataset repo) to the Hub")
    pub.add_argument("--model", default="reasoner", choices=("reasoner", "base"))
    pub.add_argument("--repo", required=True, help="model repo id, owner/name")
    pub.add_argument("--dataset-repo", help="dataset repo id for labels and feature summaries (omit to skip)")
    pub.add_argument("--dry-run", action="store_true", help="print what would be uploaded; no network, no token")
    pub.add_argument("--params", default="params.yaml")
    pub.add_argument("--manifest", default="releases.yaml")
    pub.set_defaults(func=_publish)

    pull = sub.add_parser("pull", help="download a released transcoder set at a pinned revision, verify, convert")
    pull.add_argument("repo", help="repo id, owner/name")
    pull.add_argument("--revision", help="commit sha or tag (a branch needs --allow-unpinned)")
    pull.add_argument("--out", help=f"output directory (default {paths.PULLED_DIR}/<owner>--<name>)")
    pull.add_argument(
        "--model",
        choices=("reasoner", "base"),
        help="check d_in and the layer count against this model of the active profile",
    )
    pull.add_argument("--params", default="params.yaml")
    pull.add_argument("--manifest", default="releases.yaml")
    pull.add_argument("--json", action="store_true", help="print the result as JSON")
    pull.add_argument(
        "--allow-unpinned",
        action="store_true",
        help="accept a branch (or no --revision) instead of a commit sha or tag; prints a warning",
    )
    pull.add_argument(
        "--require-manifest",
        action="store_true",
        help="refuse a release that --manifest does not list (as train.source: pull does)",
    )
    pull.add_argument(
        "--replace", action="store_true", help="overwrite --out even if it holds files that are not an earlier pull"
    )
    pull.set_defaults(func=_pull)


def _publish(args: argparse.Namespace) -> int:
    from r1interp.config import load_params
    from r1interp.registry.hub import token_from_env
    from r1interp.registry.publish import describe, plan_dataset_release, plan_model_release, publish

    params = load_params(args.params)
    token = None if args.dry_run else token_from_env(required=True)  # before any work
    plans = [plan_model_release(params, args.model, args.repo)]
    if args.dataset_repo:
        plans.append(plan_dataset_release(params, args.model, args.dataset_repo))
    for plan in plans:
        print(describe(plan))
    if args.dry_run:
        for plan in plans:
            plan.cleanup()
        print("dry run: nothing uploaded")
        return 0
    for entry in publish(plans, token, Path(args.manifest)):
        where = f"recorded in {args.manifest}" if entry.pop("recorded") else f"already in {args.manifest}"
        print(f"released {entry['repo_id']}@{entry['revision'][:12]} ({entry['tag']}), {where}")
    return 0


def _pull(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from r1interp.registry.pull import default_out, pull

    d_model = n_layers = None
    if args.model:
        from r1interp.config import load_params
        from r1interp.models import model_spec, read_architecture

        arch = read_architecture(model_spec(load_params(args.params).model.profile, args.model).local_dir)
        d_model, n_layers = arch.d_model, arch.n_layers
    out = Path(args.out) if args.out else default_out(args.repo)
    result = pull(
        args.repo,
        args.revision,
        out,
        d_model=d_model,
        n_layers=n_layers,
        manifest=Path(args.manifest),
        require_manifest=args.require_manifest,
        allow_unpinned=args.allow_unpinned,
        replace=args.replace,
    )
    if args.json:
        print(json.dumps(asdict(result), indent=2))
    else:
        verified = (
            "verified against releases.yaml"
            if result.verified_against_manifest
            else "not in releases.yaml (unverified)"
        )
        print(
            f"pulled {result.repo_id}@{result.revision[:12]}: layers {result.layers} -> {result.out_dir} ({verified})"
        )
        if result.missing_layers:
            print(f"missing layers: {result.missing_layers} (no circuit-tracer layout written)")
    return 0
