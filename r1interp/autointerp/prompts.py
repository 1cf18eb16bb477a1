"""Prompts for the Claude labeler and scorer, and parsers for their answers.

The style follows delphi: the explainer sees example windows with the activating tokens
between << >> and, after each example, the activation levels of the marked tokens
(0-10, relative to the feature's max); it reasons briefly and ends with one parseable line
`[EXPLANATION]: ...`. Scorers answer with a Python-style list of 0/1, one per example.
"""

from __future__ import annotations

import ast
import re

import numpy as np

from r1interp.autointerp.evidence import Example, FeatureEvidence

EXPLAIN_SYSTEM = (
    "You are an interpretability researcher studying the features of a sparse transcoder trained on a small "
    "language model. The model solves arithmetic problems; its reasoning sits between <think> and </think>, "
    "then it states the answer.\n"
    "You will see text excerpts in which the tokens where the feature is active are wrapped in << >>, followed "
    "by the activation level (0-10) of each marked token. Find what the marked tokens have in common, taking "
    "their context into account (which column of the calculation, which operation, before or after the "
    "reasoning).\n"
    "Rules: keep the explanation to one short sentence; describe the pattern rather than listing tokens; do not "
    "mention the << >> markers; do not give several alternatives.\n"
    "End your answer with a final line of the form:\n[EXPLANATION]: <your explanation>"
)

DETECTION_SYSTEM = (
    "You are checking an explanation of a feature of a language model. You will get the explanation and "
    "several numbered text excerpts. For each excerpt in order, answer 1 if the feature described by the "
    "explanation is present anywhere in it, else 0.\n"
    "Answer with a single Python list of 0s and 1s with one entry per excerpt, e.g. [1, 0, 0], and nothing else."
)

FUZZING_SYSTEM = (
    "You are checking an explanation of a feature of a language model. You will get the explanation and "
    "several numbered text excerpts in which some tokens are wrapped in << >>. For each excerpt in order, "
    "answer 1 if the marked tokens are exactly the kind of tokens the explanation describes, else 0.\n"
    "Answer with a single Python list of 0s and 1s with one entry per excerpt, e.g. [1, 0, 0], and nothing else."
)

_EXPLANATION = re.compile(r"\[EXPLANATION\]:\s*(.+?)\s*$", re.MULTILINE)
_LIST = re.compile(r"\[[\s01,]*\]")


def visible(token: str) -> str:
    """Newlines shown as \\n, so every excerpt stays on one line of the prompt."""
    return token.replace("\n", "\\n")


def _mark(tokens: list[str], marked: np.ndarray) -> str:
    """Tokens joined, with runs of marked tokens wrapped in << >>."""
    out, open_ = [], False
    for token, m in zip(map(visible, tokens), marked, strict=True):
        if m and not open_:
            out.append("<<")
            open_ = True
        elif not m and open_:
            out.append(">>")
            open_ = False
        out.append(token)
    if open_:
        out.append(">>")
    return "".join(out)


def _levels(e: Example, marked: np.ndarray, max_act: float) -> str:
    pairs = [
        f'("{visible(t)}", {round(10 * a / max_act) if max_act > 0 else 0})'
        for t, a, m in zip(e.tokens, e.acts, marked, strict=True)
        if m
    ]
    return ", ".join(pairs)


def explanation_prompt(ev: FeatureEvidence, threshold_fraction: float) -> str:
    threshold = ev.threshold(threshold_fraction)
    lines = [f"Feature {ev.feature} of layer {ev.layer}. Excerpts, strongest activations first:", ""]
    for i, e in enumerate(ev.explain, 1):
        marked = e.marked(threshold)
        lines.append(f"Example {i}: {_mark(e.tokens, marked)}")
        lines.append(f"Activations: {_levels(e, marked, ev.max_act)}")
        lines.append("")
    promoted = ", ".join(f'"{visible(t)}"' for t in ev.top_output_tokens[:5])
    lines.append(f"When the feature is active it directly promotes these next tokens: {promoted}.")
    return "\n".join(lines)


def scoring_prompt(label: str, excerpts: list[str]) -> str:
    lines = [f"Explanation: {label}", "", "Excerpts:"]
    lines += [f"Example {i}: {text}" for i, text in enumerate(excerpts)]
    return "\n".join(lines)


def detection_excerpt(e: Example) -> str:
    return "".join(map(visible, e.tokens))


def fuzzing_excerpt(e: Example, highlight: np.ndarray) -> str:
    return _mark(e.tokens, highlight)


def parse_explanation(text: str) -> str | None:
    """The last `[EXPLANATION]:` line, or None when the answer has none."""
    found = _EXPLANATION.findall(text)
    return found[-1].strip() if found and found[-1].strip() else None


def parse_binary_list(text: str, n: int) -> list[bool] | None:
    """The last list of n 0/1 values in the answer, or None when there is none."""
    for candidate in reversed(_LIST.findall(text)):
        try:
            values = ast.literal_eval(candidate)
        except (ValueError, SyntaxError):
            continue
        if isinstance(values, list) and len(values) == n and all(v in (0, 1) for v in values):
            return [bool(v) for v in values]
    return None
