"""A heuristic stand-in for Claude behind the test Messages server: it reads our labeler and
scorer prompts the way a model would and answers in the expected formats.

Explanations name the most frequent marked token; detection answers 1 for excerpts that
contain it; fuzzing answers 1 when every marked run is that token. Realistic enough that the
scores it earns mean something (a token-identity label is right for some features, not others).
"""

from __future__ import annotations

import re
from collections import Counter

from messages_server import prompt_of

MARKED = re.compile(r"<<(.+?)>>")
EXAMPLE = re.compile(r"^Example \d+: (.*)$", re.MULTILINE)
LABEL = re.compile(r'^Explanation: the token "(.*)"', re.MULTILINE)


def behaviours(prompt: str) -> str:
    """The behaviour annotator's answer: reads the numbered sentences like a model would; it disagrees with the
    rule annotator on "Hmm" sentences (calls them deductions), so its labels are distinguishable from the rules',
    and garbles its answer for traces that say GARBLE."""
    from r1interp.reasoning.behaviours import annotate

    sentences = [line.split(". ", 1)[1] for line in prompt.splitlines()[1:]]
    if any("GARBLE" in s for s in sentences):
        return "I would rather not say."
    labels = ["deduction" if s.startswith("Hmm") else annotate(s, first=i == 0) for i, s in enumerate(sentences)]
    return "Labels:\n" + "\n".join(f"{i + 1}: {label.replace('_', ' ')}" for i, label in enumerate(labels))


def respond(request: dict) -> str:
    system = request.get("system") or ""
    if isinstance(system, list):
        system = "".join(block.get("text", "") for block in system)
    prompt = prompt_of(request)
    if "[BEHAVIOURS]" in system:
        return behaviours(prompt)
    if "[EXPLANATION]" in system:
        marked = Counter(m for line in EXAMPLE.findall(prompt) for m in MARKED.findall(line))
        token = marked.most_common(1)[0][0] if marked else "?"
        return f'The marked spans are mostly "{token}" inside the worked steps.\n[EXPLANATION]: the token "{token}"'
    found = LABEL.search(prompt)
    token = found.group(1) if found else "\x00"
    excerpts = EXAMPLE.findall(prompt)
    if "present anywhere" in system:  # detection
        answers = [int(token in text.replace("<<", "").replace(">>", "")) for text in excerpts]
    else:  # fuzzing
        answers = [
            int(bool(MARKED.findall(text)) and all(m == token for m in MARKED.findall(text))) for text in excerpts
        ]
    return "Checking each excerpt against the explanation.\n" + str(answers)
