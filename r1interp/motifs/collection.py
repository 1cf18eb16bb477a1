"""Motif analysis of a collection of graphs (the `motifs` stage): one shared worker pool, long tables.

Every graph gets the same analysis (`analyze`) with the same seed, so differences between graphs are
differences between graphs, not between random streams. Results are flattened into two tables:
- z-scores: one row per (graph, null model, family, label) with real count, null mean/std, z, p, SP;
- census: one row per graph with node/edge counts, the 16 triad counts, the 8 FFL sign patterns,
  coherent/incoherent totals and, per null model, how many triad z-scores are actually free.
Rows carry the graph's descriptors (model, kind, prompt, category, correctness, origin) so the
`compare` stage can group them without re-reading the graphs.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from r1interp.motifs import nulls as nullmod
from r1interp.motifs.analyze import analyze, to_table
from r1interp.motifs.census import TRIAD_LABELS
from r1interp.motifs.graph import GraphLimits, load_neuronpedia
from r1interp.motifs.signed import FFL_PATTERNS


def census_row(result: dict[str, Any]) -> dict[str, Any]:
    g = result["graph"]
    row: dict[str, Any] = {
        "nodes": g["nodes"],
        "edges": g["edges"],
        "positive_edges": g["positive_edges"],
        "negative_edges": g["negative_edges"],
    }
    row.update({f"triad_{lab}": int(result["triad_census"][lab]) for lab in TRIAD_LABELS})
    ffl = result["ffl"]
    row.update({f"ffl_{p}": int(ffl["patterns"][p]) for p in FFL_PATTERNS})
    row["ffl_coherent"], row["ffl_incoherent"] = int(ffl["coherent"]), int(ffl["incoherent"])
    total = row["ffl_coherent"] + row["ffl_incoherent"]
    row["ffl_coherent_fraction"] = row["ffl_coherent"] / total if total else float("nan")
    for model, res in result["nulls"].items():
        row[f"free_triad_z_{model}"] = int(res["triad"]["degeneracy"]["free_dimensions"])
        row[f"samples_{model}"] = int(res["samples"])
    return row


LIMIT_KEYS = ("motifs.max_graph_mb", "motifs.max_graph_nodes", "motifs.max_graph_links")


def limits_of(cfg) -> GraphLimits:
    """The size limits of the motifs params (applied to every graph, ours and the references)."""
    return GraphLimits(cfg.max_graph_mb, cfg.max_graph_nodes, cfg.max_graph_links)


def analyze_collection(
    graphs: Iterable[dict[str, Any]], cfg
) -> tuple[pd.DataFrame, pd.DataFrame, list[str], dict[str, float]]:
    """graphs: dicts with `path` and descriptor columns.
    Returns (z-score table, census table, warnings, seconds per graph).

    Every graph gets all `cfg.samples` null samples: cutting them by a time budget would make the tables
    depend on the machine's speed. A graph slower than `cfg.max_seconds_per_graph` is only reported on
    stderr; its time goes to the (unhashed) timings, never into the tables."""
    graphs = list(graphs)
    z_tables, census, warnings_out = [], [], []
    seconds_per_graph: dict[str, float] = {}
    executor = nullmod.make_executor(cfg.workers) if cfg.workers > 1 else None
    try:
        for entry in tqdm(graphs, desc="motifs", unit="graph"):
            descriptors = {k: v for k, v in entry.items() if k != "path"}
            graph = load_neuronpedia(
                entry["path"],
                drop_errors=cfg.drop_errors,
                weight_threshold=cfg.weight_threshold,
                limits=limits_of(cfg),
                limit_names=LIMIT_KEYS,
            )
            started = time.perf_counter()
            with warnings.catch_warnings():  # collected in result["warnings"], written by the stage
                warnings.simplefilter("ignore", RuntimeWarning)
                result = analyze(
                    graph,
                    nulls=cfg.nulls,
                    samples=cfg.samples,
                    seed=cfg.seed,
                    workers=cfg.workers,
                    signs=cfg.signs,
                    with_census4=False,
                    max_seconds=None,
                    executor=executor,
                )
            seconds = time.perf_counter() - started
            seconds_per_graph[str(descriptors.get("graph", entry["path"]))] = round(seconds, 3)
            if seconds > cfg.max_seconds_per_graph:
                tqdm.write(
                    f"motifs: {descriptors.get('graph', entry['path'])} took {seconds:.0f} s "
                    f"(motifs.max_seconds_per_graph: {cfg.max_seconds_per_graph:.0f}); all samples kept"
                )
            warnings_out += [f"{descriptors['graph']}: {w}" for w in result["warnings"]]
            table = to_table(result).drop(columns=["source"])
            z_tables.append(table.assign(**descriptors))
            census.append({**descriptors, **census_row(result)})
    finally:
        if executor is not None:
            executor.shutdown()
    zscores = pd.concat(z_tables, ignore_index=True) if z_tables else pd.DataFrame()
    return zscores, pd.DataFrame(census), warnings_out, seconds_per_graph
