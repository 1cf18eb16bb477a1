"""Plumbing shared by the thin stage scripts: params, pinned numerics, threads, and one-line errors."""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import r1interp
from r1interp import numerics, timings
from r1interp.config import Params, load_params
from r1interp.errors import R1InterpError


def run(
    main: Callable[[Params, argparse.Namespace], None],
    add_args: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """Parse `--params`, validate the whole file and the numerics before any work, run `main`, print errors
    as one line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--params", default="params.yaml")
    if add_args:
        add_args(parser)
    args = parser.parse_args()
    debug = bool(os.environ.get("R1INTERP_DEBUG"))
    try:
        params = load_params(args.params)
        numerics.require(params.model.numerics, args.params)
        numerics.set_threads(params.model.threads)
        main(params, args)
        timings.record(
            stage_name(parser, args),
            {
                "wall_seconds": round(time.perf_counter() - r1interp.STARTED, 1),  # imports included
                "cpu_seconds": round(
                    sum(
                        resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
                        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                    ),
                    1,
                ),
                # Linux reports ru_maxrss in KiB: the stage's peak resident memory (its largest child's, if larger)
                "peak_rss_mb": round(
                    max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
                    / 1024
                ),
            },
        )
    except R1InterpError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        sys.exit(2)


def stage_name(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """The DVC stage name of this run: `stages/organism_eval.py` -> organism-eval, `stages/train.py all`
    -> train@all (a foreach / matrix stage's script takes its key as the positional argument)."""
    keys = [str(getattr(args, a.dest)) for a in parser._actions if not a.option_strings and a.dest != "help"]
    name = Path(sys.argv[0]).stem.replace("_", "-")
    return f"{name}@{keys[0]}" if keys else name
