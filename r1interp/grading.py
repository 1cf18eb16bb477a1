"""Grading real math answers with `math-verify` (the verifier OpenR1 itself uses), not string equality.

A completion is graded on what follows `</think>` (the model's answer; the whole completion if the
trace never closed), against the corpus's gold answer: both are parsed to SymPy by math-verify (LaTeX,
`\\boxed{}`, plain numbers) and compared symbolically, so `\\frac{1}{2}`, `0.5` and `1/2` agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from r1interp import chat


@dataclass(frozen=True)
class Grade:
    correct: bool
    parsed: str  # what math-verify extracted from the answer ('' when nothing)
    finished: bool  # the trace closed `</think>` within the token budget


def answer_part(completion: str) -> tuple[str, bool]:
    """(the text after `</think>`, whether it closed); the whole completion when it never closed."""
    cut = completion.rfind(chat.THINK_CLOSE)
    if cut < 0:
        return completion, False
    return completion[cut + len(chat.THINK_CLOSE) :], True


def _gold_text(gold: str) -> str:
    # math-verify extracts from LaTeX environments or \boxed{}; a bare gold answer is wrapped as inline math
    return gold if ("\\boxed" in gold or "$" in gold) else f"${gold}$"


def grade(completion: str, gold: str) -> Grade:
    from math_verify import parse, verify

    answer, finished = answer_part(completion)
    target = parse(_gold_text(gold), parsing_timeout=5)
    found = parse(answer.replace(chat.EOS, ""), parsing_timeout=5)
    correct = bool(target) and bool(found) and bool(verify(target, found, timeout_seconds=5))
    return Grade(correct, str(found[-1]) if found else "", finished)
