"""How much a second torch CPU thread buys the two costliest kinds of pipeline work (`model.threads`).

Greedy generation (organism-eval, interventions) and training steps (organism training) on the reasoner
organism, with 1 and then 2 threads in the same run; prints seconds and the speed-up ratio.
Needs the built organism (`dvc repro organism@reasoner corpus`).
"""

import contextlib
import io
import time

import pandas as pd
import torch

from r1interp.models import load_role
from r1interp.reasoning import benchmark


def main() -> None:
    lm = load_role("organism", "reasoner")
    groups = benchmark.organism_groups(pd.read_parquet("data/corpus/corpus.parquet"), 100, 4, 0)
    groups = {g: groups[g] for g in ("add_carry", "mul_carry", "ood_add")}
    ids = torch.randint(0, lm.model.config.vocab_size, (64, 100), generator=torch.Generator().manual_seed(0))
    timings = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        with contextlib.redirect_stderr(io.StringIO()):
            start = time.perf_counter()
            benchmark.accuracy(lm.model, lm.tokenizer, groups, max_new_tokens=160, batch_size=100)
            generate = time.perf_counter() - start
        lm.model.train()
        opt = torch.optim.Adam(lm.model.parameters(), lr=1e-6)
        start = time.perf_counter()
        for _ in range(20):
            loss = lm.model(input_ids=ids, labels=ids).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
        train = time.perf_counter() - start
        lm.model.eval()
        timings[threads] = (generate, train)
        print(
            f"threads {threads}: greedy generation of 300 problems {generate:.2f} s; 20 training steps (64 x 100 tokens) {train:.2f} s"
        )
    (g1, t1), (g2, t2) = timings[1], timings[2]
    print(f"speed-up with 2 threads: generation {g1 / g2:.2f}x, training {t1 / t2:.2f}x")


if __name__ == "__main__":
    main()
