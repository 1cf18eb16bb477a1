"""Figures of the `compare` stage: a heatmap of motif statistics by category, and the group
differences with their confidence intervals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from r1interp.io import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> None:
    plt = _pyplot()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def heatmap(profiles: pd.DataFrame, measure: str, path: str | Path, title: str) -> None:
    """Rows: model / kind / category; columns: the statistics starting with `measure` (e.g. "z:")."""
    plt = _pyplot()
    cols = [c for c in profiles.columns if c.startswith(measure) and profiles[c].notna().any()]
    values = profiles[cols].to_numpy(dtype=float)
    rows = [
        f"{r.model} / {r.kind} / {r.category}" if r.origin == "ours" else f"reference: {r.model}"
        for r in profiles.itertuples()
    ]
    finite = np.abs(values[np.isfinite(values)])
    limit = float(np.quantile(finite, 0.98)) if len(finite) else 1.0
    fig, ax = plt.subplots(figsize=(1.0 + 0.62 * len(cols), 1.2 + 0.36 * len(rows)))
    image = ax.imshow(np.ma.masked_invalid(values), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(len(cols)), [c[len(measure) :] for c in cols], rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if np.isfinite(values[i, j]):
                ax.text(
                    j,
                    i,
                    f"{values[i, j]:.1f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if abs(values[i, j]) > 0.6 * limit else "black",
                )
    fig.colorbar(image, ax=ax, shrink=0.8, label=measure.rstrip(":"))
    ax.set_title(title, fontsize=10)
    _save(fig, path)


def differences(table: pd.DataFrame, measure: str, path: str | Path, title: str) -> None:
    """One panel per comparison: difference (A - B) per statistic with its confidence interval."""
    plt = _pyplot()
    sub = table[table["statistic"].str.startswith(measure) | (table["statistic"] == "coherent_fraction")]
    comparisons = list(dict.fromkeys(sub["comparison"]))
    if not comparisons:
        fig, ax = plt.subplots(figsize=(5, 2))
        ax.text(0.5, 0.5, "no comparison had data", ha="center", va="center")
        ax.axis("off")
        _save(fig, path)
        return
    fig, axes = plt.subplots(
        1,
        len(comparisons),
        figsize=(3.4 * len(comparisons), 0.5 + 0.28 * sub["statistic"].nunique()),
        sharey=True,
        squeeze=False,
    )
    stats = list(dict.fromkeys(sub["statistic"]))
    for ax, name in zip(axes[0], comparisons, strict=True):
        rows = sub[sub["comparison"] == name].set_index("statistic").reindex(stats)
        y = np.arange(len(stats))
        diff = rows["difference"].to_numpy(dtype=float)
        lo = diff - rows["ci_low"].to_numpy(dtype=float)
        hi = rows["ci_high"].to_numpy(dtype=float) - diff
        colors = ["tab:red" if s else "tab:gray" for s in rows["significant"].fillna(False)]
        ax.errorbar(diff, y, xerr=np.vstack([np.nan_to_num(lo), np.nan_to_num(hi)]), fmt="none", ecolor=colors, lw=1)
        ax.scatter(diff, y, c=colors, s=12, zorder=3)
        ax.axvline(0, color="black", lw=0.7)
        n = rows["n_a"].dropna()
        ax.set_title(f"{name}\n(n={int(n.max()) if len(n) else 0}; red: CI excludes 0)", fontsize=8)
        ax.set_xlabel("difference (A - B)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_yticks(range(len(stats)), stats)
    axes[0][0].invert_yaxis()
    fig.suptitle(title, fontsize=10)
    _save(fig, path)
