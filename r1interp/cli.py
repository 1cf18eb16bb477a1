"""The `r1interp` command line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from r1interp.errors import R1InterpError


def _params_check(args: argparse.Namespace) -> int:
    from r1interp.config import load_params

    params = load_params(args.file)
    print(f"{args.file}: ok (profile {params.model.profile})")
    return 0


def _prompts_check(args: argparse.Namespace) -> int:
    from r1interp.prompts import load_prompts

    for path in args.files:
        prompts = load_prompts(path)
        cats = sorted({p.category for p in prompts})
        print(f"{path}: ok ({len(prompts)} prompts; categories: {', '.join(cats)})")
    return 0


def _sweep_pareto(args: argparse.Namespace) -> int:
    from r1interp import sweep

    points = sweep.points_from_exp_show(sweep.exp_show_json(args.repo))
    if not points:
        print("no experiment has transcoder metrics yet: run `dvc exp run --queue -S ...` then `dvc exp run --run-all`")
        return 1
    front = sweep.pareto_front(points)
    path = sweep.write_report(points, front, Path(args.repo) / args.out)
    for p in sorted(points, key=lambda p: (p.model, p.l0)):
        mark = "*" if p in front else " "
        print(f"{mark} {p.name:<24} {p.model:<9} CE+ {p.ce_increase:.4f}  L0 {p.l0:6.2f}  dead {p.dead_pct:5.1f}%  {p.params}")
    print(f"Pareto front (*): {len(front)} of {len(points)} points -> {path}")
    return 0


def _sweep_apply(args: argparse.Namespace) -> int:
    from r1interp import sweep
    from r1interp.errors import R1InterpError

    points = sweep.points_from_exp_show(sweep.exp_show_json(args.repo))
    chosen = [p for p in points if args.experiment in (p.name, p.rev) or p.rev.startswith(args.experiment)]
    if not chosen:
        names = ", ".join(sorted({p.name for p in points})) or "none"
        raise R1InterpError(f"no experiment named {args.experiment!r} with transcoder metrics; known: {names}")
    changed = sweep.apply(chosen[0].params, Path(args.repo) / args.params)
    print(f"{args.params}: " + (", ".join(f"train.{k} = {v}" for k, v in changed.items()) or "already matches") + f" (from {chosen[0].name})")
    return 0


def _features_show(args: argparse.Namespace) -> int:
    from transformers import AutoTokenizer

    from r1interp.autointerp.show import render_feature
    from r1interp.config import load_params
    from r1interp.models import model_spec, token_strings

    params = load_params(Path(args.repo) / "params.yaml")
    tokenizer = AutoTokenizer.from_pretrained(Path(args.repo) / model_spec(params.model.profile, args.model).local_dir)
    vocab = token_strings(tokenizer)
    threshold = params.labels.highlight_threshold
    print(render_feature(Path(args.repo), args.model, args.layer, args.feature, vocab, args.n, threshold))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="r1interp",
        description="Mechanistic-interpretability registry for reasoning models (DVC pipeline + releases).",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    params = sub.add_parser("params", help="validate params files")
    params_sub = params.add_subparsers(dest="params_command", metavar="SUBCOMMAND")
    check = params_sub.add_parser("check", help="validate a params file (default params.yaml)")
    check.add_argument("file", nargs="?", default="params.yaml")
    check.set_defaults(func=_params_check)

    prompts = sub.add_parser("prompts", help="benchmark prompt sets")
    prompts_sub = prompts.add_subparsers(dest="prompts_command", metavar="SUBCOMMAND")
    pcheck = prompts_sub.add_parser("check", help="validate prompt files")
    pcheck.add_argument("files", nargs="+")
    pcheck.set_defaults(func=_prompts_check)

    sweep = sub.add_parser("sweep", help="transcoder sweeps run as DVC experiments")
    sweep_sub = sweep.add_subparsers(dest="sweep_command", metavar="SUBCOMMAND")
    pareto = sweep_sub.add_parser("pareto", help="Pareto front of CE increase vs L0 (and dead %%) over experiments")
    pareto.add_argument("--repo", default=".")
    pareto.add_argument("--out", default="reports/sweep")
    pareto.set_defaults(func=_sweep_pareto)
    apply = sweep_sub.add_parser("apply", help="write an experiment's transcoder params into params.yaml")
    apply.add_argument("experiment", help="experiment name or revision")
    apply.add_argument("--repo", default=".")
    apply.add_argument("--params", default="params.yaml")
    apply.set_defaults(func=_sweep_apply)

    features = sub.add_parser("features", help="inspect transcoder features")
    features_sub = features.add_subparsers(dest="features_command", metavar="SUBCOMMAND")
    show = features_sub.add_parser("show", help="a feature's stats, label, scores and marked example windows")
    show.add_argument("layer", type=int)
    show.add_argument("feature", type=int)
    show.add_argument("--model", default="reasoner", choices=("reasoner", "base"))
    show.add_argument("-n", type=int, default=5, help="examples per kind")
    show.add_argument("--repo", default=".")
    show.set_defaults(func=_features_show)

    from r1interp.motifs.cli import add_parser as add_motifs_parser

    add_motifs_parser(sub)

    from r1interp.registry.cli import add_parsers as add_registry_parsers

    add_registry_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return func(args)
    except R1InterpError as exc:
        if args.debug or os.environ.get("R1INTERP_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
