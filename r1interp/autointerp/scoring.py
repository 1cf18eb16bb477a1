"""Label scoring with delphi's semantics: detection and fuzzing on held-out examples.

Detection: given the label, does a window contain the feature? (held-out activating windows
vs random silent ones). Fuzzing: given the label, are the marked tokens the right ones?
(each held-out activating window twice: marked where the feature fires, and marked on as
many random silent tokens). Both are balanced binary tasks; with no logprobs from the API we
report balanced accuracy, precision, recall and F1 (not AUROC).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from r1interp.autointerp.evidence import Example, FeatureEvidence

METHODS = ("detection", "fuzzing")
METRICS = ("balanced_accuracy", "precision", "recall", "f1")


@dataclass
class Sample:
    example: Example
    highlight: np.ndarray | None  # fuzzing only: the tokens shown as marked
    truth: bool


def detection_samples(ev: FeatureEvidence, rng: np.random.Generator) -> list[Sample]:
    samples = [Sample(e, None, True) for e in ev.test_activating] + [Sample(e, None, False) for e in ev.test_negative]
    return [samples[i] for i in rng.permutation(len(samples))]


def fuzzing_samples(ev: FeatureEvidence, threshold_fraction: float, rng: np.random.Generator) -> list[Sample]:
    samples = []
    threshold = ev.threshold(threshold_fraction)
    for e in ev.test_activating:
        right = e.marked(threshold)
        silent = np.flatnonzero(e.acts <= 0)
        samples.append(Sample(e, right, True))
        if len(silent) >= right.sum():
            wrong = np.zeros_like(right)
            wrong[rng.choice(silent, size=int(right.sum()), replace=False)] = True
            samples.append(Sample(e, wrong, False))
    return [samples[i] for i in rng.permutation(len(samples))]


def binary_metrics(truth: list[bool], pred: list[bool | None]) -> dict[str, float | int]:
    """Balanced accuracy, precision, recall, F1 over the answered samples (None = unanswered)."""
    pairs = [(t, p) for t, p in zip(truth, pred, strict=True) if p is not None]
    t = np.array([a for a, _ in pairs], dtype=bool)
    p = np.array([b for _, b in pairs], dtype=bool)
    tp, fp = int((t & p).sum()), int((~t & p).sum())
    fn, tn = int((t & ~p).sum()), int((~t & ~p).sum())
    recall = tp / (tp + fn) if tp + fn else float("nan")
    specificity = tn / (tn + fp) if tn + fp else float("nan")
    precision = tp / (tp + fp) if tp + fp else (0.0 if pairs else float("nan"))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "balanced_accuracy": float(np.nanmean([recall, specificity])) if pairs else float("nan"),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "answered": len(pairs),
        "samples": len(truth),
    }
