"""Throughput of the `train` stage's training path vs calling sparsify.Trainer.fit directly.

Both runs use the same model, the same token rows and the same sparsify config, in one
process, alternating (baseline, ours) `--repeats` times; prints tokens/s and the ratio.

    python bench/transcoder_throughput.py [--model models/organisms/reasoner] [--tokens data/tokens/train]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from r1interp.config import load_params  # noqa: E402
from r1interp.data import load_token_split, training_rows  # noqa: E402
from r1interp.models import load_model  # noqa: E402
from r1interp.transcoders.train import fit, sparsify_configs  # noqa: E402


def baseline(model, dataset, tp, hookpoints, scratch: Path) -> float:
    """Plain sparsify: wandb off, the checkpoint saved where sparsify puts it."""
    from sparsify import Trainer

    cfg = sparsify_configs(tp, hookpoints, [], scratch)
    cfg.log_to_wandb = False
    trainer = Trainer(cfg, dataset, model)
    start = time.perf_counter()
    trainer.fit()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--model", default="models/organisms/reasoner")
    parser.add_argument("--tokens", default="data/tokens/train")
    parser.add_argument("--max-tokens", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tp = load_params(args.params).train
    loaded = load_model(args.model)
    ds, meta = load_token_split(args.tokens)
    rows = min(len(ds), args.max_tokens // meta["ctx_len"])
    dataset = training_rows(ds, rows, seed=0).with_format("torch")
    tokens = rows * meta["ctx_len"]
    hookpoints = loaded.arch.mlp_hookpoints
    base_t, ours_t = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            base_t.append(baseline(loaded.model, dataset, tp, hookpoints, Path(tmp)))
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            fit(loaded.model, dataset, tp, hookpoints, [], Path(tmp) / "out", live=None)
            ours_t.append(time.perf_counter() - start)  # includes validation + move into place
    b, o = min(base_t), min(ours_t)
    print(f"tokens per run: {tokens}, layers: {len(hookpoints)}, threads: {args.threads}")
    print(f"sparsify.Trainer.fit directly: {tokens / b:10.0f} tok/s  (best of {args.repeats}: {b:.2f} s)")
    print(f"r1interp train stage path:     {tokens / o:10.0f} tok/s  (best of {args.repeats}: {o:.2f} s)")
    print(f"ratio (ours / direct): {b / o:.3f}")


if __name__ == "__main__":
    main()
