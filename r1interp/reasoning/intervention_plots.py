"""Plots of the intervention results (one line per problem group, 95% Wilson intervals as error bars)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _errorbars(ax, rows: pd.DataFrame, x: str, label: str, color, style: str = "-o") -> None:
    rows = rows.sort_values(x)
    yerr = np.vstack([rows["accuracy"] - rows["ci_low"], rows["ci_high"] - rows["accuracy"]]).clip(min=0)
    ax.errorbar(rows[x], rows["accuracy"], yerr=yerr, fmt=style, color=color, label=label, capsize=3, ms=4)


def _baseline_lines(ax, results: pd.DataFrame, model: str, colors: dict) -> None:
    base = results[(results["intervention"] == "baseline") & (results["model"] == model)]
    for r in base.itertuples():
        ax.axhline(r.accuracy, color=colors[r.group], lw=0.8, ls=":")


def _colors(groups) -> dict:
    cmap = _pyplot().get_cmap("tab10")
    return {g: cmap(i % 10) for i, g in enumerate(sorted(groups))}


def ablation_by_size(results: pd.DataFrame, path: Path) -> None:
    """Accuracy vs number of ablated features: the cluster's features (solid) vs random sets (dashed: mean over
    draws, band: min-max). Dotted lines: the unmodified model."""
    plt = _pyplot()
    rows = results[(results["model"] == "reasoner")]
    colors = _colors(rows["group"].unique())
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for group, color in colors.items():
        _errorbars(ax, rows[(rows["intervention"] == "ablation") & (rows["group"] == group)], "size", group, color)
        rand = rows[(rows["intervention"] == "ablation_random") & (rows["group"] == group)]
        if len(rand):
            agg = rand.groupby("size")["accuracy"].agg(["mean", "min", "max"]).reset_index()
            ax.plot(agg["size"], agg["mean"], "--", color=color, lw=1)
            ax.fill_between(agg["size"], agg["min"], agg["max"], color=color, alpha=0.12)
    _baseline_lines(ax, results, "reasoner", colors)
    ax.set(
        xlabel="features ablated (top of the carry-cluster ranking)",
        ylabel="accuracy (95% CI)",
        ylim=(-0.03, 1.03),
        title="Ablating the carry cluster's features (solid) vs random features (dashed, band: min-max)",
    )
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def steering_by_alpha(results: pd.DataFrame, path: Path) -> None:
    """Left: reasoner steered with the carry features. Right: base steered toward the reasoner's think features
    (accuracy and gold-trace loss). Dashed: random direction of equal norm."""
    plt = _pyplot()
    has_base = ((results["model"] == "base") & (results["intervention"] == "steering")).any()
    fig, axes = plt.subplots(1, 3 if has_base else 1, figsize=(15 if has_base else 7, 4.2), squeeze=False)
    colors = _colors(results["group"].unique())
    panels = [("reasoner", "accuracy", "reasoner + alpha x carry direction")]
    if has_base:
        panels += [
            ("base", "accuracy", "base + alpha x reasoner think direction"),
            ("base", "gold_nll", "base: loss of the gold trace (nats/token)"),
        ]
    for ax, (model, metric, title) in zip(axes[0], panels, strict=True):
        rows = results[results["model"] == model]
        zero = rows[rows["intervention"] == "baseline"].assign(alpha=0.0)
        for group, color in colors.items():
            for name, style in (("steering", "-o"), ("steering_random", "--x")):
                part = pd.concat([zero, rows[rows["intervention"] == name]])
                part = part[part["group"] == group].sort_values("alpha")
                if part.empty or metric not in part or part[metric].isna().all():
                    continue
                if metric == "accuracy":
                    _errorbars(ax, part, "alpha", group if name == "steering" else None, color, style)
                else:
                    ax.plot(
                        part["alpha"],
                        part[metric],
                        style,
                        color=color,
                        label=group if name == "steering" else None,
                        ms=4,
                    )
        ax.set(xlabel="alpha", ylabel=metric.replace("_", " "), title=title)
        ax.title.set_fontsize(9)
        if metric == "accuracy":
            ax.set_ylim(-0.03, 1.03)
    axes[0][0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def edits_and_finetune(results: pd.DataFrame, path: Path) -> None:
    """Grouped bars: accuracy per group for the unmodified model, each weight edit, the random edits (mean) and
    the cluster fine-tune vs its random-subspace control."""
    plt = _pyplot()
    rows = results[results["model"] == "reasoner"]
    arms = [("baseline", rows[rows["intervention"] == "baseline"])]
    for (size, scale), chunk in rows[rows["intervention"] == "weight_edit"].groupby(["size", "scale"]):
        arms.append((f"edit {int(size)} x{scale:g}", chunk))
    for size, chunk in rows[rows["intervention"] == "weight_edit_random"].groupby("size"):
        mean = chunk.groupby("group", as_index=False)[["accuracy", "ci_low", "ci_high"]].mean()
        arms.append((f"random edit {int(size)} (mean)", mean))
    for name in ("finetune", "finetune_random"):
        chunk = rows[rows["intervention"] == name]
        if len(chunk):
            arms.append((name.replace("_", " "), chunk))
    groups = sorted(rows["group"].unique())
    fig, ax = plt.subplots(figsize=(max(7, 1.3 * len(groups) * len(arms) / 3), 4.2))
    width = 0.8 / len(arms)
    for i, (name, chunk) in enumerate(arms):
        by = chunk.set_index("group").reindex(groups)
        x = np.arange(len(groups)) + i * width
        yerr = np.vstack([by["accuracy"] - by["ci_low"], by["ci_high"] - by["accuracy"]]).clip(min=0)
        ax.bar(x, by["accuracy"], width, yerr=yerr, capsize=2, label=name)
    ax.set_xticks(np.arange(len(groups)) + 0.4 - width / 2, groups, fontsize=8)
    ax.set(ylabel="accuracy (95% CI)", ylim=(0, 1.05), title="Weight edits of the carry span and cluster fine-tuning")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
