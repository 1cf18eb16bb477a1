"""The offline labeler and scorer: deterministic token rules, no network.

The label is a rule learned from the explanation set only: a few token n-grams (the
activating token with up to two tokens before it) chosen greedily for how many activating
examples they cover and how rarely they occur where the feature stays silent. The text
names the rule, where in the trace the feature fires and what it promotes, e.g.
`fires on "=" after "4*4" (45% of examples) | "=" after "3*3" (20%); inside <think> (100%);
promotes "1", "6"`.

The offline scorer is honest about what it measures: whether the rule predicts the
held-out activations. It answers detection by matching the rule anywhere in a window and
fuzzing by checking that every marked token matches the rule.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections import Counter
from dataclasses import dataclass

import numpy as np

from r1interp.autointerp.evidence import FeatureEvidence
from r1interp.autointerp.scoring import Sample

LABELER_ID = "offline"
RULE_MODEL = "offline-ngram-v1"  # what wrote the label: the rule learner and its version
MAX_NGRAM = 3
MAX_PATTERNS = 6
MIN_PRECISION = 0.5
DIGIT = "<digit>"  # a pattern element matching any digit token (arithmetic features are often digit-agnostic)


def _element_matches(element: str, token: str) -> bool:
    return element == token or (element == DIGIT and token.isdigit())


@dataclass(frozen=True)
class Rule:
    patterns: tuple[tuple[str, ...], ...]  # each ends with the activating token

    def matches_at(self, tokens: list[str], i: int) -> bool:
        for p in self.patterns:
            if i - len(p) + 1 >= 0 and all(
                _element_matches(e, t) for e, t in zip(p, tokens[i - len(p) + 1 : i + 1], strict=True)
            ):
                return True
        return False

    def fires_in(self, tokens: list[str]) -> bool:
        present = window_grams(tuple(tokens))[1]
        return any(p in present for p in self.patterns)


@dataclass
class Label:
    text: str | None  # None: no label could be made (or parsed)
    labeler: str
    model: str  # what wrote it: RULE_MODEL or a Claude model
    prompt_hash: str  # what it was made from (the prompt, or the offline evidence)
    rule: Rule | None = None
    status: str = "ok"  # ok | no_rule | unparsed | failed


def _general(tokens: list[str]) -> list[str]:
    return [DIGIT if t.isdigit() else t for t in tokens]


def all_grams(tokens: list[str]) -> list[tuple[str, ...]]:
    """Every n-gram (n <= MAX_NGRAM) of a window, literal and, where it differs, with digits
    generalized to DIGIT. Built with zips: this is the offline labeler's inner loop."""
    general = _general(tokens)
    out = []
    for n in range(1, MAX_NGRAM + 1):
        literal = list(zip(*(tokens[j:] for j in range(n)), strict=False))
        out += literal
        out += [
            g for lit, g in zip(literal, zip(*(general[j:] for j in range(n)), strict=False), strict=True) if g != lit
        ]
    return out


# Windows repeat across features (one token sequence is a top example of many features, and the silent
# windows are drawn from a small pool): on the organism ~5x for activating and ~20x for silent windows.
# Caching their n-grams makes labeling several times faster; the results are the same.
@functools.lru_cache(maxsize=1 << 16)
def window_grams(tokens: tuple[str, ...]) -> tuple[Counter, frozenset]:
    """all_grams of a window as (counts, set). Shared between callers: never mutate the Counter."""
    grams = all_grams(list(tokens))
    return Counter(grams), frozenset(grams)


@functools.lru_cache(maxsize=1 << 17)
def grams_at(tokens: tuple[str, ...], i: int) -> frozenset[tuple[str, ...]]:
    """The n-grams ending at position i (literal and generalized); cached like window_grams."""
    out = set()
    for n in range(1, min(MAX_NGRAM, i + 1) + 1):
        gram = tokens[i - n + 1 : i + 1]
        out.add(gram)
        out.add(tuple(_general(list(gram))))
    return frozenset(out)


def learn_rule(ev: FeatureEvidence, threshold_fraction: float) -> tuple[Rule, dict]:
    """Greedy n-gram rule from the explanation set (see the module docstring).

    Each step adds the n-gram that most raises the rule's window-level balanced accuracy on
    the explanation data (activating windows matched at a marked token vs silent windows
    matched anywhere), among n-grams that fire on at least MIN_PRECISION of their occurrences.
    """
    threshold = ev.threshold(threshold_fraction)
    fired = Counter()  # n-gram -> occurrences at marked tokens
    act_hits: dict[tuple, int] = {}  # n-gram -> bitmask of the windows it hits (bit j: window j)
    for j, e in enumerate(ev.explain):
        window = tuple(e.tokens)
        for i in np.flatnonzero(e.marked(threshold)):
            at = grams_at(window, int(i))
            fired.update(at)
            for g in at:
                act_hits[g] = act_hits.get(g, 0) | 1 << j
    # Only n-grams that fired can become patterns, so only theirs are counted (set intersections, in C).
    seen = Counter()  # n-gram -> all occurrences in the explanation windows (token precision = fired / seen)
    neg_hits: dict[tuple, int] = {}
    for e in ev.explain:
        counts = window_grams(tuple(e.tokens))[0]
        for g in counts.keys() & fired.keys():
            seen[g] += counts[g]
    for j, e in enumerate(ev.explain_negative):
        counts, present = window_grams(tuple(e.tokens))
        for g in present.intersection(fired):
            seen[g] += counts[g]
            neg_hits[g] = neg_hits.get(g, 0) | 1 << j
    n_act, n_neg = max(1, len(ev.explain)), max(1, len(ev.explain_negative))
    precision = {g: fired[g] / seen[g] for g in fired}
    # sorted: act_hits was filled from sets, whose order changes with PYTHONHASHSEED, and ties must not
    candidates = sorted(g for g in act_hits if precision[g] >= MIN_PRECISION)
    chosen: list[tuple[str, ...]] = []
    covered, false_hits = 0, 0  # bitmasks, like act_hits
    score = 0.0
    while len(chosen) < MAX_PATTERNS:
        best, best_score = None, score + 0.01  # a pattern must add at least one point of accuracy
        for g in candidates:
            if g in chosen:
                continue
            j = (covered | act_hits[g]).bit_count() / n_act - (false_hits | neg_hits.get(g, 0)).bit_count() / n_neg
            j -= 1e-3 * len(g)  # ties go to shorter patterns
            if j > best_score:
                best, best_score = g, j
        if best is None:
            break
        chosen.append(best)
        covered |= act_hits[best]
        false_hits |= neg_hits.get(best, 0)
        score = best_score
    stats = {
        "coverage": {g: act_hits[g].bit_count() / n_act for g in chosen},
        "precision": {g: precision[g] for g in chosen},
        "covered": covered.bit_count() / n_act,
        "false_positive_rate": false_hits.bit_count() / n_neg,
    }
    return Rule(tuple(chosen)), stats


def _show(tokens: tuple[str, ...]) -> str:
    return json.dumps("".join(tokens), ensure_ascii=False).replace(DIGIT, "<digit>")


def describe(ev: FeatureEvidence, rule: Rule, stats: dict) -> str:
    parts = []
    for g in rule.patterns:
        head = _show(g[-1:])
        parts.append(f"{head} after {_show(g[:-1])}" if len(g) > 1 else head)
        parts[-1] += f" ({100 * stats['coverage'][g]:.0f}%)"
    where = (
        f"inside <think> ({100 * ev.think_fraction:.0f}%)"
        if ev.think_fraction >= 0.5
        else f"outside <think> ({100 * (1 - ev.think_fraction):.0f}%)"
    )
    promotes = ", ".join(_show((t,)) for t in ev.top_output_tokens[:3])
    return f"fires on {' | '.join(parts)}; {where}; promotes {promotes}"


def evidence_hash(ev: FeatureEvidence) -> str:
    payload = [[e.tokens, np.round(e.acts, 4).tolist()] for e in ev.explain + ev.explain_negative]
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()


class OfflineLabeler:
    def __init__(self, threshold_fraction: float):
        self.threshold_fraction = threshold_fraction

    def label_all(self, evidence: list[FeatureEvidence]) -> list[Label]:
        labels = []
        for ev in evidence:
            rule, stats = learn_rule(ev, self.threshold_fraction)
            if not rule.patterns:
                labels.append(Label(None, LABELER_ID, RULE_MODEL, evidence_hash(ev), None, "no_rule"))
                continue
            labels.append(Label(describe(ev, rule, stats), LABELER_ID, RULE_MODEL, evidence_hash(ev), rule))
        return labels


class OfflineScorer:
    """Predicts with the label's rule; only works for labels that carry one."""

    model = RULE_MODEL

    def predict_all(self, tasks: list[tuple[FeatureEvidence, Label, str, list[Sample]]]) -> list[list[bool | None]]:
        out = []
        for _, label, method, samples in tasks:
            rule = label.rule
            if rule is None:
                out.append([None] * len(samples))
            elif method == "detection":
                out.append([rule.fires_in(s.example.tokens) for s in samples])
            else:
                out.append([self._fuzz(rule, s) for s in samples])
        return out

    @staticmethod
    def _fuzz(rule: Rule, s: Sample) -> bool:
        """Correctly marked iff at least half of the marked tokens match the rule."""
        marked = np.flatnonzero(s.highlight)
        hits = sum(rule.matches_at(s.example.tokens, int(i)) for i in marked)
        return bool(len(marked)) and hits * 2 >= len(marked)
