"""What the pinned numerics (r1interp/numerics.py) cost: the same work in a fresh interpreter with the
pinned kernels and with the machine's own (`R1INTERP_NUMERICS=native`), alternated, best of `--repeats`.

The work is what dominates the default `dvc repro`: greedy generation (organism-eval, graphs,
interventions), training steps (organism, fine-tune), a TopK transcoder encode at the organism's width
(train, activations, evaluate) and numpy/scikit-learn linear algebra (clusters). Prints seconds per part
and the ratio pinned / native. Needs the built reasoner organism and corpus
(`dvc repro organism@reasoner`).

    python bench/numerics_cost.py [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

WORK = r"""
import r1interp  # pins (or, with R1INTERP_NUMERICS=native, leaves) the numerics before torch loads
import contextlib, io, json, sys, time
import numpy as np, pandas as pd, torch
from r1interp import numerics, paths
from r1interp.models import load_role
from r1interp.reasoning import benchmark

threads = int(sys.argv[1])
numerics.set_threads(threads)
out = {"capability": torch.backends.cpu.get_cpu_capability()}
lm = load_role("organism", "reasoner")
groups = benchmark.organism_groups(pd.read_parquet(paths.CORPUS_PARQUET), 50, 4, 0)
groups = {g: groups[g] for g in ("add_carry", "mul_carry")}
with contextlib.redirect_stderr(io.StringIO()):
    t = time.perf_counter()
    benchmark.accuracy(lm.model, lm.tokenizer, groups, max_new_tokens=160, batch_size=100)
    out["generation"] = time.perf_counter() - t
ids = torch.randint(0, lm.model.config.vocab_size, (32, 128), generator=torch.Generator().manual_seed(0))
lm.model.train()
opt = torch.optim.AdamW(lm.model.parameters(), lr=1e-6)
t = time.perf_counter()
for _ in range(30):
    loss = lm.model(input_ids=ids, labels=ids).loss
    opt.zero_grad(); loss.backward(); opt.step()
out["training"] = time.perf_counter() - t
d, latents, k = lm.model.config.hidden_size, 1024, 32
g = torch.Generator().manual_seed(0)
x, w = torch.randn(65536, d, generator=g), torch.randn(latents, d, generator=g)
t = time.perf_counter()
with torch.no_grad():
    for chunk in x.split(4096):
        top = torch.relu(chunk @ w.T).topk(k, dim=-1)
        (top.values.unsqueeze(-1) * w[top.indices]).sum(1)
out["transcoder_encode"] = time.perf_counter() - t
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
rng = np.random.default_rng(0)
profiles = rng.standard_normal((4000, 512))
t = time.perf_counter()
reduced = PCA(16, random_state=0).fit_transform(profiles)
for seed in range(5):
    KMeans(8, n_init=1, random_state=seed).fit(reduced)
out["numpy_sklearn"] = time.perf_counter() - t
print(json.dumps(out))
"""

PARTS = ("generation", "training", "transcoder_encode", "numpy_sklearn")


def run(mode: str, threads: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "R1INTERP_NUMERICS"}
    if mode == "native":
        env["R1INTERP_NUMERICS"] = "native"
    proc = subprocess.run(
        [sys.executable, "-c", WORK, str(threads)], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    best: dict[str, dict[str, float]] = {"pinned": {}, "native": {}}
    kernels = {}
    for _ in range(args.repeats):
        for mode in ("native", "pinned"):
            result = run(mode, args.threads)
            kernels[mode] = result["capability"]
            for part in PARTS:
                best[mode][part] = min(best[mode].get(part, float("inf")), result[part])
    print(
        f"torch kernels: pinned {kernels['pinned']}, native {kernels['native']}; {args.threads} threads; "
        f"best of {args.repeats}"
    )
    for part in (*PARTS, "total"):
        pinned = sum(best["pinned"].values()) if part == "total" else best["pinned"][part]
        native = sum(best["native"].values()) if part == "total" else best["native"][part]
        print(f"{part:<18} pinned {pinned:7.2f} s   native {native:7.2f} s   pinned / native {pinned / native:5.2f}x")


if __name__ == "__main__":
    main()
