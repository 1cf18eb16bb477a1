"""Activation collection vs a bare forward pass of the model plus the transcoder encoders.

Both passes stream the same held-out rows through the same model in one process, alternating
(baseline, ours) `--repeats` times; prints tokens/s of each and the ratio (ours / bare time).
With `--memory`, also runs the `activations` stage at two token budgets in subprocesses and
prints their peak RSS: the per-feature samples live in fixed slots, so it should not grow.

    python bench/activations_throughput.py [--rows 1000] [--repeats 2] [--memory]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from r1interp.activations import collect  # noqa: E402
from r1interp.config import load_params  # noqa: E402
from r1interp.data import load_token_split  # noqa: E402
from r1interp.models import load_role  # noqa: E402
from r1interp.transcoders import SET_ROOT, excluded_token_ids, load_coders  # noqa: E402
from r1interp.transcoders.splice import mlp_modules  # noqa: E402


def batches(ds, rows, batch_size):
    view = ds.with_format("torch")
    for start in range(0, rows, batch_size):
        chunk = view[start : min(rows, start + batch_size)]
        yield {"input_ids": chunk["input_ids"], "in_think": chunk["in_think"], "row_offset": start}


@torch.no_grad()
def bare(model, coders, stream) -> None:
    """What any activation reader must do at least: the forward pass and every encoder."""
    captured = {}
    mlps = mlp_modules(model)
    handles = [mlps[layer].register_forward_hook(lambda m, i, o, layer=layer: captured.__setitem__(layer, i[0])) for layer in coders]
    try:
        for batch in stream:
            model(batch["input_ids"])
            for layer, coder in coders.items():
                x = captured.pop(layer)
                coder.encode(x.reshape(-1, x.shape[-1]))
    finally:
        for h in handles:
            h.remove()


def peak_rss_mb(max_tokens: int, params: dict) -> float:
    """Peak RSS of the activations stage at a token budget (run in a fresh process)."""
    params = json.loads(json.dumps(params))
    params["activations"]["max_tokens"] = max_tokens
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "params.yaml"
        path.write_text(yaml.safe_dump(params))
        code = (
            "import runpy, sys, resource; sys.argv=['activations', '--params', %r];"
            "import stages.activations as s; import r1interp.stage as st;"
            "s.OUT=%r; st.run(s.main);"
            "print('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
        ) % (str(path), str(Path(tmp) / "out"))
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return int(out.split("RSS")[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--rows", type=int, default=0, help="0: activations.max_tokens / ctx_len")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--memory", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = load_params(args.params)
    cfg = params.activations
    ds, meta = load_token_split("data/tokens/heldout")
    rows = min(len(ds), args.rows or cfg.max_tokens // meta["ctx_len"])
    role = params.train.models[0]
    loaded = load_role(params.model.profile, role)
    coders = load_coders(SET_ROOT / role / "sparsify")
    exclude = excluded_token_ids(loaded.tokenizer)
    tokens = rows * meta["ctx_len"]
    times = {"bare": [], "collect": []}
    for _ in range(args.repeats):
        start = time.perf_counter()
        bare(loaded.model, coders, batches(ds, rows, cfg.batch_size))
        times["bare"].append(time.perf_counter() - start)
        start = time.perf_counter()
        collect(loaded.model, coders, batches(ds, rows, cfg.batch_size), cfg, exclude_token_ids=exclude, progress=False)
        times["collect"].append(time.perf_counter() - start)
    b, c = min(times["bare"]), min(times["collect"])
    print(f"model={role} layers={len(coders)} latents={next(iter(coders.values())).num_latents} tokens={tokens} threads={args.threads}")
    print(f"bare forward + encoders: {b:.2f} s ({tokens / b:,.0f} tok/s)")
    print(f"activation collection:   {c:.2f} s ({tokens / c:,.0f} tok/s)")
    print(f"ratio collection / bare: {c / b:.3f}  (overhead {100 * (c / b - 1):.1f}%)")
    if args.memory:
        raw = yaml.safe_load((ROOT / args.params).read_text())
        small, large = max(meta["ctx_len"], tokens // 4), tokens
        for budget in (small, large):
            print(f"peak RSS of the activations stage at {budget:,} tokens: {peak_rss_mb(budget, raw):.0f} MB")
    print(f"(this process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
