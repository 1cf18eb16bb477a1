"""Claude as the behaviour annotator of real `<think>` traces (`clusters.annotator: claude`).

One request per trace: the numbered sentences (as `behaviours.sentence_spans` cut them) and the six R1
behaviour categories with their definitions (Venhoff et al. 2025); Claude answers one `<n>: <category>` line
per sentence. Requests go through `ClaudeClient` (the labels stage's transport): cached by content in an
append-only file that survives re-runs, rate-limited, retried, the key read from the environment only. An
answer that does not label every sentence with a known category falls back to the rule annotator for that
trace, counted in the stats, so a bad answer never silently shifts the reference.
"""

from __future__ import annotations

import re

from r1interp.autointerp.client import LLMRequest
from r1interp.reasoning.behaviours import CATEGORIES, annotate_trace

DEFINITIONS = {
    "initializing": "restating the problem or planning the approach at the start",
    "deduction": "deriving a new fact or computing a step from what is known",
    "adding_knowledge": "recalling a fact, definition or formula not derived in the trace",
    "example_testing": "checking a result by testing a value, an example or by substitution",
    "uncertainty_estimation": "stating doubt or confidence about the reasoning so far",
    "backtracking": "abandoning or revising an earlier step or approach (e.g. 'Wait', 'Alternatively')",
}
SYSTEM = (
    "You annotate the reasoning behaviour of each sentence of a language model's chain of thought. Categories:\n"
    + "\n".join(f"- {name}: {doc}" for name, doc in DEFINITIONS.items())
    + "\nAnswer with exactly one line per sentence, in order, formatted `<number>: <category>`, using only the "
    "category names above. [BEHAVIOURS]"
)
LINE = re.compile(r"^\s*(\d+)\s*[:.)-]\s*([a-z_ ]+?)\s*$", re.MULTILINE)


def request(sentences: list[str], model: str, max_tokens: int) -> LLMRequest:
    body = "\n".join(f"{i + 1}. {s}" for i, s in enumerate(sentences))
    return LLMRequest(model=model, system=SYSTEM, prompt=f"Sentences:\n{body}", max_tokens=max_tokens)


def parse(text: str, n: int) -> list[str] | None:
    """The categories of sentences 1..n, or None unless every one is answered with a known category."""
    found: dict[int, str] = {}
    for number, name in LINE.findall(text):
        name = name.strip().replace(" ", "_")
        if name in CATEGORIES:
            found.setdefault(int(number), name)
    return [found[i] for i in range(1, n + 1)] if all(i in found for i in range(1, n + 1)) else None


def annotate_traces(client, traces: list[list[str]], model: str, max_tokens: int) -> tuple[list[list[str]], dict]:
    """Claude's category for every sentence of every trace, and {requests, fallback_traces}."""
    requests = [request(sentences, model, max_tokens) for sentences in traces]
    answers = client.complete_many(requests, desc="behaviours (claude)")
    out, fallback = [], 0
    for sentences, req in zip(traces, requests, strict=True):
        labels = parse(answers[req.key].text, len(sentences))
        if labels is None:
            fallback += 1
            labels = annotate_trace(sentences)
        out.append(labels)
    return out, {"requests": len(requests), "fallback_traces": fallback}
