"""Stage `motifs`: census, null models and z-scores of every attribution graph and the reference graphs."""

import r1interp  # noqa: F401  first import: pins deterministic numerics before torch/numpy load

# isort: split

import json
import time
from pathlib import Path

import pandas as pd

from r1interp import paths, stage, timings
from r1interp.errors import ArtifactError
from r1interp.io import atomic_path, write_json
from r1interp.motifs.collection import LIMIT_KEYS, analyze_collection, limits_of
from r1interp.motifs.graph import GraphLimits, load_neuronpedia
from r1interp.schemas import GraphIndexSchema, read_parquet

GRAPHS = paths.GRAPHS_DIR
OUT = paths.MOTIF_TABLES
METRICS = paths.MOTIFS_METRICS


def graph_list(references: list[str], limits: GraphLimits) -> list[dict]:
    index = read_parquet(paths.GRAPH_INDEX, GraphIndexSchema, "run `dvc repro graphs`")
    entries = [
        {"graph": r.slug, "origin": "ours", "model": r.model, "kind": r.kind, "prompt_id": r.prompt_id,
         "category": r.category, "correct": None if pd.isna(r.correct) else bool(r.correct),
         "path": str(GRAPHS / r.path)}
        for r in index[index["status"] == "ok"].itertuples()
    ]  # fmt: skip
    for ref in references:
        path = Path(ref)
        if not path.exists():
            raise ArtifactError(f"motifs.reference_graphs: {ref} not found")
        # every reference is loaded (and so checked: file type, size, JSON, layout) before any analysis starts
        scan = load_neuronpedia(path, limits=limits, limit_names=LIMIT_KEYS).metadata.get("scan", "")
        entries.append(
            {
                "graph": path.stem,
                "origin": "reference",
                "model": scan or path.stem,
                "kind": "reference",
                "prompt_id": path.stem,
                "category": "reference",
                "correct": None,
                "path": str(path),
            }
        )
    return entries


def summary(zscores: pd.DataFrame, census: pd.DataFrame, null: str) -> dict:
    out = {}
    groups = census.groupby(["origin", "model", "kind"], sort=False)
    for (origin, model, kind), rows in groups:
        key = f"{model}/{kind}" if origin == "ours" else f"reference/{rows['graph'].iloc[0]}"
        z = zscores[zscores["graph"].isin(rows["graph"]) & (zscores["null"] == null)]
        mean_z = z.groupby("label")["z"].mean()
        out[key] = {
            "graphs": int(len(rows)),
            "edges": round(float(rows["edges"].mean()), 1),
            "ffl_coherent_fraction": round(float(rows["ffl_coherent_fraction"].mean()), 4),
            f"z_030T_{null}": _r(mean_z.get("030T")),
            f"z_coherent_{null}": _r(mean_z.get("coherent")),
            f"z_incoherent_{null}": _r(mean_z.get("incoherent")),
        }
    return out


def _r(v):
    return None if v is None or pd.isna(v) else round(float(v), 3)


def main(params, args):
    cfg = params.motifs
    started = time.perf_counter()
    entries = graph_list(cfg.reference_graphs, limits_of(cfg))
    zscores, census, warnings, seconds_per_graph = analyze_collection(entries, cfg)
    with atomic_path(OUT, directory=True) as tmp:
        zscores.to_parquet(tmp / "zscores.parquet", index=False)
        census.to_parquet(tmp / "census.parquet", index=False)
        census.to_csv(tmp / "census.csv", index=False)
        (tmp / "warnings.txt").write_text("".join(f"{w}\n" for w in warnings))
    metrics = {
        "graphs": int(len(census)),
        "nulls": list(cfg.nulls),
        "samples": cfg.samples,
        "warnings": len(warnings),
        "groups": summary(zscores, census, params.compare.null_model),
    }
    write_json(METRICS, metrics)
    timings.record(
        "motifs", {"seconds": round(time.perf_counter() - started, 1), "seconds_per_graph": seconds_per_graph}
    )
    print(json.dumps(metrics, indent=1)[:3000])


if __name__ == "__main__":
    stage.run(main)
