"""The whole motif analysis of one attribution graph as a JSON-ready dict (and a long table).

Why one entry point: the CLI, the `motifs` DVC stage and notebooks all want the same numbers with the
same seeds; `analyze` fixes the order of work (census, 4-node census, FFL signs, then each null model)
and the shape of the result:

    graph          source, nodes, edges, kinds, layers, what the loader dropped
    triad_census   {MAN label: count}
    census4        {4-node class name: count} (199 connected classes) or None when skipped
    ffl            {patterns: {"+++": n, ...}, coherent, incoherent, total, order}
    nulls          {model: {samples, requested_samples, seed, signs, rounds, seconds,
                            triad: {real, mean, std, z, p, significance_profile, degeneracy},
                            ffl:   {... same, plus derived labels "coherent"/"incoherent"}}}
    warnings       [str]

Time budget: before running a null model in full, a few samples are timed in-process; if the estimate
for the rest exceeds the model's share of `max_seconds`, a warning with the estimate is issued and the
sample count is cut to what fits (never below the timed samples) instead of running for hours.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from r1interp.motifs import nulls as nullmod
from r1interp.motifs.census import TRIAD_LABELS, census4, triad_census
from r1interp.motifs.graph import AttributionGraph, load_neuronpedia
from r1interp.motifs.signed import COHERENT, FFL_PATTERNS, INCOHERENT, ffl_census
from r1interp.motifs.stats import summarize_family

CENSUS4_MAX_EDGES = 20_000  # above this the exact 4-node census is skipped unless asked for
POOL_START_SECONDS = 1.5  # rough cost of starting spawn workers, used in time estimates


def analyze(
    graph: AttributionGraph | str | Path,
    nulls: Sequence[str] = nullmod.NULL_MODELS,
    samples: int = 1000,
    seed: int = 0,
    workers: int = 2,
    signs: str = "keep",
    *,
    rounds: int = nullmod.DEFAULT_ROUNDS,
    with_census4: bool | None = None,
    ffl_induced: bool = True,
    max_seconds: float | None = 600.0,
    timing_samples: int = 3,
    executor: Any = None,
) -> dict[str, Any]:
    """Census, signed FFLs and null-model statistics of one graph (see the module docstring).

    with_census4: None runs the exact 4-node census only up to CENSUS4_MAX_EDGES edges.
    max_seconds: total budget for the null models (None: no limit).
    executor: a pool from `nulls.make_executor(workers)` to reuse across graphs (else one per call).
    """
    if not isinstance(graph, AttributionGraph):
        graph = load_neuronpedia(graph)
    for model in nulls:
        if model not in nullmod.NULL_MODELS:
            raise ValueError(f"unknown null model {model!r}; known: {', '.join(nullmod.NULL_MODELS)}")
    if signs not in nullmod.SIGN_MODES:
        raise ValueError(f"unknown sign mode {signs!r}; known: {', '.join(nullmod.SIGN_MODES)}")
    if samples < 0 or workers < 1:
        raise ValueError("samples must be >= 0 and workers >= 1")
    out_warnings: list[str] = []

    def warn(msg: str) -> None:
        out_warnings.append(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)

    layers = graph.layers
    result: dict[str, Any] = {
        "graph": {
            "source": graph.source,
            "nodes": graph.n_nodes,
            "edges": graph.n_edges,
            "kinds": graph.kind_counts(),
            "layers": sorted({int(x) for x in layers}),
            "positive_edges": int((graph.signs > 0).sum()),
            "negative_edges": int((graph.signs < 0).sum()),
            "dropped": dict(graph.dropped),
        },
        "triad_census": triad_census(graph),
    }
    if with_census4 is None:
        with_census4 = graph.n_edges <= CENSUS4_MAX_EDGES
        if not with_census4:
            warn(
                f"4-node census skipped: {graph.n_edges} edges > {CENSUS4_MAX_EDGES} (pass with_census4=True to force)"
            )
    result["census4"] = census4(graph) if with_census4 else None
    result["ffl"] = ffl_census(graph, induced=ffl_induced)
    result["nulls"] = {}
    if samples == 0 or not nulls:
        result["warnings"] = out_warnings
        return result

    budget = None if max_seconds is None else max_seconds / len(nulls)
    own = executor is None
    if own:
        executor = nullmod.make_executor(workers) if workers > 1 and samples > timing_samples else None
    try:
        for model in nulls:
            result["nulls"][model] = _run_model(
                graph, model, samples, seed, workers, signs, rounds, ffl_induced, budget, timing_samples, executor, warn
            )
    finally:
        if own and executor is not None:
            executor.shutdown()
    result["warnings"] = out_warnings
    return result


def _run_model(
    graph, model, samples, seed, workers, signs, rounds, ffl_induced, budget, timing_samples, executor, warn
) -> dict[str, Any]:
    t0 = time.perf_counter()
    spec = nullmod.make_spec(
        graph, model, signs=signs, rounds=rounds, families=("triad", "ffl"), ffl_induced=ffl_induced
    )
    first = min(samples, max(1, timing_samples))
    head = nullmod.sample_nulls(spec, first, seed=seed)
    per_sample = (time.perf_counter() - t0) / first
    rest = samples - first
    parallel = workers if executor is not None else 1
    estimate = per_sample * rest / parallel
    run_rest = rest
    if budget is not None and rest and estimate > budget:
        run_rest = max(0, min(rest, int((budget - (time.perf_counter() - t0)) / per_sample * parallel)))
        warn(
            f"{model}: {samples} samples would take ~{estimate + per_sample * first:.0f} s "
            f"({per_sample * 1e3:.1f} ms per sample, {parallel} worker(s)), over the {budget:.0f} s budget; "
            f"running {first + run_rest} samples (raise max_seconds / --max-seconds for more)"
        )
    tail = nullmod.sample_nulls(spec, run_rest, seed=seed, workers=parallel, start=first, executor=executor)
    x = np.concatenate([head, tail])
    real = nullmod.real_stats(spec)
    out = {
        "samples": int(len(x)),
        "requested_samples": int(samples),
        "seed": int(seed),
        "signs": signs,
        "rounds": int(rounds) if model in ("configuration", "layer_configuration") else None,
        "triad": summarize_family(real[:16], x[:, :16], TRIAD_LABELS),
        "ffl": summarize_family(
            real[16:24], x[:, 16:24], FFL_PATTERNS, derived={"coherent": COHERENT, "incoherent": INCOHERENT}
        ),
    }
    out["seconds"] = round(time.perf_counter() - t0, 3)
    for family in ("triad", "ffl"):
        deg = out[family]["degeneracy"]
        if (
            (deg["single_free_z"] and len(deg["varying"]) > 1)
            or deg.get("fixed_real_differs")
            or deg.get("real_obeys_relations") is False
            or deg["insufficient_samples"]
        ):
            warn(f"{model} ({family}): {deg['message']}")
    return out


def to_table(result: dict[str, Any]):
    """Long table (pandas DataFrame): one row per (null, family, label) with real/mean/std/z/p/sp."""
    import pandas as pd

    rows = []
    for model, res in result["nulls"].items():
        for family in ("triad", "ffl"):
            fam = res[family]
            for label in fam["real"]:
                rows.append({
                    "source": result["graph"]["source"], "null": model, "family": family, "label": label,
                    "real": fam["real"][label], "mean": fam["mean"][label], "std": fam["std"][label],
                    "z": fam["z"][label], "p": fam["p"][label],
                    "sp": fam["significance_profile"].get(label, float("nan")),
                    "samples": res["samples"], "signs": res["signs"],
                })  # fmt: skip
    return pd.DataFrame(rows)


def jsonable(obj: Any) -> Any:
    """Replace NaN/inf by None and numpy scalars by Python ones, recursively (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if np.isfinite(v) else None
    return obj
