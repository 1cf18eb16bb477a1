"""Stage `activations`: feature tables and example windows of every transcoder set, over held-out tokens."""

import r1interp  # noqa: F401  first import: pins deterministic numerics before torch/numpy load

# isort: split

import resource
import time

import numpy as np
import pyarrow.parquet as pq
import torch

from r1interp import paths, stage, timings
from r1interp.activations import collect, example_table, feature_table, logit_effects, token_batches
from r1interp.config import to_dict
from r1interp.data import load_token_split
from r1interp.io import atomic_path, write_json
from r1interp.models import load_role, resolve_device
from r1interp.schemas import ExampleSchema, FeatureSchema, validate
from r1interp.transcoders import SET_ROOT, excluded_token_ids, load_coders

OUT = paths.ACTIVATIONS_DIR


def main(params, args):
    cfg = params.activations
    device = resolve_device(params.model.device)
    ds, meta = load_token_split(paths.TOKENS_HELDOUT, hint="run `dvc repro tokens`")
    rows = min(len(ds), max(1, cfg.max_tokens // meta["ctx_len"]))
    ids_view = ds.with_format("numpy")

    def token_rows(selected):
        return ids_view[selected]["input_ids"] if len(selected) else np.zeros((0, meta["ctx_len"]), dtype=np.int64)

    with atomic_path(OUT, directory=True) as tmp:
        summary = {}
        for role in params.train.models:
            started = time.perf_counter()
            loaded = load_role(params.model.profile, role, device=device)
            coders = load_coders(SET_ROOT / role / "sparsify", device=device)
            exclude = excluded_token_ids(loaded.tokenizer)
            collectors = collect(
                loaded.model,
                coders,
                token_batches(ds, rows, cfg.batch_size, device),
                cfg,
                exclude_token_ids=exclude,
                seed=cfg.seed,
            )
            features, examples = [], []
            for layer, col in collectors.items():
                values, ids = logit_effects(coders[layer], loaded.model, cfg.top_output_tokens)
                features.append(feature_table(col, role, layer, values.cpu(), ids.cpu(), loaded.tokenizer))
                examples.append(example_table(col, role, layer, token_rows))
            import pandas as pd
            import pyarrow as pa

            features = validate(pd.concat(features, ignore_index=True), FeatureSchema, f"{role} features")
            examples = pa.concat_tables(examples)
            validate(examples.to_pandas(), ExampleSchema, f"{role} examples")
            (tmp / role).mkdir()
            features.to_parquet(tmp / role / "features.parquet", index=False)
            pq.write_table(examples, tmp / role / "examples.parquet")
            alive = features[features["count"] > 0]
            summary[role] = {
                "tokens": int(features["n_tokens"].iloc[0]),
                "rows": rows,
                "features": len(features),
                "alive_features": len(alive),
                "examples": examples.num_rows,
                "median_density_alive": float(alive["density"].median()) if len(alive) else 0.0,
            }
            timings.record("activations", {f"{role}_seconds": round(time.perf_counter() - started, 2)})
            print(f"{role}: {summary[role]}")
        summary["params"] = to_dict(cfg)
        write_json(tmp / "meta.json", summary)
    timings.record("activations", {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)})


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    stage.run(main)
