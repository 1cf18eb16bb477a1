"""`r1interp motifs PATH.json`: motif census and null-model z-scores of one attribution graph.

`add_parser(subparsers)` registers the subcommand on the main CLI's subparsers (it sets `func`, as the
other subcommands do); errors are R1InterpError subclasses, printed by the main CLI as one line.
With --json the only thing on stdout is one JSON object (NaN/inf written as null); warnings go to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path
from typing import Any

from r1interp.errors import R1InterpError
from r1interp.motifs.graph import GraphLimits
from r1interp.motifs.nulls import NULL_MODELS, SIGN_MODES


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "motifs",
        help="triad/4-node/FFL-sign census of a Neuronpedia graph JSON with null-model z-scores",
        description="Motif census of an attribution graph (Neuronpedia JSON) against seeded null models.",
    )
    p.add_argument("path", metavar="PATH.json", help="Neuronpedia attribution-graph JSON")
    p.add_argument(
        "--null",
        action="append",
        choices=NULL_MODELS,
        dest="nulls",
        metavar="MODEL",
        help=f"null model, repeatable (default: all of {', '.join(NULL_MODELS)})",
    )
    p.add_argument("--samples", type=_non_negative_int, default=1000, help="null samples per model (default 1000)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed, 0 to 2**32-1 (default 0)")
    p.add_argument("--workers", type=_positive_int, default=2, help="worker processes (default 2)")
    p.add_argument(
        "--signs",
        choices=SIGN_MODES,
        default="keep",
        help="keep: signs stay on rewired edges; shuffle: permute signs over edges (default keep)",
    )
    p.add_argument("--keep-errors", action="store_true", help="keep error nodes (default: drop them)")
    p.add_argument("--drop-embeddings", action="store_true", help="drop embedding (token) nodes")
    p.add_argument("--drop-logits", action="store_true", help="drop logit nodes")
    p.add_argument(
        "--weight-threshold",
        type=float,
        default=0.0,
        help="keep links with |weight| > this (default 0: every non-zero link)",
    )
    p.add_argument(
        "--max-seconds",
        type=float,
        default=600.0,
        help="time budget for all null models; fewer samples (with a warning) beyond it (default 600)",
    )
    p.add_argument("--no-census4", action="store_true", help="skip the exact 4-node census")
    p.add_argument(
        "--node",
        metavar="ID",
        help="also list the feed-forward-loop roles of this node (or id prefix, "
        "e.g. 1_964 for feature 964 of layer 1 at every position)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--out", type=Path, help="also write the JSON result to this file (atomically)")
    p.add_argument(
        "--max-mb",
        type=_positive_int,
        default=GraphLimits.max_mb,
        help=f"refuse graph files larger than this many MB, before reading them (default {GraphLimits.max_mb})",
    )
    p.add_argument(
        "--max-nodes",
        type=_positive_int,
        default=GraphLimits.max_nodes,
        help=f"refuse graphs with more nodes, before building them (default {GraphLimits.max_nodes})",
    )
    p.add_argument(
        "--max-links",
        type=_positive_int,
        default=GraphLimits.max_links,
        help=f"refuse graphs with more links, before building them (default {GraphLimits.max_links})",
    )
    p.set_defaults(func=run)
    return p


def _positive_int(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return v


def _seed(text: str) -> int:
    v = int(text)
    if not 0 <= v <= 2**32 - 1:
        raise argparse.ArgumentTypeError("must be between 0 and 4294967295")
    return v


def _non_negative_int(text: str) -> int:
    v = int(text)
    if v < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return v


def run(args: argparse.Namespace) -> int:
    from r1interp.motifs.analyze import analyze, jsonable
    from r1interp.motifs.graph import load_neuronpedia

    if args.weight_threshold < 0 or not math.isfinite(args.weight_threshold):
        raise R1InterpError(f"--weight-threshold must be a finite number >= 0, got {args.weight_threshold}")
    check_out(args.out)  # before any work; the graph file itself is checked (type, size) before reading it
    graph = load_neuronpedia(
        args.path,
        drop_errors=not args.keep_errors,
        weight_threshold=args.weight_threshold,
        keep_embeddings=not args.drop_embeddings,
        keep_logits=not args.drop_logits,
        limits=GraphLimits(args.max_mb, args.max_nodes, args.max_links),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        result = analyze(
            graph,
            nulls=tuple(dict.fromkeys(args.nulls or NULL_MODELS)),
            samples=args.samples,
            seed=args.seed,
            workers=args.workers,
            signs=args.signs,
            with_census4=False if args.no_census4 else None,
            max_seconds=args.max_seconds if args.max_seconds > 0 else None,
        )
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    doc = jsonable(result)
    roles = None
    if args.node:
        from r1interp.motifs.roles import node_roles, render_roles

        roles = node_roles(graph, args.node)
        doc["node_roles"] = roles
    if args.out:
        from r1interp.io import write_json

        write_json(args.out, doc)
    if args.json:
        print(json.dumps(doc, allow_nan=False, sort_keys=False))
    else:
        print(render(result))
        if args.node:
            print()
            print(render_roles(roles, args.node))
    return 0


def check_out(out: Path | None) -> None:
    """--out can be written: checked before the graph is read, so a bad path does not waste the computation."""
    if out is not None and out.is_dir():
        raise R1InterpError(f"--out {out}: is a directory; give a file path")
    if out is not None and not out.parent.is_dir():
        raise R1InterpError(f"--out {out}: folder {out.parent} does not exist")


def _fmt(v: float | None, width: int = 8, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return f"{'-':>{width}}"
    return f"{v:>{width}.{digits}f}"


def render(result: dict[str, Any]) -> str:
    """Readable tables: counts, z per null model, FFL signs, degeneracy notes."""
    g = result["graph"]
    lines = [
        f"{g['source']}: {g['nodes']} nodes, {g['edges']} edges "
        f"({g['positive_edges']} +, {g['negative_edges']} -); kinds "
        + ", ".join(f"{k} {v}" for k, v in g["kinds"].items())
    ]
    dropped = {k: v for k, v in g["dropped"].items() if v}
    if dropped:
        lines.append("dropped: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in dropped.items()))
    models = list(result["nulls"])
    head = f"{'triad':<7}{'count':>9}" + "".join(f"{m[:20]:>22}" for m in models)
    lines += ["", "z-scores per null model (- : null fixes the count, z undefined)", head]
    for label, count in result["triad_census"].items():
        row = f"{label:<7}{count:>9}"
        for m in models:
            row += f"{_fmt(result['nulls'][m]['triad']['z'][label], 22)}"
        lines.append(row)
    ffl = result["ffl"]
    head = f"{'pattern':<11}{'count':>9}" + "".join(f"{m[:20]:>22}" for m in models)
    lines += ["", f"feed-forward loops {ffl['order']}", head]
    for label in list(ffl["patterns"]) + ["coherent", "incoherent"]:
        count = ffl["patterns"].get(label, ffl.get(label))
        row = f"{label:<11}{count:>9}"
        for m in models:
            row += f"{_fmt(result['nulls'][m]['ffl']['z'][label], 22)}"
        lines.append(row)
    if models:
        lines += ["", "null models:"]
        for m in models:
            res = result["nulls"][m]
            lines.append(f"  {m}: {res['samples']} samples, signs {res['signs']}, {res['seconds']:.1f} s")
            lines.append(f"    triads: {res['triad']['degeneracy']['message']}")
            lines.append(f"    FFL signs: {res['ffl']['degeneracy']['message']}")
    if result.get("census4"):
        top = sorted(result["census4"].items(), key=lambda kv: -kv[1])[:5]
        lines += ["", "most frequent connected 4-node classes: " + ", ".join(f"{k} {v}" for k, v in top)]
    for w in result.get("warnings", []):
        lines.append(f"warning: {w}")
    return "\n".join(lines)
