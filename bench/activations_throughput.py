"""Activation collection vs a bare forward pass of the model plus the transcoder encoders.

Both passes stream the same held-out rows through the same model in one process, alternating
(baseline, ours) `--repeats` times; prints tokens/s of each and the ratio (ours / bare time).
With `--memory`, also runs the `activations` stage at two token budgets in subprocesses and
prints their peak RSS: the per-feature samples live in fixed slots, so it should not grow.

    python bench/activations_throughput.py [--rows 1000] [--repeats 2] [--memory]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from r1interp.activations import collect, token_batches  # noqa: E402
from r1interp.config import load_params  # noqa: E402
from r1interp.data import load_token_split  # noqa: E402
from r1interp.models import load_role  # noqa: E402
from r1interp.transcoders import SET_ROOT, excluded_token_ids, load_coders  # noqa: E402
from r1interp.transcoders.splice import mlp_modules  # noqa: E402


@torch.no_grad()
def bare(model, coders, stream) -> None:
    """What any activation reader must do at least: the forward pass and every encoder."""
    captured = {}
    mlps = mlp_modules(model)
    handles = [
        mlps[layer].register_forward_hook(lambda m, i, o, layer=layer: captured.__setitem__(layer, i[0]))
        for layer in coders
    ]
    try:
        for batch in stream:
            model(batch["input_ids"])
            for layer, coder in coders.items():
                x = captured.pop(layer)
                coder.encode(x.reshape(-1, x.shape[-1]))
    finally:
        for h in handles:
            h.remove()


MEMORY_PROBE = """
import resource, sys, torch
sys.path.insert(0, {root!r})
from r1interp.activations import collect, example_table, token_batches
from r1interp.config import load_params
from r1interp.data import load_token_split
from r1interp.models import load_role
from r1interp.transcoders import SET_ROOT, excluded_token_ids, load_coders
torch.set_grad_enabled(False); torch.set_num_threads(1)
params = load_params({params!r}); cfg = params.activations
ds, meta = load_token_split({split!r})
role = params.train.models[0]
loaded = load_role(params.model.profile, role)
coders = load_coders(SET_ROOT / role / "sparsify")
rows = {rows}
cols = collect(loaded.model, coders, token_batches(ds, rows, cfg.batch_size), cfg, exclude_token_ids=excluded_token_ids(loaded.tokenizer), progress=False)
ids = ds.with_format("numpy")
for layer, col in cols.items():
    example_table(col, role, layer, lambda r: ids[r]["input_ids"])
print("RSS", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_mb(params_path: str, split: str, rows: int) -> float:
    """Peak RSS of collecting + tabulating `rows` rows of a token split, in a fresh process."""
    code = MEMORY_PROBE.format(root=str(ROOT), params=params_path, split=split, rows=rows)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return int(out.split("RSS")[-1]) / 1024


def real_shape(layers: int, latents: int, k: int, rows: int, ctx: int, seed: int = 0):
    """Random weights at DeepSeek-R1-Distill-Qwen-1.5B's shape (a few of its 28 layers) with random
    skip transcoders of `latents` latents: throughput only, the labels would mean nothing."""
    from sparsify import SparseCoder, SparseCoderConfig
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=151936,
        hidden_size=1536,
        intermediate_size=8960,
        num_hidden_layers=layers,
        num_attention_heads=12,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
    )
    model = Qwen2ForCausalLM(config).eval()
    cfg = SparseCoderConfig(num_latents=latents, k=k, transcode=True, skip_connection=True)
    coders = {layer: SparseCoder(1536, cfg, device="cpu").eval() for layer in range(layers)}
    ids = torch.randint(0, 151000, (rows, ctx))

    def stream(batch_size):
        for start in range(0, rows, batch_size):
            chunk = ids[start : start + batch_size]
            yield {"input_ids": chunk, "in_think": torch.ones_like(chunk, dtype=torch.bool), "row_offset": start}

    return model, coders, stream


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--rows", type=int, default=0, help="0: activations.max_tokens / ctx_len")
    parser.add_argument(
        "--split",
        default="heldout",
        choices=("heldout", "train"),
        help="train has far more rows: the fixed warm-up cost of the samples amortizes",
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--memory", action="store_true")
    parser.add_argument(
        "--real-shape",
        type=int,
        default=0,
        metavar="LAYERS",
        help="random model at the 1.5B shape with this many layers and 65k-latent coders",
    )
    parser.add_argument("--latents", type=int, default=65536)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = load_params(args.params)
    cfg = params.activations
    if args.real_shape:
        rows, ctx, bs = args.rows or 8, 256, 2
        model, coders, stream = real_shape(args.real_shape, args.latents, 32, rows, ctx)
        times = {"bare": [], "collect": []}
        with torch.no_grad():
            for _ in range(args.repeats):
                start = time.perf_counter()
                bare(model, coders, stream(bs))
                times["bare"].append(time.perf_counter() - start)
                start = time.perf_counter()
                collect(model, coders, stream(bs), cfg, progress=False)
                times["collect"].append(time.perf_counter() - start)
        b, c = min(times["bare"]), min(times["collect"])
        print(
            f"real shape (random weights): d_model 1536, {args.real_shape} layers, {args.latents} latents, k 32, "
            f"{rows * ctx} tokens, threads={args.threads}"
        )
        print(f"bare forward + encoders: {b:.2f} s; activation collection: {c:.2f} s; ratio {c / b:.3f}")
        return
    ds, meta = load_token_split(f"data/tokens/{args.split}")
    rows = min(len(ds), args.rows or cfg.max_tokens // meta["ctx_len"])
    role = params.train.models[0]
    loaded = load_role(params.model.profile, role)
    coders = load_coders(SET_ROOT / role / "sparsify")
    exclude = excluded_token_ids(loaded.tokenizer)
    tokens = rows * meta["ctx_len"]
    times = {"bare": [], "collect": []}
    for _ in range(args.repeats):
        start = time.perf_counter()
        bare(loaded.model, coders, token_batches(ds, rows, cfg.batch_size))
        times["bare"].append(time.perf_counter() - start)
        start = time.perf_counter()
        collect(
            loaded.model,
            coders,
            token_batches(ds, rows, cfg.batch_size),
            cfg,
            exclude_token_ids=exclude,
            progress=False,
        )
        times["collect"].append(time.perf_counter() - start)
    b, c = min(times["bare"]), min(times["collect"])
    print(
        f"model={role} layers={len(coders)} latents={next(iter(coders.values())).num_latents} tokens={tokens} threads={args.threads}"
    )
    print(f"bare forward + encoders: {b:.2f} s ({tokens / b:,.0f} tok/s)")
    print(f"activation collection:   {c:.2f} s ({tokens / c:,.0f} tok/s)")
    print(f"ratio collection / bare: {c / b:.3f}  (overhead {100 * (c / b - 1):.1f}%)")
    if args.memory:
        # the held-out split is small; the train split has the same format and far more rows
        train, _ = load_token_split("data/tokens/train")
        for n in (len(train) // 32, len(train) // 4):  # 8x apart
            mb = peak_rss_mb(args.params, "data/tokens/train", n)
            print(f"peak RSS collecting {n * meta['ctx_len']:,} tokens ({n} rows): {mb:.0f} MB")
    print(f"(this process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
