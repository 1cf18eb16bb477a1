"""Held-out reasoning accuracy by problem group, with confidence intervals, for the intervention experiments.

Groups for the organism: each task split by whether the problem needs a carry (held-out corpus problems), plus
out-of-distribution operand lengths the organisms never saw (`ood_<task>`, freshly generated); accuracy is
greedy-decoded exact match of the final integer. Groups for Hub profiles: the held-out corpus problems by
problem type, graded by math-verify against their gold answers (`r1interp.grading`). Every accuracy comes with
a Wilson 95% interval (well-behaved at 0 and 1, where the normal approximation collapses to a zero-width interval).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import pandas as pd
import torch

from r1interp import chat
from r1interp.organism import tasks
from r1interp.organism.evaluate import generate, parse_answer
from r1interp.organism.train import Example, _batch, encode


@dataclass(frozen=True)
class Item:
    question: str
    answer: int | str  # int: an organism problem (exact match); str: a gold answer graded by math-verify
    completion: str  # the gold think + answer, for teacher-forced loss


def is_correct(completion: str, item: Item) -> bool:
    if isinstance(item.answer, int):
        return parse_answer(completion) == item.answer
    from r1interp.grading import grade

    return grade(completion, item.answer).correct


def real_groups(corpus: pd.DataFrame, per_group: int) -> dict[str, list[Item]]:
    """problem type -> up to `per_group` held-out problems with their gold answers (Hub profiles)."""
    heldout = corpus[corpus["split"] == "heldout"]
    return {
        task: [
            Item(r.prompt, r.gold, chat.reasoning_completion(r.think, r.answer))
            for r in heldout[heldout["task"] == task].head(per_group).itertuples()
        ]
        for task in sorted(heldout["task"].unique())
    }


def wilson(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # exact bounds at the ends (the formula gives them only up to rounding)
    return (0.0 if correct == 0 else max(0.0, centre - half), 1.0 if correct == n else min(1.0, centre + half))


def _item(problem: tasks.Problem) -> Item:
    return Item(problem.prompt, problem.answer, chat.reasoning_completion(problem.think, problem.answer_text))


def organism_groups(corpus: pd.DataFrame, per_group: int, ood_digits: int, seed: int) -> dict[str, list[Item]]:
    """group -> problems: `<task>_carry` / `<task>_no_carry` from the held-out split, `ood_<task>` generated with
    `ood_digits`-digit operands (multiplication keeps its one-digit second factor)."""
    heldout = corpus[corpus["split"] == "heldout"]
    groups: dict[str, list[Item]] = {}
    for task in sorted(heldout["task"].unique()):
        for carry, name in ((True, "carry"), (False, "no_carry")):
            rows = heldout[(heldout["task"] == task) & (heldout["has_carry"] == carry)].head(per_group)
            if len(rows):
                groups[f"{task}_{name}"] = [
                    _item(tasks.make_problem(task, *_operands(r.id))) for r in rows.itertuples()
                ]
    for task in sorted(heldout["task"].unique()):
        groups[f"ood_{task}"] = ood_problems(task, per_group, ood_digits, seed)
    return groups


def ood_problems(task: str, n: int, digits: int, seed: int) -> list[Item]:
    rng = random.Random(f"ood-{task}-{digits}-{seed}")
    return [_item(tasks.sample_problem(task, rng, digits, digits)) for _ in range(n)]


def training_problems(corpus: pd.DataFrame, task: str, n: int, seed: int) -> list[Item]:
    """n problems of `task` from the training split (what the model already solves: replay data)."""
    rows = corpus[(corpus["split"] == "train") & (corpus["task"] == task)]
    rows = rows.sample(min(n, len(rows)), random_state=seed) if n else rows.iloc[:0]
    return [_item(tasks.make_problem(task, *_operands(pid))) for pid in rows["id"]]


def _operands(problem_id: str) -> tuple[int, int]:
    """Corpus ids are `<task>-<a>-<b>`."""
    _, a, b = problem_id.split("-")
    return int(a), int(b)


def graded(
    model, tokenizer, items: list[Item], *, max_new_tokens: int, batch_size: int, desc: str = "generate"
) -> list[bool]:
    """Whether the greedy completion of each item gives its true answer."""
    completions = generate(
        model, tokenizer, [i.question for i in items], max_new_tokens=max_new_tokens, batch_size=batch_size, desc=desc
    )
    return [is_correct(c, i) for c, i in zip(completions, items, strict=True)]


def behaviour(tokenizer, completions: list[str]) -> dict[str, float]:
    """Reasoning-behaviour metrics of greedy completions (the steering literature's): backtracking and uncertainty
    sentences per trace (rule annotator), the share of traces that close `</think>`, and think length in tokens."""
    from r1interp.reasoning.behaviours import behaviour_counts

    n = max(1, len(completions))
    think = [c.split(chat.THINK_CLOSE)[0].replace(chat.THINK_OPEN, "") for c in completions]
    counts = [behaviour_counts(t) for t in think]
    return {
        "backtracking_per_trace": round(sum(c["backtracking"] for c in counts) / n, 4),
        "uncertainty_per_trace": round(sum(c["uncertainty_estimation"] for c in counts) / n, 4),
        "finished": round(sum(chat.THINK_CLOSE in c for c in completions) / n, 4),
        "think_tokens": round(sum(len(tokenizer(t, add_special_tokens=False).input_ids) for t in think) / n, 1),
    }


def accuracy(
    model, tokenizer, groups: dict[str, list[Item]], *, max_new_tokens: int, batch_size: int, behaviours: bool = False
) -> dict[str, dict]:
    """group -> {n, correct, accuracy, ci_low, ci_high} (+ the `behaviour` metrics when `behaviours`).

    All groups are generated together: decoding is step-bound on small models, so one batch of every problem
    costs little more than one group's (an arm that breaks the model decodes to max_new_tokens in every batch).
    """
    items = [item for group_items in groups.values() for item in group_items]
    completions = iter(
        generate(
            model,
            tokenizer,
            [i.question for i in items],
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            desc="problems",
        )
    )
    out = {}
    for group, group_items in groups.items():
        texts = [next(completions) for _ in group_items]
        correct = sum(is_correct(c, i) for c, i in zip(texts, group_items, strict=True))
        lo, hi = wilson(correct, len(group_items))
        out[group] = {
            "n": len(group_items),
            "correct": correct,
            "accuracy": correct / len(group_items) if group_items else math.nan,
            "ci_low": lo,
            "ci_high": hi,
        }
        if behaviours:
            out[group] |= behaviour(tokenizer, texts)
    return out


def real_training_items(corpus: pd.DataFrame, n: int, seed: int) -> list[Item]:
    """n training-split problems with their gold answers and R1 traces (Hub profiles' fine-tuning pool)."""
    rows = corpus[corpus["split"] == "train"]
    rows = rows.sample(min(n, len(rows)), random_state=seed) if n else rows.iloc[:0]
    return [Item(r.prompt, r.gold, chat.reasoning_completion(r.think, r.answer)) for r in rows.itertuples()]


def examples(tokenizer, items: list[Item]) -> list[Example]:
    """Prompt + gold completion token ids, with the prompt length (the loss starts after it)."""
    return [encode(tokenizer, chat.prompt_text(i.question), i.completion) for i in items]


def batches(examples_: list[Example], pad_id: int, batch_size: int):
    for start in range(0, len(examples_), batch_size):
        yield _batch(examples_[start : start + batch_size], pad_id)


@torch.no_grad()
def gold_nll(model, tokenizer, items: list[Item], batch_size: int) -> float:
    """Mean per-token negative log-likelihood of the gold completions (teacher forced): a graded measure of how
    close a model is to the right reasoning when its greedy accuracy is stuck at 0 or 1."""
    total, count = 0.0, 0
    for ids, labels, mask in batches(examples(tokenizer, items), tokenizer.pad_token_id, batch_size):
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        target = labels[:, 1:]
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100, reduction="sum"
        )
        total += float(loss)
        count += int((target != -100).sum())
    return total / max(1, count)
