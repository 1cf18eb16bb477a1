"""Stage `evaluate`: spliced CE/KL, FVU, L0 and dead features of every transcoder set, from disk."""

import r1interp  # noqa: F401  first import: pins deterministic numerics before torch/numpy load

# isort: split

import torch

from r1interp import paths, stage
from r1interp.data import check_token_dataset, load_token_split
from r1interp.io import write_json
from r1interp.models import load_role, resolve_device
from r1interp.transcoders import SET_ROOT, excluded_token_ids, load_coders
from r1interp.transcoders.evaluate import evaluate

OUT = paths.TRANSCODERS_METRICS
PLOT = paths.TRANSCODERS_PER_LAYER


def main(params, args):
    device = resolve_device(params.model.device)
    ds, meta = load_token_split(paths.TOKENS_HELDOUT, hint="run `dvc repro tokens`")
    rows = min(len(ds), max(1, params.evaluate.max_tokens // meta["ctx_len"]))
    subset = ds.select(range(rows)).with_format("torch")
    bs = params.evaluate.batch_size
    batches = [
        {k: subset[i : i + bs][k].to(device) for k in ("input_ids", "in_think", "in_answer")}
        for i in range(0, rows, bs)
    ]
    metrics, plot_rows = {}, []
    for role in params.train.models:
        loaded = load_role(params.model.profile, role, device=device)
        check_token_dataset(ds, meta, str(paths.TOKENS_HELDOUT), loaded.arch.vocab_size)
        coders = load_coders(SET_ROOT / role / "sparsify", device=device)
        keep = excluded_token_ids(loaded.tokenizer) if params.train.exclude_special_tokens else []
        result = evaluate(loaded.model, coders, batches, keep_token_ids=keep)
        metrics[role] = result
        for layer, entry in result["layers"].items():
            plot_rows.append(
                {
                    "model": role,
                    "layer": int(layer),
                    "ce_increase": entry["completion"]["ce_increase"],
                    "ce_increase_think": entry["think"]["ce_increase"],
                    "ce_increase_answer": entry["answer"]["ce_increase"],
                    "kl": entry["completion"]["kl"],
                    "fvu": entry["fvu"],
                    "l0": entry["l0"],
                    "dead_pct": entry["dead_pct"],
                }
            )
        s = result["summary"]
        print(
            f"{role}: max single-layer CE increase {s['max_ce_increase_single']:.4f} nats, "
            f"all layers {s['ce_increase_all_layers']:.4f}, mean FVU {s['mean_fvu']:.4f}, max dead {s['max_dead_pct']:.1f}%"
        )
    write_json(OUT, metrics)
    write_json(PLOT, plot_rows)


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    stage.run(main)
