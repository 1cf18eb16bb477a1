"""Stage `critical`: where fine-tuning changed the weights (and which features align with the change), and
which features carry the most influence on correct answers in the attribution graphs."""

import r1interp  # noqa: F401  first import: pins deterministic numerics before torch/numpy load

# isort: split

import json
import time
from pathlib import Path

import pandas as pd

from r1interp import paths, stage, timings
from r1interp.graphs.schema import read_graph
from r1interp.io import atomic_path, write_json
from r1interp.models import model_spec
from r1interp.reasoning import critical
from r1interp.schemas import GraphIndexSchema, LabelSchema, read_parquet
from r1interp.transcoders import SET_ROOT, load_coders

OUT = paths.CRITICAL_DIR
METRICS = paths.CRITICAL_METRICS


def main(params, args):
    cfg = params.critical
    started = time.perf_counter()
    reasoner = model_spec(params.model.profile, "reasoner").local_dir
    base = model_spec(params.model.profile, "base").local_dir
    labels = read_parquet(paths.LABELS_PARQUET, LabelSchema, "run `dvc repro labels`")
    labels = labels[(labels["model"] == "reasoner") & labels["label"].notna()][["layer", "feature", "label"]]

    diff = critical.weight_diff(reasoner, base)
    coders = load_coders(SET_ROOT / "reasoner" / "sparsify")
    aligned = critical.aligned_features(reasoner, base, coders, cfg.rank).merge(
        labels, on=["layer", "feature"], how="left"
    )

    index = read_parquet(paths.GRAPH_INDEX, GraphIndexSchema, "run `dvc repro graphs`")
    ok = index[(index["status"] == "ok") & (index["model"] == "reasoner") & (index["kind"] == "answer")]
    graphs = [
        (read_graph(paths.GRAPHS_DIR / r.path), None if pd.isna(r.correct) else bool(r.correct))
        for r in ok.itertuples()
    ]
    ranking = critical.attribution_ranking(graphs).merge(labels, on=["layer", "feature"], how="left")

    with atomic_path(OUT, directory=True) as tmp:
        diff.to_csv(tmp / "weight_diff.csv", index=False)
        aligned.sort_values("decoder_alignment", ascending=False).head(cfg.top).to_csv(
            tmp / "decoder_aligned_features.csv", index=False
        )
        aligned.sort_values("encoder_alignment", ascending=False).head(cfg.top).to_csv(
            tmp / "encoder_aligned_features.csv", index=False
        )
        ranking.head(cfg.top).to_csv(tmp / "attribution_ranking.csv", index=False)
        _plot(diff, tmp / "weight_diff.png")
    by_module = diff[diff["layer"].notna()].groupby("module")["relative_change"].mean().sort_values(ascending=False)
    metrics = {
        "largest_relative_change": diff.sort_values("relative_change", ascending=False)
        .head(3)[["tensor", "relative_change"]]
        .to_dict("records"),
        "mean_relative_change_by_module": {k: round(float(v), 4) for k, v in by_module.items()},
        "decoder_alignment": {
            "max": round(float(aligned["decoder_alignment"].max()), 4),
            "mean": round(float(aligned["decoder_alignment"].mean()), 4),
            "chance": round(float(aligned["chance"].iloc[0]), 4),
        },
        "encoder_alignment": {
            "max": round(float(aligned["encoder_alignment"].max()), 4),
            "mean": round(float(aligned["encoder_alignment"].mean()), 4),
        },
        "graphs": {
            "correct": sum(1 for _, c in graphs if c is True),
            "incorrect": sum(1 for _, c in graphs if c is False),
        },
        "top_feature_for_correct_answers": ranking.head(1)[["layer", "feature", "influence_correct", "label"]].to_dict(
            "records"
        ),
    }
    write_json(METRICS, json.loads(json.dumps(metrics, default=str)))
    timings.record("critical", {"seconds": round(time.perf_counter() - started, 1)})
    print(json.dumps(metrics, indent=1, default=str)[:3000])


def _plot(diff: pd.DataFrame, path: Path) -> None:
    from r1interp.reasoning.maps import heatmap

    layered = diff[diff["layer"].notna()].assign(layer=lambda d: d["layer"].astype(int))
    heatmap(layered, "module", "layer", "relative_change", path, "relative weight change, reasoner vs base", fmt=".2f")


if __name__ == "__main__":
    stage.run(main)
