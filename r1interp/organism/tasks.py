"""Synthetic R1-style reasoning problems for the model organisms.

Each problem carries a column-by-column `<think>` trace that mirrors how a
person (or DeepSeek-R1) works a written sum: one step per column, with the
carry stated explicitly. Every step is tagged with a ground-truth *step type*
so later analyses (reasoning-step clustering) can be scored against the truth.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

TASKS = ("add", "mul")

# Step types the generator knows; clustering is validated against these.
STEP_TYPES = (
    "column_sum",  # addition column, no carry in or out
    "column_sum_carry",  # addition column that produces or consumes a carry
    "column_product",  # multiplication column, no carry in or out
    "column_product_carry",
    "final_carry",  # the leftover carry written in front
)


@dataclass(frozen=True)
class Step:
    text: str
    kind: str


@dataclass(frozen=True)
class Problem:
    task: str
    a: int
    b: int
    prompt: str
    steps: tuple[Step, ...]
    answer: int

    @property
    def think(self) -> str:
        return "\n".join(s.text for s in self.steps)

    @property
    def answer_text(self) -> str:
        return f"The answer is {self.answer}."

    @property
    def has_carry(self) -> bool:
        return any(s.kind.endswith("carry") for s in self.steps)

    @property
    def step_types(self) -> list[str]:
        return [s.kind for s in self.steps]


COLUMN_NAMES = ("ones", "tens", "hundreds", "thousands", "ten-thousands", "hundred-thousands")


def _column(i: int) -> str:
    """Naming the column in every step gives the model a positional anchor for the digit lookup
    (a prototype without it stalled at ~92% on addition; with it, 100%)."""
    name = COLUMN_NAMES[i] if i < len(COLUMN_NAMES) else f"10^{i}"
    return f"{name}: "


def _digits_lsb_first(n: int) -> list[int]:
    return [int(c) for c in reversed(str(n))]


def addition(a: int, b: int) -> Problem:
    da, db = _digits_lsb_first(a), _digits_lsb_first(b)
    steps, carry = [], 0
    for i in range(max(len(da), len(db))):
        x = da[i] if i < len(da) else 0
        y = db[i] if i < len(db) else 0
        total = x + y + carry
        expr = f"{x}+{y}" + (f"+{carry}" if carry else "")
        carried_in = carry > 0
        carry = total // 10
        text = f"{_column(i)}{expr}={total}, write {total % 10}" + (f", carry {carry}." if carry else ".")
        kind = "column_sum_carry" if (carry or carried_in) else "column_sum"
        steps.append(Step(text, kind))
    if carry:
        steps.append(Step(f"carry {carry} goes in front.", "final_carry"))
    return Problem("add", a, b, f"What is {a}+{b}?", tuple(steps), a + b)


def multiplication(a: int, b: int) -> Problem:
    if not 0 <= b <= 9:
        raise ValueError(f"multiplication organisms use a one-digit multiplier, got {b}")
    steps, carry = [], 0
    for i, x in enumerate(_digits_lsb_first(a)):
        product = x * b
        total = product + carry
        # Multiply, then add the carry as a separate step: two small lookups instead of one
        # three-operand fact (the fused form left the organism at ~96% on multiplication).
        expr = f"{x}*{b}={product}" + (f", {product}+{carry}={total}" if carry else "")
        carried_in = carry > 0
        carry = total // 10
        text = f"{_column(i)}{expr}, write {total % 10}" + (f", carry {carry}." if carry else ".")
        kind = "column_product_carry" if (carry or carried_in) else "column_product"
        steps.append(Step(text, kind))
    if carry:
        steps.append(Step(f"carry {carry} goes in front.", "final_carry"))
    return Problem("mul", a, b, f"What is {a}*{b}?", tuple(steps), a * b)


def _random_operand(rng: random.Random, digits: int) -> int:
    return rng.randint(10 ** (digits - 1) if digits > 1 else 0, 10**digits - 1)


def sample_problem(task: str, rng: random.Random, min_digits: int, max_digits: int) -> Problem:
    """One random problem; operand lengths are drawn uniformly in [min_digits, max_digits]."""
    if task == "add":
        a = _random_operand(rng, rng.randint(min_digits, max_digits))
        b = _random_operand(rng, rng.randint(min_digits, max_digits))
        return addition(a, b)
    if task == "mul":
        a = _random_operand(rng, rng.randint(min_digits, max_digits))
        return multiplication(a, rng.randint(2, 9))
    raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")


def make_problem(task: str, a: int, b: int) -> Problem:
    if task == "add":
        return addition(a, b)
    if task == "mul":
        return multiplication(a, b)
    raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
