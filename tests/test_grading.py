"""Grading (math-verify on the answer after `</think>`) and the benchmark's groups, accuracies and intervals,
with exact expected values (every input here is deterministic)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from r1interp import chat
from r1interp.grading import Grade, _gold_text, answer_part, grade
from r1interp.organism import tasks
from r1interp.reasoning import benchmark
from r1interp.reasoning.benchmark import Item

# ---------------------------------------------------------------------------- grading


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("<think>a</think>b</think>c", ("c", True)),  # after the *last* close
        ("</think>x", ("x", True)),  # a close at position 0 still closes
        ("x</think>", ("", True)),
        ("<think>never closed", ("<think>never closed", False)),
        ("", ("", False)),
    ],
)
def test_answer_part(completion, expected):
    assert answer_part(completion) == expected


@pytest.mark.parametrize(
    "gold, text",
    [
        ("7", "$7$"),
        ("x^2", "$x^2$"),
        ("\\frac{1}{2}", "$\\frac{1}{2}$"),
        ("\\boxed{3}", "\\boxed{3}"),
        ("$5$", "$5$"),
        ("the answer $x$", "the answer $x$"),
        ("\\boxed{$1$}", "\\boxed{$1$}"),
    ],
)
def test_gold_text_wraps_only_bare_answers(gold, text):
    assert _gold_text(gold) == text


@pytest.mark.parametrize(
    "completion, gold, expected",
    [
        ("<think>x</think> The answer is $\\frac{1}{2}$" + chat.EOS, "0.5", Grade(True, "\\frac{1}{2}", True)),
        ("42" + chat.EOS, "42", Grade(True, "42", False)),  # never closed: the whole completion is graded
        ("<think>a</think>b</think>The answer is 7", "7", Grade(True, "7", True)),
        ("<think>7</think>The answer is 8", "7", Grade(False, "8", True)),  # the think span is not graded
        ("nothing here", "7", Grade(False, "", False)),
        ("x</think> \\boxed{3}", "\\boxed{3}", Grade(True, "3", True)),
        ("</think>$x^2$", "x^2", Grade(True, "x^2", True)),  # a bare symbolic gold parses only once wrapped
        ("</think> 3, then 4", "4", Grade(True, "4", True)),  # the last answer counts
        ("</think> 3, then 4", "3", Grade(False, "4", True)),
        ("</think> 12", "\\frac{24}{2}", Grade(True, "12", True)),
        ("</think> 1/2" + chat.EOS, "0.5", Grade(True, "1/2", True)),  # the EOS token is removed before parsing
        ("</think> 7" + chat.EOS + "8", "78", Grade(True, "78", True)),
        ("</think> The answer is x", "7", Grade(False, "", True)),  # nothing parsed: wrong, not an error
        ("</think> 7", "no answer", Grade(False, "7", True)),  # an unparseable gold marks nothing correct
    ],
)
def test_grade(completion, gold, expected):
    assert grade(completion, gold) == expected


# ---------------------------------------------------------------------------- Wilson intervals


def _wilson_roots(correct: int, n: int, z: float) -> tuple[float, float]:
    """The Wilson interval by its definition: the p with (p_hat - p)^2 = z^2 p (1 - p) / n (a quadratic)."""
    import numpy as np

    p_hat = correct / n
    lo, hi = np.sort(np.roots([1 + z * z / n, -(2 * p_hat + z * z / n), p_hat * p_hat]).real)
    return float(lo), float(hi)


@pytest.mark.parametrize(
    "correct, n, low, high",
    [
        (3, 10, 0.107789, 0.603227),
        (0, 10, 0.0, 0.277540),
        (10, 10, 0.722460, 1.0),
        (0, 1, 0.0, 0.793457),
        (1, 1, 0.206543, 1.0),
        (1, 2, 0.094529, 0.905471),
        (50, 100, 0.403830, 0.596170),
        (99, 100, 0.945512, 0.998233),
    ],
)
def test_wilson_reference_values(correct, n, low, high):
    lo, hi = benchmark.wilson(correct, n)
    assert (lo, hi) == (pytest.approx(low, abs=1e-6), pytest.approx(high, abs=1e-6))
    assert (lo, hi) == pytest.approx(_wilson_roots(correct, n, 1.96), abs=1e-9)
    if correct == 0:
        assert lo == 0.0
    if correct == n:
        assert hi == 1.0


@pytest.mark.parametrize("z", [1.0, 2.576])
def test_wilson_other_z_and_empty(z):
    for correct, n in ((3, 10), (1, 4), (7, 9)):
        assert benchmark.wilson(correct, n, z=z) == pytest.approx(_wilson_roots(correct, n, z), abs=1e-9)
    assert all(math.isnan(v) for v in benchmark.wilson(0, 0))


# ---------------------------------------------------------------------------- groups and items


def test_is_correct_exact_match_or_math_verify():
    assert benchmark.is_correct("<think>1+1</think>The answer is 2.", Item("q", 2, ""))
    assert not benchmark.is_correct("The answer is 3.", Item("q", 2, ""))
    assert not benchmark.is_correct("no answer", Item("q", 2, ""))
    assert not benchmark.is_correct("The answer is 2", Item("q", 2, ""))  # the organism's sentence ends with "."
    assert benchmark.is_correct("The answer is 5. The answer is 2.", Item("q", 2, ""))  # the last one counts
    assert benchmark.is_correct("</think> $\\frac{4}{2}$", Item("q", "2", ""))  # a str gold: math-verify
    assert not benchmark.is_correct("</think> 3", Item("q", "2", ""))


def _organism_corpus() -> pd.DataFrame:
    rows = [
        ("add-15-27", "add", "heldout", True),
        ("add-12-34", "add", "heldout", False),
        ("add-19-19", "add", "heldout", True),
        ("add-10-10", "add", "train", False),
        ("add-11-11", "add", "train", False),
        ("mul-23-4", "mul", "heldout", True),
        ("mul-21-3", "mul", "train", False),
        ("mul-12-4", "mul", "train", False),
    ]
    return pd.DataFrame(rows, columns=["id", "task", "split", "has_carry"])


def _item_of(task, a, b) -> Item:
    p = tasks.make_problem(task, a, b)
    return Item(p.prompt, p.answer, chat.reasoning_completion(p.think, p.answer_text))


def test_organism_groups_exact():
    groups = benchmark.organism_groups(_organism_corpus(), per_group=5, ood_digits=3, seed=0)
    assert list(groups) == ["add_carry", "add_no_carry", "mul_carry", "ood_add", "ood_mul"]
    assert groups["add_carry"] == [_item_of("add", 15, 27), _item_of("add", 19, 19)]
    assert groups["add_no_carry"] == [_item_of("add", 12, 34)]
    assert groups["mul_carry"] == [_item_of("mul", 23, 4)]
    assert groups["ood_add"] == benchmark.ood_problems("add", 5, 3, 0) and len(groups["ood_add"]) == 5
    assert groups["add_carry"][0].answer == 42 and "The answer is 42" in groups["add_carry"][0].completion
    small = benchmark.organism_groups(_organism_corpus(), per_group=1, ood_digits=2, seed=0)
    assert small["add_carry"] == [_item_of("add", 15, 27)] and len(small["ood_mul"]) == 1


def test_ood_problems_are_seeded_and_have_the_operand_length():
    a = benchmark.ood_problems("add", 6, 4, seed=1)
    assert a == benchmark.ood_problems("add", 6, 4, seed=1) != benchmark.ood_problems("add", 6, 4, seed=2)
    assert a != benchmark.ood_problems("add", 6, 5, seed=1)[:6]
    for item in a:
        assert isinstance(item.answer, int) and 2000 <= item.answer <= 2 * 9999
    rng = __import__("random").Random("ood-add-4-1")
    assert a[0] == benchmark._item(tasks.sample_problem("add", rng, 4, 4))


def test_training_problems_come_from_the_training_split():
    corpus = _organism_corpus()
    assert benchmark.training_problems(corpus, "add", 0, seed=0) == []
    both = benchmark.training_problems(corpus, "add", 5, seed=0)  # more asked than exist: all of them
    assert sorted(i.answer for i in both) == [20, 22]
    one = benchmark.training_problems(corpus, "mul", 1, seed=3)
    assert one[0] in (_item_of("mul", 21, 3), _item_of("mul", 12, 4))
    assert one == benchmark.training_problems(corpus, "mul", 1, seed=3)
    picks = {benchmark.training_problems(corpus, "mul", 1, seed=s)[0].answer for s in range(20)}
    assert picks == {63, 48}


def _real_corpus() -> pd.DataFrame:
    rows = [
        ("p1", "algebra", "heldout", "1/2", "t1", "a1"),
        ("p2", "algebra", "heldout", "3", "t2", "a2"),
        ("p3", "geometry", "heldout", "\\pi", "t3", "a3"),
        ("p4", "algebra", "train", "4", "t4", "a4"),
        ("p5", "geometry", "train", "5", "t5", "a5"),
        ("p6", "algebra", "heldout", "6", "t6", "a6"),
    ]
    return pd.DataFrame(rows, columns=["prompt", "task", "split", "gold", "think", "answer"])


def test_real_groups_and_training_items():
    groups = benchmark.real_groups(_real_corpus(), per_group=2)
    assert groups == {
        "algebra": [
            Item("p1", "1/2", chat.reasoning_completion("t1", "a1")),
            Item("p2", "3", chat.reasoning_completion("t2", "a2")),
        ],
        "geometry": [Item("p3", "\\pi", chat.reasoning_completion("t3", "a3"))],
    }
    assert benchmark.real_training_items(_real_corpus(), 0, seed=0) == []
    items = benchmark.real_training_items(_real_corpus(), 5, seed=0)
    assert sorted((i.question, i.answer, i.completion) for i in items) == [
        ("p4", "4", chat.reasoning_completion("t4", "a4")),
        ("p5", "5", chat.reasoning_completion("t5", "a5")),
    ]
    picks = [benchmark.real_training_items(_real_corpus(), 1, seed=s)[0].question for s in range(20)]
    assert set(picks) == {"p4", "p5"}
    assert picks == [benchmark.real_training_items(_real_corpus(), 1, seed=s)[0].question for s in range(20)]


# ---------------------------------------------------------------------------- accuracy over generated answers


class _Answers:
    """`generate` for a fixed table question -> completion, recording how it was called."""

    def __init__(self, table: dict[str, str]):
        self.table, self.calls = table, []

    def __call__(self, model, tokenizer, questions, *, max_new_tokens, batch_size, desc="generate"):
        self.calls.append((list(questions), max_new_tokens, batch_size, desc))
        return [self.table[q] for q in questions]


def test_accuracy_counts_intervals_and_behaviours(monkeypatch, tokenizer):
    groups = {
        "g1": [Item("q1", 1, ""), Item("q2", 2, ""), Item("q3", 3, "")],
        "g2": [Item("q4", "0.5", "")],
        "empty": [],
    }
    answers = _Answers(
        {
            "q1": "<think>One. Wait, check it.</think>The answer is 1.",
            "q2": "<think>Hmm, maybe it is 5. Wait, no.</think>The answer is 5.",
            "q3": "<think>three",  # never closed
            "q4": "<think>half</think> $\\frac{1}{2}$",
        }
    )
    monkeypatch.setattr(benchmark, "generate", answers)
    out = benchmark.accuracy("model", tokenizer, groups, max_new_tokens=17, batch_size=3)
    assert answers.calls == [(["q1", "q2", "q3", "q4"], 17, 3, "problems")]  # every group in one generation
    lo, hi = benchmark.wilson(1, 3)
    assert out["g1"] == {"n": 3, "correct": 1, "accuracy": pytest.approx(1 / 3), "ci_low": lo, "ci_high": hi}
    assert out["g2"] == {
        "n": 1,
        "correct": 1,
        "accuracy": 1.0,
        "ci_low": pytest.approx(0.206543, abs=1e-6),
        "ci_high": 1.0,
    }
    assert out["empty"]["n"] == 0 and out["empty"]["correct"] == 0 and math.isnan(out["empty"]["accuracy"])
    assert math.isnan(out["empty"]["ci_low"]) and math.isnan(out["empty"]["ci_high"])

    with_b = benchmark.accuracy("model", tokenizer, groups, max_new_tokens=17, batch_size=3, behaviours=True)
    from r1interp.reasoning.behaviours import behaviour_counts

    thinks = ["One. Wait, check it.", "Hmm, maybe it is 5. Wait, no.", "three"]
    counts = [behaviour_counts(t) for t in thinks]
    assert sum(c["backtracking"] for c in counts) >= 2  # the rule annotator sees both "Wait"s
    g1 = with_b["g1"]
    assert g1["correct"] == 1 and g1["n"] == 3
    assert g1["backtracking_per_trace"] == round(sum(c["backtracking"] for c in counts) / 3, 4)
    assert g1["uncertainty_per_trace"] == round(sum(c["uncertainty_estimation"] for c in counts) / 3, 4)
    assert g1["finished"] == round(2 / 3, 4)
    lengths = [len(tokenizer(t, add_special_tokens=False).input_ids) for t in thinks]
    assert g1["think_tokens"] == round(sum(lengths) / 3, 1) and g1["think_tokens"] > 0
    assert "finished" not in out["g1"]


def test_behaviour_of_one_completion(tokenizer):
    out = benchmark.behaviour(tokenizer, ["<think>Wait, no.</think>The answer is 1."])
    assert out["finished"] == 1.0 and out["backtracking_per_trace"] >= 1.0
    assert out["think_tokens"] == len(tokenizer("Wait, no.", add_special_tokens=False).input_ids)


def test_behaviour_of_no_completions_is_zero(tokenizer):
    assert benchmark.behaviour(tokenizer, []) == {
        "backtracking_per_trace": 0.0,
        "uncertainty_per_trace": 0.0,
        "finished": 0.0,
        "think_tokens": 0.0,
    }


def test_graded_passes_the_budget_and_grades_each_item(monkeypatch):
    answers = _Answers({"a": "The answer is 1.", "b": "The answer is 3.", "c": "</think> 2"})
    monkeypatch.setattr(benchmark, "generate", answers)
    items = [Item("a", 1, ""), Item("b", 2, ""), Item("c", "2", "")]
    assert benchmark.graded("m", "tok", items, max_new_tokens=9, batch_size=2, desc="x") == [True, False, True]
    assert benchmark.graded("m", "tok", items[:1], max_new_tokens=3, batch_size=1) == [True]
    assert answers.calls == [(["a", "b", "c"], 9, 2, "x"), (["a"], 3, 1, "generate")]


# ---------------------------------------------------------------------------- teacher-forced batches


def test_examples_and_batches(tokenizer):
    items = [_item_of("add", 15, 27), _item_of("add", 3, 4), _item_of("mul", 23, 4)]
    exs = benchmark.examples(tokenizer, items)
    assert len(exs) == 3
    for item, ex in zip(items, exs, strict=True):
        prompt = tokenizer(chat.prompt_text(item.question), add_special_tokens=False).input_ids
        completion = tokenizer(item.completion, add_special_tokens=False).input_ids
        assert ex.input_ids == prompt + completion and ex.n_prompt == len(prompt)
    got = list(benchmark.batches(exs, tokenizer.pad_token_id, 2))
    assert [b[0].shape[0] for b in got] == [2, 1]
    # the loss covers the completion tokens only
    for ex, (_ids, labels, mask) in zip(
        exs, [(g[0][i], g[1][i], g[2][i]) for g in got for i in range(len(g[0]))], strict=True
    ):
        assert int((labels != -100).sum()) == len(ex.input_ids) - ex.n_prompt
        assert int(mask.sum()) == len(ex.input_ids)


def test_gold_nll_is_the_mean_token_loss(tokenizer, tiny_model_kwargs):
    from r1interp.organism.train import build_model

    torch.manual_seed(0)
    model = build_model(len(tokenizer), **tiny_model_kwargs).eval()
    items = [_item_of("add", 15, 27), _item_of("add", 3, 4), _item_of("mul", 23, 4)]
    total, count = 0.0, 0
    for ex in benchmark.examples(tokenizer, items):  # one at a time, no padding
        ids = torch.tensor([ex.input_ids])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, :-1]
        target = ids[0, 1:]
        loss = torch.nn.functional.cross_entropy(logits, target, reduction="none")[ex.n_prompt - 1 :]
        total += float(loss.sum())
        count += len(loss)
    assert benchmark.gold_nll(model, tokenizer, items, batch_size=2) == pytest.approx(total / count, rel=1e-4)
    assert benchmark.gold_nll(model, tokenizer, items, batch_size=1) == pytest.approx(total / count, rel=1e-4)
