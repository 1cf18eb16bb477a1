"""Greedy decoding with transformers' vmapped SDPA mask (baseline) vs r1interp/sdpa_mask.py (ours), same process.

The model is the default profile's reasoner when it is built (models/lm/reasoner), else a randomly initialised
model of the same shape; the prompts are held-out-style addition questions, decoded in one left-padded batch, as
the benchmark and the interventions do. Alternates baseline and ours `--repeats` times, checks both give the same
completions, and prints the median wall time of each and the ratio (ours / baseline).

    python bench/sdpa_mask.py [--problems 100] [--tokens 160] [--repeats 3]
"""

from __future__ import annotations

import r1interp  # noqa: F401  first import: pinned numerics

# isort: split

import argparse
import random
import statistics
import time
from pathlib import Path

from r1interp import numerics, sdpa_mask
from r1interp.organism.evaluate import generate

ROOT = Path(__file__).resolve().parents[1]


def _model():
    from r1interp.models import load_model

    built = ROOT / "models" / "lm" / "reasoner"
    if built.is_dir():
        lm = load_model(built)
        return lm.model, lm.tokenizer, str(built.relative_to(ROOT))
    from r1interp.config import load_params
    from r1interp.organism.tokenizer import train_tokenizer
    from r1interp.organism.train import build_model

    o = load_params(ROOT / "params.yaml").organism
    texts = [f"What is {a} + {a + 7}? {2 * a + 7}" for a in range(500)]
    tok = train_tokenizer(texts, o.vocab_size)
    model = build_model(len(tok), layers=o.layers, hidden=o.hidden, intermediate=o.intermediate, heads=o.heads,
                        kv_heads=o.kv_heads, max_positions=o.max_positions, rope_theta=o.rope_theta, tokenizer=tok,
                        seed=0)  # fmt: skip
    return model.eval(), tok, "random weights, default shape"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=160)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    numerics.set_threads(args.threads)
    model, tokenizer, what = _model()
    rng = random.Random(0)
    # 2- and 3-digit operands: prompts of different lengths, so the batch is padded and every step builds a mask
    questions = [f"What is {rng.randint(10, 999)} + {rng.randint(10, 999)}?" for _ in range(args.problems)]

    def decode() -> tuple[float, list[str]]:
        start = time.perf_counter()
        out = generate(model, tokenizer, questions, max_new_tokens=args.tokens, batch_size=args.problems)
        return time.perf_counter() - start, out

    times: dict[str, list[float]] = {"baseline": [], "ours": []}
    outputs = {}
    for _ in range(args.repeats):
        for name in ("baseline", "ours"):
            sdpa_mask.install() if name == "ours" else sdpa_mask.uninstall()
            seconds, outputs[name] = decode()
            times[name].append(seconds)
    assert outputs["baseline"] == outputs["ours"], "the two masks gave different completions"
    base, ours = (statistics.median(times[k]) for k in ("baseline", "ours"))
    print(
        f"greedy decoding of {args.problems} problems x {args.tokens} tokens ({what}), median of {args.repeats}: "
        f"baseline {base:.2f} s, ours {ours:.2f} s, ratio {ours / base:.2f}; same completions"
    )


if __name__ == "__main__":
    main()
