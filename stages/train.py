"""Stage `train@<group>`: sparsify skip transcoders on the MLPs of one layer group, per model."""

import r1interp  # noqa: F401  first import: pins deterministic numerics before torch/numpy load

# isort: split

import json
from pathlib import Path

from r1interp import paths, stage, timings
from r1interp.data import check_token_dataset, load_token_split, training_rows
from r1interp.io import atomic_path
from r1interp.models import load_role, model_spec, read_architecture, resolve_device
from r1interp.transcoders import TRAIN_ROOT, excluded_token_ids, group_layers
from r1interp.transcoders.train import fit, fit_distributed

# Run-to-run varying numbers: reported in reports/timings/, never inside the hashed training.json.
TIMING_KEYS = ("seconds", "tokens_per_second", "wall_seconds_including_launch")


def add_args(parser):
    parser.add_argument("group")


def pull_layers(cfg, role: str, layers: list[int], arch, out: Path) -> dict:
    """Released coders for `layers` into `out/layers.N.mlp/` (verified, checked against the model)."""
    import shutil
    import tempfile

    from r1interp.registry.pull import pull

    with tempfile.TemporaryDirectory(prefix="r1interp-train-pull-") as scratch:
        result = pull(
            cfg.repos[role],
            cfg.revision,
            Path(scratch) / "set",
            d_model=arch.d_model,
            layers=layers,
            require_manifest=cfg.require_manifest,
            allow_unpinned=cfg.allow_unpinned,
            how_to_allow="train.pull.allow_unpinned: true",
        )
        out.mkdir(parents=True, exist_ok=True)
        for coder in sorted((Path(scratch) / "set" / "sparsify").iterdir()):
            shutil.move(str(coder), str(out / coder.name))
    return {
        "source": "pull",
        "repo_id": result.repo_id,
        "revision": result.revision,
        "pulled_layers": result.layers,
        "missing_layers": result.missing_layers,
        "verified_against_manifest": result.verified_against_manifest,
    }


def main(params, args):
    from dvclive import Live

    tp = params.train
    for role in tp.models:  # layer ranges need the model's depth: checked from its config.json before any work
        group_layers(args.group, read_architecture(model_spec(params.model.profile, role).local_dir).n_layers)
    device = resolve_device(params.model.device)
    ds, meta = load_token_split(paths.TOKENS_TRAIN, hint="run `dvc repro tokens`")
    rows = min(len(ds), max(1, tp.max_tokens // meta["ctx_len"]))
    dataset = training_rows(ds, rows, tp.seed).with_format("torch")
    out = TRAIN_ROOT / args.group
    with atomic_path(out, directory=True) as tmp:
        summary = {}
        for role in tp.models:
            loaded = load_role(params.model.profile, role, device=device)
            check_token_dataset(ds, meta, str(paths.TOKENS_TRAIN), loaded.arch.vocab_size)
            layers = group_layers(args.group, loaded.arch.n_layers)
            pulled = {}
            if tp.source == "pull":
                pulled = pull_layers(tp.pull, role, layers, loaded.arch, tmp / role)
                layers = pulled["missing_layers"] if tp.pull.missing_layers == "train" else []
                if not layers:
                    summary[role] = pulled
                    print(
                        f"train {role} {args.group}: pulled layers {pulled['pulled_layers']} from {pulled['repo_id']}"
                        f"@{pulled['revision'][:12]}; missing {pulled['missing_layers']} (train.pull.missing_layers: skip)"
                    )
                    continue
            hookpoints = [loaded.arch.mlp_hookpoint(layer) for layer in layers]
            exclude = excluded_token_ids(loaded.tokenizer) if tp.exclude_special_tokens else []
            # The dvclive log is written to a temp folder and moved into place when training ends: an
            # interrupted run keeps the previous complete log instead of truncated TSVs.
            with atomic_path(paths.train_live_dir(role, args.group), directory=True) as live_dir:
                if tp.distributed.enabled:
                    job = {
                        "model_dir": str(model_spec(params.model.profile, role).local_dir),
                        "tokens": paths.TOKENS_TRAIN.as_posix(),
                        "rows": rows,
                        "exclude_tokens": exclude,
                        "live_dir": live_dir.as_posix(),
                    }
                    result = fit_distributed(job, tp, hookpoints, loaded.arch.d_model, tmp / role)
                else:
                    with Live(dir=live_dir.as_posix(), save_dvc_exp=False, dvcyaml=None, report=None) as live:
                        result = fit(loaded.model, dataset, tp, hookpoints, exclude, tmp / role, live)
            volatile = {k: result[k] for k in TIMING_KEYS if k in result}
            timings.record(f"train@{args.group}", {role: volatile})
            summary[role] = {k: v for k, v in result.items() if k != "history" and k not in TIMING_KEYS}
            if pulled:
                summary[role].update(pulled, trained_layers=layers)
            print(
                f"train {role} {args.group}: {len(hookpoints)} coders, {result['tokens']} tokens, {result['tokens_per_second']:.0f} tok/s"
            )
        (tmp / "training.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    stage.run(main, add_args)
