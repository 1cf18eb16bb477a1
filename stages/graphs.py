"""Stage `graphs`: circuit-tracer attribution graphs of every benchmark prompt, for each model."""

import r1interp  # noqa: F401  first import: pins deterministic numerics before torch/numpy load

# isort: split

import gc
import json

import pandas as pd

from r1interp import paths, stage, timings
from r1interp.graphs.build import build_model_graphs, index_frame
from r1interp.graphs.replacement import check_transcoder_set, load_replacement_model
from r1interp.graphs.summary import summarize
from r1interp.graphs.targets import check_prompts_fit
from r1interp.io import atomic_path, write_json
from r1interp.models import load_role, model_spec, read_architecture, resolve_device
from r1interp.prompts import load_profile_prompts
from r1interp.schemas import GraphIndexSchema, LabelSchema, read_parquet, validate
from r1interp.transcoders import SET_ROOT

OUT = paths.GRAPHS_DIR
LABELS = paths.LABELS_PARQUET
METRICS = paths.GRAPHS_METRICS


def feature_labels(role: str) -> dict[tuple[int, int], str]:
    """(layer, feature) -> label of this model's features, when the labels stage has run."""
    if not LABELS.exists():
        return {}
    df = read_parquet(LABELS, LabelSchema, "run `dvc repro labels`")
    df = df[(df["model"] == role) & df["label"].notna()]
    return {(int(r.layer), int(r.feature)): str(r.label) for r in df.itertuples()}


def main(params, args):
    from transformers import AutoTokenizer

    cfg = params.graphs
    device = resolve_device(params.model.device)
    prompts = load_profile_prompts(params.model.profile)
    # fail on every model's files and context before spending time on the first one
    for role in cfg.models:
        model_dir = model_spec(params.model.profile, role).local_dir
        check_transcoder_set(model_dir, SET_ROOT / role / "circuit-tracer")
        check_prompts_fit(
            AutoTokenizer.from_pretrained(model_dir), prompts, role, read_architecture(model_dir).max_positions
        )
    with atomic_path(OUT, directory=True) as tmp:
        index, edges = [], []
        for role in cfg.models:
            loaded = load_role(params.model.profile, role, device=device)
            rm = load_replacement_model(loaded.path, SET_ROOT / role / "circuit-tracer", device=device)
            rows, checked = build_model_graphs(loaded, rm, prompts, role, cfg, tmp, feature_labels(role))
            index += rows
            edges += checked
            del rm  # circuit-tracer's __del__ is noisy at interpreter exit: collect it while it can run
            gc.collect()
        attribution_seconds = round(sum(row.get("seconds") or 0.0 for row in index), 1)
        index = validate(index_frame(index), GraphIndexSchema, "graph index")
        index.to_parquet(tmp / "index.parquet", index=False)
        edges = pd.DataFrame(edges)
        edges.to_parquet(tmp / "faithfulness.parquet", index=False)
        metrics = summarize(index, edges, cfg.faithfulness.tolerance)
    write_json(METRICS, metrics)
    timings.record("graphs", {"seconds_attribution": attribution_seconds})
    print(
        json.dumps(
            {m: {k: metrics[m].get(k) for k in ("accuracy", "think", "answer") if k in metrics[m]} for m in cfg.models},
            default=str,
        )[:2000]
    )
    faith = metrics["faithfulness"]
    print(f"faithfulness: {faith['edges']} edges, max relative error {faith['max_relative_error']}")


if __name__ == "__main__":
    stage.run(main)
