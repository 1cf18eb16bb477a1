"""The problem sets of the find-and-fix experiment, disjoint from each other and from what the organism trained on.

- evaluation groups (held out): `flaw` (additions with the planted pattern — the scorer's ground truth, never shown
  to the finder or the repairs), `add_carry` (other additions with a carry), `add_no_carry`, `mul`; fresh problems with the corpus's operand lengths, none in the training split;
- discovery problems: fresh problems of every task, graded to find the failing group (no labels attached);
- repair examples: training-split problems the flawed model gets wrong, with their corrected gold traces, and
  training-split problems it gets right (replay).
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pandas as pd

from r1interp import chat
from r1interp.errors import ConfigError
from r1interp.flaw import patterns
from r1interp.organism import tasks
from r1interp.reasoning.benchmark import Item

GROUPS = ("flaw", "add_carry", "add_no_carry", "mul")  # 2-3 digit x 1-digit products almost all carry: one group


def item(problem: tasks.Problem) -> Item:
    return Item(problem.prompt, problem.answer, chat.reasoning_completion(problem.think, problem.answer_text))


def group_of(pattern: str, problem: tasks.Problem) -> str:
    if patterns.has_pattern(pattern, problem.task, problem.a, problem.b):
        return "flaw"
    if problem.task != "add":
        return problem.task
    return f"add_{'carry' if problem.has_carry else 'no_carry'}"


def _fresh(task_digits: dict[str, tuple[int, int]], seen: set[tuple[str, int, int]], rng: random.Random, task: str):
    lo, hi = task_digits[task]
    for _ in range(100_000):
        p = tasks.sample_problem(task, rng, lo, hi)
        if (p.task, p.a, p.b) not in seen:
            seen.add((p.task, p.a, p.b))
            return p
    raise ConfigError(
        f"flaw: no {task} problems with {lo}-{hi} digit operands are left outside the training split "
        "(lower flaw.repair.problems_per_group or flaw.find.problems)"
    )


def operands(problem_id: str) -> tuple[int, int]:
    """Corpus ids are `<task>-<a>-<b>`."""
    _, a, b = problem_id.split("-")
    return int(a), int(b)


def seen_problems(corpus: pd.DataFrame) -> set[tuple[str, int, int]]:
    """(task, a, b) of every problem in `corpus` (pass the training split)."""
    return {(task, *operands(pid)) for task, pid in zip(corpus["task"], corpus["id"], strict=True)}


def _task_of_group(pattern: str, group: str) -> str:
    return patterns.task_of(pattern) if group == "flaw" else group.split("_")[0]


def evaluation_groups(
    pattern: str,
    task_digits: dict[str, tuple[int, int]],
    seen: set,
    per_group: int,
    seed: int,
    max_draws: int = 200_000,
) -> dict[str, list[tasks.Problem]]:
    """`per_group` fresh problems per group (drawn until every group is full; `seen` grows by what is drawn)."""
    rng = random.Random(f"flaw-eval-{seed}")
    groups: dict[str, list[tasks.Problem]] = {g: [] for g in GROUPS if g == "flaw" or g.split("_")[0] in task_digits}
    if not groups:
        return groups
    for draw in range(max_draws):
        if all(len(v) >= per_group for v in groups.values()):
            return groups
        open_tasks = sorted({_task_of_group(pattern, g) for g, v in groups.items() if len(v) < per_group})
        task = open_tasks[draw % len(open_tasks)]
        p = _fresh(task_digits, seen, rng, task)
        g = group_of(pattern, p)
        if g in groups and len(groups[g]) < per_group:
            groups[g].append(p)
    short = {g: len(v) for g, v in groups.items() if len(v) < per_group}
    raise ConfigError(f"flaw.repair.problems_per_group: {per_group} problems per group could not be drawn ({short})")


def discovery_problems(
    task_digits: dict[str, tuple[int, int]], seen: set, per_task: int, seed: int
) -> list[tasks.Problem]:
    rng = random.Random(f"flaw-find-{seed}")
    return [_fresh(task_digits, seen, rng, task) for task in sorted(task_digits) for _ in range(per_task)]


def matching_problems(
    task: str,
    task_digits: dict[str, tuple[int, int]],
    seen: set,
    n: int,
    seed: int,
    keep: Callable[[tasks.Problem], bool],
    max_draws: int = 100_000,
) -> list[tasks.Problem]:
    """`n` fresh problems of `task` for which `keep` holds (the matched controls of the localisation score)."""
    rng = random.Random(f"flaw-control-{seed}")
    out: list[tasks.Problem] = []
    for _ in range(max_draws):
        if len(out) >= n:
            return out
        p = _fresh(task_digits, seen, rng, task)
        if keep(p):
            out.append(p)
    raise ConfigError(
        f"flaw.repair.problems_per_group: {n} matched control problems could not be drawn "
        f"(found {len(out)} in {max_draws} fresh {task} problems)"
    )


def repair_pools(corpus: pd.DataFrame, pattern: str, examples: int) -> tuple[list, list]:
    """(task, a, b) of the training split's pattern problems and of the others; the repair budget must fit."""
    rows = corpus[corpus["split"] == "train"]
    pool = [(t, *operands(i)) for t, i in zip(rows["task"], rows["id"], strict=True)]
    with_pattern = [x for x in pool if patterns.has_pattern(pattern, *x)]
    if examples > len(with_pattern):
        raise ConfigError(
            f"flaw.repair.examples: {examples} corrected examples asked, the training split has "
            f"{len(with_pattern)} problems with pattern {pattern!r}; allowed: 1..{len(with_pattern)}"
        )
    return with_pattern, [x for x in pool if not patterns.has_pattern(pattern, *x)]
