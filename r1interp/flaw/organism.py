"""The flawed organism: the reasoner fine-tuned on the training traces with the planted flaw.

Like the reasoner (the base fine-tuned on `<think>` traces), it is trained by the organism training loop, starting
from the reasoner and continuing on the same training problems, whose traces now handle the flaw pattern wrongly
for a fixed share of its cases. Pattern problems are rare (about 9% of 2-3 digit additions for the default
pattern), so they are repeated until they make up `enrich` of the fine-tuning mix.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from r1interp import chat
from r1interp.errors import ArtifactError
from r1interp.flaw import patterns
from r1interp.flaw.problems import operands
from r1interp.organism.build import save, train_phase
from r1interp.organism.train import encode


def training_problems(corpus: pd.DataFrame, pattern: str, share: float, seed: int):
    """The flawed organism's training problems (traces flawed as planted) and which of them have the pattern."""
    rows = corpus[corpus["split"] == "train"]
    if rows.empty:
        raise ArtifactError("corpus has no training rows", hint="run `dvc repro corpus`")
    problems, marked = [], []
    for task, pid in zip(rows["task"], rows["id"], strict=True):
        a, b = operands(pid)
        problems.append(patterns.training_problem(pattern, share, seed, task, a, b))
        marked.append(patterns.has_pattern(pattern, task, a, b))
    return problems, marked


def mix(n_plain: int, pattern_idx: list[int], enrich: float) -> list[int]:
    """Indices of the fine-tuning mix: every problem once, pattern problems repeated until they are `enrich` of it
    (never fewer than once)."""
    plain = [i for i in range(n_plain) if i not in set(pattern_idx)]
    if not pattern_idx or enrich <= 0:
        return list(range(n_plain))
    want = enrich * len(plain) / (1 - enrich) if enrich < 1 else len(plain)
    repeats = max(1, round(want / len(pattern_idx)))
    return plain + pattern_idx * repeats


def train_flawed(corpus: pd.DataFrame, flaw, reasoner_dir: Path, out_dir: Path) -> dict:
    from r1interp.models import load_model

    reasoner = load_model(reasoner_dir, hint="run `dvc repro organism@reasoner`")
    tok = reasoner.tokenizer
    problems, marked = training_problems(corpus, flaw.pattern, flaw.share, flaw.seed)
    order = mix(len(problems), [i for i, m in enumerate(marked) if m], flaw.organism.enrich)
    examples = [
        encode(
            tok,
            chat.prompt_text(problems[i].prompt),
            chat.reasoning_completion(problems[i].think, problems[i].answer_text),
        )
        for i in order
    ]
    flawed_cases = sum(patterns.is_flawed_case(flaw.pattern, flaw.share, flaw.seed, p.task, p.a, p.b) for p in problems)
    log = {
        "role": "flawed",
        "init": "reasoner",
        "pattern": flaw.pattern,
        "share": flaw.share,
        "pattern_problems": int(sum(marked)),
        "flawed_traces": int(flawed_cases),
        "mix_examples": len(examples),
        "pattern_share_of_mix": round(sum(marked[i] for i in order) / len(order), 4),
        **train_phase(reasoner.model, examples, flaw.organism, tok, flaw.seed + 2, "organism flawed"),
    }
    save(reasoner.model, tok, out_dir, log)
    return log
