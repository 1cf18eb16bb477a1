"""Find the failing group and the step where traces go wrong, from correct-vs-incorrect traces only.

Every gold step is described by generic facts of a written computation (task, step type, column, the two digits,
the incoming carry, the digit operation's result, the column total) — the same facts for every problem, with no
knowledge of the planted rule. For each failing trace the *first divergent step* is where the model's think
lines first differ from the gold ones. The finder searches conjunctions of `fact == value` conditions for the
one that best separates first-divergent steps from the steps the model got right (F1), simplest rule first on
ties. The flagged group is every problem whose gold trace has a step matching the rule.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from r1interp import chat
from r1interp.organism import tasks

FACTS = ("task", "kind", "column", "x", "y", "carry_in", "op_result", "total")


def step_facts(problem: tasks.Problem) -> list[dict]:
    """One row of facts per gold step (the final carry written in front has no digits: -1)."""
    rows = []
    da = [int(c) for c in reversed(str(problem.a))]
    db = [int(c) for c in reversed(str(problem.b))]
    carry = 0
    for i, step in enumerate(problem.steps):
        if step.kind == "final_carry":
            rows.append(
                {
                    "task": problem.task,
                    "kind": step.kind,
                    "column": i,
                    "x": -1,
                    "y": -1,
                    "carry_in": carry,
                    "op_result": -1,
                    "total": carry,
                }
            )
            continue
        if problem.task == "add":
            x, y = (da[i] if i < len(da) else 0), (db[i] if i < len(db) else 0)
            op = x + y
        else:
            x, y = da[i], problem.b
            op = x * y
        total = op + carry
        rows.append(
            {
                "task": problem.task,
                "kind": step.kind,
                "column": i,
                "x": x,
                "y": y,
                "carry_in": min(carry, 1),
                "op_result": op,
                "total": total,
            }
        )
        carry = total // 10
    return rows


def think_lines(completion: str) -> list[str]:
    """The model's think steps: the lines between `<think>` and `</think>`, blank lines dropped."""
    body = completion.split(chat.THINK_CLOSE)[0].replace(chat.THINK_OPEN, "")
    return [line.strip() for line in body.split("\n") if line.strip()]


def first_divergence(completion: str, problem: tasks.Problem) -> int | None:
    """Index of the first gold step the model's trace gets wrong; None when trace and answer are right; the number
    of steps when every step is right but the answer is not."""
    lines = think_lines(completion)
    for i, step in enumerate(problem.steps):
        if i >= len(lines) or lines[i] != step.text:
            return i
    from r1interp.organism.evaluate import parse_answer

    return None if parse_answer(completion) == problem.answer else len(problem.steps)


def step_table(problems: list[tasks.Problem], completions: list[str]) -> pd.DataFrame:
    """Gold steps up to each trace's first divergence, with `diverges` marking the divergent one (steps after it
    are left out: the model's trace no longer follows the gold one there)."""
    rows = []
    for n, (problem, completion) in enumerate(zip(problems, completions, strict=True)):
        stop = first_divergence(completion, problem)
        for i, facts in enumerate(step_facts(problem)):
            if stop is not None and i > stop:
                break
            rows.append({"problem": n, "step": i, **facts, "diverges": stop == i})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Rule:
    conditions: tuple[tuple[str, int | str], ...]
    precision: float
    recall: float
    f1: float
    support: int  # steps matching the rule

    def text(self) -> str:
        return " and ".join(f"{k} == {v!r}" for k, v in self.conditions)

    def matches(self, facts: dict) -> bool:
        return all(facts.get(k) == v for k, v in self.conditions)


def search_rules(steps: pd.DataFrame, *, max_conditions: int, min_support: int, top: int = 10) -> list[Rule]:
    """Conjunctions of up to `max_conditions` conditions, best F1 first (ties: fewer conditions, then the order of
    FACTS and values). Only conditions true for at least `min_support` divergent steps are combined."""
    positive = steps["diverges"].to_numpy(bool)
    if positive.sum() == 0:
        return []
    candidates = []
    for fact in FACTS:
        values = steps[fact].to_numpy()
        for value in sorted(set(values[positive].tolist()), key=str):
            mask = values == value
            if (mask & positive).sum() >= min_support:
                candidates.append(((fact, value), mask))
    scored = []
    for size in range(1, max_conditions + 1):
        for combo in itertools.combinations(candidates, size):
            if len({fact for (fact, _), _ in combo}) < size:
                continue  # two values of one fact never hold together
            mask = np.logical_and.reduce([m for _, m in combo])
            hits = int((mask & positive).sum())
            if hits == 0:
                continue
            precision, recall = hits / int(mask.sum()), hits / int(positive.sum())
            f1 = 2 * precision * recall / (precision + recall)
            scored.append(
                Rule(tuple(c for c, _ in combo), round(precision, 4), round(recall, 4), round(f1, 4), int(mask.sum()))
            )
    scored.sort(key=lambda r: (-r.f1, len(r.conditions)))  # stable: candidate order breaks the remaining ties
    return scored[:top]


def flagged(rule: Rule, problems: list[tasks.Problem]) -> list[bool]:
    """Whether each problem's gold trace has a step the rule matches: the group the finder flags."""
    return [any(rule.matches(f) for f in step_facts(p)) for p in problems]


def precision_recall(flags: list[bool], truth: list[bool]) -> dict:
    tp = sum(f and t for f, t in zip(flags, truth, strict=True))
    fp = sum(f and not t for f, t in zip(flags, truth, strict=True))
    fn = sum(t and not f for f, t in zip(flags, truth, strict=True))
    return {
        "precision": round(tp / (tp + fp), 4) if tp + fp else 0.0,
        "recall": round(tp / (tp + fn), 4) if tp + fn else 0.0,
        "true_positive": tp,
        "false_positive": fp,
        "false_negative": fn,
    }
