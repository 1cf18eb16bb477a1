"""Synthetic arithmetic traces: the trace text alone must determine the right answer."""

from __future__ import annotations

import random
import re

import pytest

from r1interp.organism import tasks

COLUMNS = ("ones", "tens", "hundreds", "thousands", "ten-thousands", "hundred-thousands")
ADD_RE = re.compile(r"^(\w[\w-]*): (\d)\+(\d)(?:\+(\d))?=(\d+), write (\d)(?:, carry (\d))?\.$")
MUL_RE = re.compile(r"^(\w[\w-]*): (\d)\*(\d)=(\d+)(?:, (\d+)\+(\d)=(\d+))?, write (\d)(?:, carry (\d))?\.$")
FINAL_RE = re.compile(r"^carry (\d) goes in front\.$")


def _result_from_trace(think: str) -> tuple[int, list[bool]]:
    """Re-derive the result from the trace text only; also report per-step 'carry involved'."""
    digits: list[str] = []
    carry_flags: list[bool] = []
    carry_out = 0
    lines = think.split("\n")
    for i, line in enumerate(lines):
        final = FINAL_RE.match(line)
        if final:
            assert i == len(lines) - 1, "the leftover carry must be the last step"
            assert int(final.group(1)) == carry_out, "front carry must be the pending carry"
            digits.append(final.group(1))
            carry_flags.append(True)
            continue
        if m := ADD_RE.match(line):
            column, x, y, cin, total, write, cout = m.groups()
            value = int(x) + int(y)
        elif m := MUL_RE.match(line):
            column, x, y, product, again, cin, total, write, cout = m.groups()
            value = int(x) * int(y)
            assert int(product) == value, "the product step must be right"
            if cin is None:
                total = product
            else:
                assert int(again) == value, "the carry is added to the product just computed"
        else:
            raise AssertionError(f"unparseable step {line!r}")
        assert column == COLUMNS[i], "every step names its column, ones first"
        cin = int(cin or 0)
        assert cin == carry_out, "each column must consume the previous column's carry"
        assert value + cin == int(total)
        assert int(write) == int(total) % 10
        assert int(cout or 0) == int(total) // 10
        carry_out = int(cout or 0)
        digits.append(write)
        carry_flags.append(bool(cin or carry_out))
    assert carry_out == 0 or FINAL_RE.match(lines[-1]), "a pending carry must be written in front"
    return int("".join(reversed(digits))), carry_flags


def _check(p: tasks.Problem, expected: int, op: str) -> None:
    assert p.answer == expected
    assert p.prompt == f"What is {p.a}{op}{p.b}?"
    assert p.answer_text == f"The answer is {expected}."
    value, carry_flags = _result_from_trace(p.think)
    assert value == expected
    assert re.fullmatch(r"The answer is (\d+)\.", p.answer_text).group(1) == str(value)
    assert len(p.steps) == len(carry_flags) == len(p.step_types)
    word = "sum" if op == "+" else "product"
    for step, carried in zip(p.steps, carry_flags, strict=True):
        if step.text.startswith("carry "):
            assert step.kind == "final_carry"
        else:
            assert step.kind == (f"column_{word}_carry" if carried else f"column_{word}")
        assert step.kind in tasks.STEP_TYPES
    assert p.has_carry == any(carry_flags)


def test_addition_trace_derives_the_sum():
    rng = random.Random(1234)
    for _ in range(600):
        a = rng.randint(0, 10 ** rng.randint(1, 6) - 1)
        b = rng.randint(0, 10 ** rng.randint(1, 6) - 1)
        _check(tasks.addition(a, b), a + b, "+")


def test_multiplication_trace_derives_the_product():
    rng = random.Random(99)
    for _ in range(600):
        a = rng.randint(0, 10 ** rng.randint(1, 6) - 1)
        b = rng.randint(0, 9)
        _check(tasks.multiplication(a, b), a * b, "*")


@pytest.mark.parametrize("a, b", [(0, 0), (9, 1), (999, 1), (1, 999), (5, 5), (99999, 99999), (10, 90)])
def test_addition_edge_cases(a, b):
    _check(tasks.addition(a, b), a + b, "+")


@pytest.mark.parametrize("a, b", [(0, 9), (999, 9), (125, 8), (10, 0), (7, 1)])
def test_multiplication_edge_cases(a, b):
    _check(tasks.multiplication(a, b), a * b, "*")


def test_has_carry_examples():
    assert not tasks.addition(12, 34).has_carry
    assert tasks.addition(12, 34).step_types == ["column_sum", "column_sum"]
    p = tasks.addition(19, 1)
    assert p.has_carry
    assert p.step_types == ["column_sum_carry", "column_sum_carry"]
    assert p.think == "ones: 9+1=10, write 0, carry 1.\ntens: 1+0+1=2, write 2."
    q = tasks.addition(95, 7)
    assert q.step_types == ["column_sum_carry", "column_sum_carry", "final_carry"]
    assert q.think.endswith("carry 1 goes in front.")
    assert not tasks.multiplication(12, 3).has_carry
    assert tasks.multiplication(15, 3).has_carry


def test_multiplier_must_be_one_digit():
    with pytest.raises(ValueError, match="one-digit"):
        tasks.multiplication(12, 10)
    with pytest.raises(ValueError):
        tasks.make_problem("mul", 12, -1)


def test_make_problem_dispatches():
    assert tasks.make_problem("add", 3, 4) == tasks.addition(3, 4)
    assert tasks.make_problem("mul", 3, 4) == tasks.multiplication(3, 4)
    with pytest.raises(ValueError, match="unknown task"):
        tasks.make_problem("div", 3, 4)


def test_unknown_task_raises():
    with pytest.raises(ValueError, match="unknown task 'div'"):
        tasks.sample_problem("div", random.Random(0), 1, 2)


@pytest.mark.parametrize("task", tasks.TASKS)
def test_sample_problem_is_deterministic(task):
    a = [tasks.sample_problem(task, random.Random(7), 2, 4) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    r1, r2 = random.Random(42), random.Random(42)
    seq1 = [tasks.sample_problem(task, r1, 2, 4) for _ in range(50)]
    seq2 = [tasks.sample_problem(task, r2, 2, 4) for _ in range(50)]
    assert seq1 == seq2
    r3 = random.Random(43)
    seq3 = [tasks.sample_problem(task, r3, 2, 4) for _ in range(50)]
    assert seq3 != seq1
    assert len({(p.a, p.b) for p in seq1}) > 10  # actually random, not constant


@pytest.mark.parametrize("task", tasks.TASKS)
@pytest.mark.parametrize("lo, hi", [(1, 1), (2, 3), (3, 5)])
def test_sample_problem_respects_digit_bounds(task, lo, hi):
    rng = random.Random(5)
    lengths = set()
    for _ in range(300):
        p = tasks.sample_problem(task, rng, lo, hi)
        assert lo <= len(str(p.a)) <= hi
        lengths.add(len(str(p.a)))
        if task == "add":
            assert lo <= len(str(p.b)) <= hi
            assert p.answer == p.a + p.b
        else:
            assert 2 <= p.b <= 9
            assert p.answer == p.a * p.b
        assert p.task == task
    assert lengths == set(range(lo, hi + 1))  # every allowed length occurs
