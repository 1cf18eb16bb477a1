"""Label features, score the labels, and tabulate: the body of the `labels` stage."""

from __future__ import annotations

import numpy as np
import pandas as pd

from r1interp.autointerp.evidence import FeatureEvidence
from r1interp.autointerp.offline import Label
from r1interp.autointerp.scoring import METHODS, METRICS, binary_metrics, detection_samples, fuzzing_samples


def scoring_tasks(evidence: list[FeatureEvidence], labels: list[Label], threshold_fraction: float, seed: int):
    """(evidence, label, method, samples) for every labeled feature; seeded per feature."""
    tasks = []
    for ev, label in zip(evidence, labels, strict=True):
        if label.text is None:
            continue
        rng = np.random.default_rng([seed, ev.layer, ev.feature])
        tasks.append((ev, label, "detection", detection_samples(ev, rng)))
        tasks.append((ev, label, "fuzzing", fuzzing_samples(ev, threshold_fraction, rng)))
    return tasks


def empty_labels() -> pd.DataFrame:
    """A labels table with no rows but every column and dtype (no feature had enough examples)."""
    from r1interp.schemas import LabelSchema

    columns = LabelSchema.to_schema().columns
    return pd.DataFrame({name: pd.Series(dtype=str(col.dtype)) for name, col in columns.items()})


def label_and_score(evidence, labeler, scorer, threshold_fraction: float, seed: int):
    """-> (labels table, per-sample scores table)."""
    labels = labeler.label_all(evidence)
    tasks = scoring_tasks(evidence, labels, threshold_fraction, seed)
    predictions = scorer.predict_all(tasks) if tasks else []
    per_feature: dict[tuple[int, int], dict] = {}
    score_rows = []
    for (ev, _label, method, samples), pred in zip(tasks, predictions, strict=True):
        truth = [s.truth for s in samples]
        m = binary_metrics(truth, pred)
        per_feature.setdefault((ev.layer, ev.feature), {}).update({f"{method}_{k}": v for k, v in m.items()})
        for i, (s, p) in enumerate(zip(samples, pred, strict=True)):
            score_rows.append(
                {
                    "model": ev.model,
                    "layer": ev.layer,
                    "feature": ev.feature,
                    "method": method,
                    "sample": i,
                    "truth": s.truth,
                    "prediction": p,
                    "text": "".join(s.example.tokens),
                }
            )
    rows = []
    for ev, label in zip(evidence, labels, strict=True):
        row = {
            "model": ev.model,
            "layer": ev.layer,
            "feature": ev.feature,
            "label": label.text,
            "status": label.status,
            "labeler": label.labeler,
            "explainer_model": label.model,
            "scorer_model": getattr(scorer, "model", ""),
            "prompt_hash": label.prompt_hash,
            "n_explain": len(ev.explain),
            "n_test_activating": len(ev.test_activating),
            "n_test_negative": len(ev.test_negative),
            "density": ev.density,
            "think_fraction": ev.think_fraction,
        }
        scores = per_feature.get((ev.layer, ev.feature), {})
        for method in METHODS:
            for metric in METRICS:
                row[f"{method}_{metric}"] = float(scores.get(f"{method}_{metric}", np.nan))
        rows.append(row)
    labels_df = pd.DataFrame(rows) if rows else empty_labels()
    scores_df = pd.DataFrame(
        score_rows, columns=["model", "layer", "feature", "method", "sample", "truth", "prediction", "text"]
    )
    return labels_df, scores_df


def summarize(labels_df: pd.DataFrame) -> dict:
    """Averages over labeled features, overall and per layer (for reports/metrics/labels.json)."""

    def block(df: pd.DataFrame) -> dict:
        scored = df[df["status"] == "ok"]
        out = {"features": int(len(df)), "labeled": int(len(scored))}
        for method in METHODS:
            for metric in METRICS:
                col = scored[f"{method}_{metric}"].dropna()
                out[f"{method}_{metric}"] = round(float(col.mean()), 4) if len(col) else None
        col = scored["detection_balanced_accuracy"].dropna()
        out["detection_balanced_accuracy_ge_0.75"] = round(float((col >= 0.75).mean()), 4) if len(col) else None
        return out

    summary = {}
    for model, df in labels_df.groupby("model"):
        summary[model] = {**block(df), "by_layer": {str(layer): block(g) for layer, g in df.groupby("layer")}}
    return summary


def layer_rows(labels_df: pd.DataFrame) -> list[dict]:
    """Mean scores per (model, layer): the `labels` stage's DVC plot."""
    rows = []
    scored = labels_df[labels_df["status"] == "ok"]
    for (model, layer), df in scored.groupby(["model", "layer"]):
        row = {"model": model, "layer": int(layer), "labeled": int(len(df))}
        for method in METHODS:
            row[f"{method}_balanced_accuracy"] = round(float(df[f"{method}_balanced_accuracy"].mean()), 4)
        rows.append(row)
    return rows


def plot_scores(labels_df: pd.DataFrame, path) -> None:
    """Histograms of per-feature detection and fuzzing balanced accuracy, one line per layer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from r1interp.io import atomic_path

    scored = labels_df[labels_df["status"] == "ok"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    bins = np.linspace(0, 1, 21)
    for ax, method in zip(axes, METHODS, strict=True):
        for (model, layer), df in scored.groupby(["model", "layer"]):
            values = df[f"{method}_balanced_accuracy"].dropna()
            ax.hist(
                values, bins=bins, histtype="step", linewidth=1.5, label=f"{model} L{layer} (mean {values.mean():.2f})"
            )
        ax.axvline(0.5, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel(f"{method} balanced accuracy")
        ax.set_title(f"{method} (chance 0.5)")
    axes[0].set_ylabel("features")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
