"""The `r1interp` command line."""

from __future__ import annotations

import argparse
import os
import sys

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
