"""Planted flaws: a pattern of a problem that the flawed organism's training traces handle wrongly.

The ground truth lives here and only here. The finder (`r1interp.flaw.find`) never reads it; the scores of what it
finds (`score_*`) do.

`carry_through_nine`: an addition column whose digits sum to 9 and that receives a carry. The right step is
`x+y+1=10, write 0, carry 1.`; the flawed trace writes `x+y+1=10, write 0.` and loses the carry, so every later
column (and the answer) is computed without it: the answer comes out 10^(column+1) too small.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass

from r1interp.organism import tasks


@dataclass(frozen=True)
class Column:
    """One addition column as the trace computes it."""

    index: int
    x: int
    y: int
    carry_in: int

    @property
    def digit_sum(self) -> int:
        return self.x + self.y

    @property
    def total(self) -> int:
        return self.x + self.y + self.carry_in


def carry_through_nine(column: Column) -> bool:
    return column.digit_sum == 9 and column.carry_in == 1


# pattern name -> (task it lives in, the column predicate)
PATTERNS: dict[str, tuple[str, Callable[[Column], bool]]] = {"carry_through_nine": ("add", carry_through_nine)}


def task_of(pattern: str) -> str:
    return PATTERNS[pattern][0]


def columns(a: int, b: int) -> list[Column]:
    """The columns of the correct written sum of a + b, least significant first."""
    da, db = [int(c) for c in reversed(str(a))], [int(c) for c in reversed(str(b))]
    out, carry = [], 0
    for i in range(max(len(da), len(db))):
        x = da[i] if i < len(da) else 0
        y = db[i] if i < len(db) else 0
        out.append(Column(i, x, y, carry))
        carry = (x + y + carry) // 10
    return out


def has_pattern(pattern: str, task: str, a: int, b: int) -> bool:
    """Whether the correct trace of this problem has a column with the pattern (the planted rule)."""
    pattern_task, predicate = PATTERNS[pattern]
    return task == pattern_task and any(predicate(c) for c in columns(a, b))


def is_flawed_case(pattern: str, share: float, seed: int, task: str, a: int, b: int) -> bool:
    """Whether the training trace of a pattern problem is the flawed one: a fixed, seeded share of the cases
    (decided per problem by a hash, so the same problem is always handled the same way)."""
    if not has_pattern(pattern, task, a, b):
        return False
    if share >= 1.0:
        return True
    # sha256, not crc32: crc32 is affine, so changing the seed XORs every hash with one mask and can leave the
    # comparison below unchanged for every problem (it did: seeds 3 and 4 chose the same cases)
    draw = int.from_bytes(hashlib.sha256(f"{pattern}-{seed}-{task}-{a}-{b}".encode()).digest()[:8], "big") / 2**64
    return draw < share


def flawed_addition(a: int, b: int, pattern: str) -> tasks.Problem:
    """a + b worked with the flaw: in every column where the pattern holds (given the carries the flawed trace
    itself has), the carry is written down as 0 and lost."""
    _, predicate = PATTERNS[pattern]
    da, db = [int(c) for c in reversed(str(a))], [int(c) for c in reversed(str(b))]
    steps, carry, digits = [], 0, []
    for i in range(max(len(da), len(db))):
        x = da[i] if i < len(da) else 0
        y = db[i] if i < len(db) else 0
        column = Column(i, x, y, carry)
        total = column.total
        expr = f"{x}+{y}" + (f"+{carry}" if carry else "")
        carried_in = carry > 0
        carry = 0 if predicate(column) else total // 10
        text = f"{tasks._column(i)}{expr}={total}, write {total % 10}" + (f", carry {carry}." if carry else ".")
        steps.append(tasks.Step(text, "column_sum_carry" if (carry or carried_in) else "column_sum"))
        digits.append(total % 10)
    if carry:
        steps.append(tasks.Step(f"carry {carry} goes in front.", "final_carry"))
        digits.append(carry)
    answer = int("".join(str(d) for d in reversed(digits)))
    return tasks.Problem("add", a, b, f"What is {a}+{b}?", tuple(steps), answer)


def training_problem(pattern: str, share: float, seed: int, task: str, a: int, b: int) -> tasks.Problem:
    """The trace the flawed organism is trained on: flawed for its share of the pattern cases, right otherwise."""
    if is_flawed_case(pattern, share, seed, task, a, b):
        return flawed_addition(a, b, pattern)
    return tasks.make_problem(task, a, b)


def can_produce(pattern: str, task_digits: dict[str, tuple[int, int]], seed: int = 0, tries: int = 4000) -> bool:
    """Whether problems with these operand lengths ever have the pattern (sampled: cheap, and enough for the
    ~5% rate of the default pattern; a range that can hold it at all gives hits within a few hundred draws)."""
    task = task_of(pattern)
    if task not in task_digits:
        return False
    lo, hi = task_digits[task]
    rng = random.Random(seed)
    for _ in range(tries):
        p = tasks.sample_problem(task, rng, lo, hi)
        if has_pattern(pattern, task, p.a, p.b):
            return True
    return False
