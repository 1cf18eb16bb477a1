"""Plumbing shared by the thin stage scripts: params, pinned numerics, threads, and one-line errors."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from r1interp import numerics
from r1interp.config import Params, load_params
from r1interp.errors import R1InterpError


def run(main: Callable[[Params, argparse.Namespace], None], add_args: Callable[[argparse.ArgumentParser], None] | None = None) -> None:
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
        numerics.require()
        numerics.set_threads(params.model.threads)
        main(params, args)
    except R1InterpError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        sys.exit(2)
