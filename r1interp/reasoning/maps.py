"""Activation maps: how much each layer's features fire per step type, and which feature groups fire per
problem type; as tables and heatmaps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from r1interp.io import atomic_path


def layer_map(profiles: np.ndarray, groups: pd.Series, widths: list[int], layers: list[int]) -> pd.DataFrame:
    """group x layer: mean total activation of the layer's features per step, and mean active features."""
    rows, start = [], 0
    bounds = []
    for width in widths:
        bounds.append((start, start + width))
        start += width
    for g in sorted(groups.unique(), key=str):
        sel = profiles[(groups == g).to_numpy()]
        for layer, (a, b) in zip(layers, bounds, strict=True):
            block = sel[:, a:b]
            rows.append(
                {
                    "group": g,
                    "layer": layer,
                    "activation": float(block.sum(1).mean()),
                    "active_features": float((block > 0).sum(1).mean()),
                    "steps": int(len(sel)),
                }
            )
    return pd.DataFrame(rows)


def feature_group_map(
    profiles: np.ndarray, problem_types: pd.Series, feature_groups: dict[str, list[int]]
) -> pd.DataFrame:
    """problem type x feature group: mean activation of the group's features (profile columns) per step."""
    rows = []
    for t in sorted(problem_types.unique(), key=str):
        sel = profiles[(problem_types == t).to_numpy()]
        for name, cols in feature_groups.items():
            rows.append(
                {"problem_type": t, "feature_group": name, "activation": float(sel[:, cols].mean()) if cols else 0.0}
            )
    return pd.DataFrame(rows)


def heatmap(
    table: pd.DataFrame, index: str, columns: str, values: str, path: str | Path, title: str, fmt: str = ".2f"
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = table.pivot(index=index, columns=columns, values=values)
    fig, ax = plt.subplots(figsize=(1.5 + 0.9 * grid.shape[1], 1.2 + 0.45 * grid.shape[0]))
    im = ax.imshow(grid.to_numpy(dtype=float), cmap="viridis", aspect="auto")
    ax.set_xticks(range(grid.shape[1]), [str(c) for c in grid.columns], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(grid.shape[0]), [str(i) for i in grid.index], fontsize=8)
    vals = grid.to_numpy(dtype=float)
    for i in range(vals.shape[0]):
        for j in range(vals.shape[1]):
            ax.text(
                j,
                i,
                format(vals[i, j], fmt),
                ha="center",
                va="center",
                fontsize=6,
                color="white" if vals[i, j] < np.nanmean(vals) else "black",
            )
    fig.colorbar(im, ax=ax, shrink=0.8, label=values)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
