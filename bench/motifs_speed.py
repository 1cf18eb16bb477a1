"""Speed of the motif analysis: census and null samples on the Haiku graph, and per-sample cost vs size.

1. The Claude 3.5 Haiku fixture (errors dropped, as the CLI does by default): triad census (ours and
   igraph's), 4-node census, FFL signs, then `--samples` (default 1000) layer-preserving-configuration
   null samples with `--workers` (default 2) processes, end to end through `analyze` (target < 10 s).
2. Synthetic layered graphs with ~1k, 10k and 100k edges: seconds per null sample for every null model,
   split into drawing the graph and computing its statistics (triad census + FFL signs), in-process.

    python bench/motifs_speed.py [--samples 1000] [--workers 2] [--sizes 1000,10000,100000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from r1interp.motifs import census, nulls, signed  # noqa: E402
from r1interp.motifs.analyze import analyze  # noqa: E402
from r1interp.motifs.graph import load_neuronpedia  # noqa: E402
from r1interp.motifs.synthetic import layered_graph  # noqa: E402

HAIKU = Path(__file__).resolve().parents[1] / "data" / "reference" / "neuronpedia" / "opposite_of_small.json"


def timed(fn, repeat: int = 1):
    start = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    return out, (time.perf_counter() - start) / repeat


def haiku(samples: int, workers: int) -> None:
    g = load_neuronpedia(HAIKU)
    print(f"Haiku fixture: {g.n_nodes} nodes, {g.n_edges} edges (errors dropped)")
    tri, t_ours = timed(lambda: census.triad_census(g), 50)
    ref, t_ig = timed(lambda: census.triad_census(g, method="igraph"), 20)
    assert tri == ref
    _, t4 = timed(lambda: census.census4(g))
    ffl, tf = timed(lambda: signed.ffl_census(g), 50)
    print(
        f"  triad census {t_ours * 1e3:.2f} ms (igraph {t_ig * 1e3:.2f} ms, equal); 4-node census {t4:.2f} s; "
        f"FFL signs {tf * 1e3:.2f} ms"
    )
    print("  triads: " + ", ".join(f"{k} {v}" for k, v in tri.items() if v))
    print(f"  FFL: {ffl['patterns']} coherent {ffl['coherent']} incoherent {ffl['incoherent']}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the degeneracy warning is printed below
        res, total = timed(
            lambda: analyze(
                g,
                nulls=("layer_configuration",),
                samples=samples,
                workers=workers,
                with_census4=False,
                max_seconds=None,
            )
        )
    m = res["nulls"]["layer_configuration"]
    z = {k: round(v, 2) for k, v in m["triad"]["z"].items() if np.isfinite(v)}
    print(
        f"  layer_configuration: {m['samples']} samples, {workers} workers, {total:.2f} s end to end "
        f"(analyze incl. census and pool start; target < 10 s)"
    )
    print(f"    triad z {z}")
    print(f"    degeneracy: {m['triad']['degeneracy']['message']}")
    print("    FFL z " + ", ".join(f"{k} {v:.2f}" for k, v in m["ffl"]["z"].items()))


def sizes(targets: list[int], repeat_budget: float = 4.0) -> None:
    print("\nper null sample vs graph size (in-process, one core; draw + triad census + FFL signs)")
    print(f"{'edges':>8} {'nodes':>6} {'model':<20} {'draw ms':>10} {'stats ms':>10} {'total ms':>10}")
    for m in targets:
        layers = 12 if m <= 2000 else 16 if m <= 20000 else 20
        width = max(8, int(np.sqrt(m / (layers * 1.5))) + 4)
        g = layered_graph(layers, width, m, seed=0)
        for model in nulls.NULL_MODELS:
            spec = nulls.make_spec(g, model)
            rng = np.random.default_rng(0)
            drawn, t_draw = timed(lambda: nulls.draw(spec, rng))
            _, t_stats = timed(lambda: nulls.graph_stats(spec, *drawn))
            reps = max(1, min(20, int(repeat_budget / max(t_draw + t_stats, 1e-4))))
            if reps > 1:
                drawn, t_draw = timed(lambda: nulls.draw(spec, rng), reps)
                _, t_stats = timed(lambda: nulls.graph_stats(spec, *drawn), reps)
            print(
                f"{g.n_edges:>8} {g.n_nodes:>6} {model:<20} {t_draw * 1e3:>10.2f} {t_stats * 1e3:>10.2f} "
                f"{(t_draw + t_stats) * 1e3:>10.2f}"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sizes", default="1000,10000,100000")
    args = ap.parse_args()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average {load} (timings are wall-clock: other load inflates them)")
    haiku(args.samples, args.workers)
    sizes([int(x) for x in args.sizes.split(",") if x])


if __name__ == "__main__":
    main()
