"""Sentences of real `<think>` traces and their reasoning behaviours (the reference for real-profile clusters).

Segmentation: pysbd (a maintained rule-based sentence boundary detector, which keeps "3.5", "e.g." and
"x = 2." decimals intact), run line by line because R1 traces put formulas and enumerations on their own lines.

Categories: the R1 behaviours of Venhoff et al. (2025, "Understanding Reasoning in Thinking Language Models via
Steering Vectors"): initializing, deduction, adding knowledge, example testing, uncertainty estimation,
backtracking. `annotate` is the offline rule annotator: the first category whose cue phrases open (or, for
uncertainty, occur in) the sentence; a sentence with no cue is a deduction, the paper's majority class, and the
first sentence of a trace is initializing unless a stronger cue says otherwise. The cue lists are rules of thumb
written from R1 traces, not learned: an annotation is a weak label, which is why clusters are compared to it
with ARI and a confusion table rather than treated as ground truth.
"""

from __future__ import annotations

import functools
import re

CATEGORIES = ("initializing", "deduction", "adding_knowledge", "example_testing", "uncertainty_estimation",
              "backtracking")  # fmt: skip

# cue phrases, matched case-insensitively at the start of a sentence (after leading punctuation/space)
OPENING_CUES: dict[str, tuple[str, ...]] = {
    "backtracking": (
        "wait",
        "hmm, wait",
        "but wait",
        "no,",
        "no.",
        "no wait",
        "alternatively",
        "actually",
        "hold on",
        "oops",
        "that's not right",
        "that doesn't",
        "i made a mistake",
        "let me reconsider",
        "let me redo",
        "let me re-examine",
        "let me rethink",
        "maybe i made",
        "maybe i should",
        "on second thought",
        "scratch that",
    ),
    "example_testing": (
        "let me check",
        "let me verify",
        "let's check",
        "let's verify",
        "check:",
        "to verify",
        "verify",
        "testing",
        "let me test",
        "let's test",
        "plug",
        "substitut",
        "for example",
        "let's try",
        "let me try",
        "try ",
    ),
    "uncertainty_estimation": (
        "hmm",
        "i'm not sure",
        "i am not sure",
        "not sure",
        "maybe",
        "perhaps",
        "i think",
        "is that right",
        "is this correct",
        "does that make sense",
        "i wonder",
    ),
    "adding_knowledge": (
        "recall",
        "let me recall",
        "let's recall",
        "i remember",
        "i know that",
        "remember that",
        "we know that",
        "by definition",
        "the formula",
        "according to",
        "it is known",
        "there is a theorem",
        "by the",
    ),
    "initializing": (
        "okay, so",
        "ok, so",
        "alright, so",
        "so i need to",
        "i need to",
        "the problem",
        "first, let me",
        "let me start",
        "let's start",
        "we need to",
        "okay, let's",
        "okay, let me",
        "alright, let's",
    ),
}
# uncertainty is also stated mid-sentence ("..., but I'm not sure", "... right?")
ANYWHERE_CUES: dict[str, tuple[str, ...]] = {
    "uncertainty_estimation": ("not sure", "i'm confused", "maybe i'm", "is that right", "right?", "correct?"),
}
ORDER = ("backtracking", "example_testing", "uncertainty_estimation", "adding_knowledge", "initializing")
_LEAD = re.compile(r"^[\s\-*>#:,.]+")


@functools.lru_cache(maxsize=1)
def _segmenter():
    import pysbd

    return pysbd.Segmenter(language="en", clean=False, char_span=True)


def sentence_spans(body: str) -> list[tuple[int, int]]:
    """Character spans [start, end) of the sentences of a think body (whitespace trimmed, empty ones dropped)."""
    spans, pos = [], 0
    for line in body.split("\n"):
        start = pos
        pos += len(line) + 1
        if not line.strip():
            continue
        for piece in _segmenter().segment(line):
            a, b = start + piece.start, start + piece.end
            while a < b and body[a].isspace():
                a += 1
            while b > a and body[b - 1].isspace():
                b -= 1
            if a < b:
                spans.append((a, b))
    return spans


def annotate(sentence: str, first: bool = False) -> str:
    """The behaviour category of one sentence (the offline rule annotator)."""
    text = _LEAD.sub("", sentence.lower())
    for category in ORDER:
        if text.startswith(OPENING_CUES[category]):
            return category
    for category, cues in ANYWHERE_CUES.items():
        if any(cue in text for cue in cues):
            return category
    return "initializing" if first else "deduction"


def annotate_trace(sentences: list[str]) -> list[str]:
    return [annotate(s, first=i == 0) for i, s in enumerate(sentences)]


def behaviour_counts(think: str) -> dict[str, int]:
    """How many sentences of a trace fall in each category (for steering metrics)."""
    sentences = [think[a:b] for a, b in sentence_spans(think)]
    counts = dict.fromkeys(CATEGORIES, 0)
    for category in annotate_trace(sentences):
        counts[category] += 1
    return counts
