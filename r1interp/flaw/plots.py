"""The find-and-fix figure: every arm's accuracy on the flaw group and on the other groups, 95% Wilson intervals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def repairs(rows: pd.DataFrame, groups: list[str], path: Path) -> None:
    """One panel per group; bars per arm (targeted, random control, unconstrained), error bars = Wilson 95%."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"none": "0.55", "targeted": "tab:blue", "random": "tab:orange", "unconstrained": "tab:red"}
    fig, axes = plt.subplots(1, len(groups), figsize=(3.2 * len(groups), 3.6), sharey=True)
    x = np.arange(len(rows))
    for ax, g in zip(np.atleast_1d(axes), groups, strict=True):
        acc = rows[f"{g}_accuracy"].to_numpy(float)
        err = np.vstack([acc - rows[f"{g}_ci_low"], rows[f"{g}_ci_high"] - acc]).clip(min=0)
        ax.bar(x, acc, yerr=err, capsize=2, color=[colors[k] for k in rows["kind"]])
        ax.set_xticks(x, rows["arm"], rotation=70, fontsize=7)
        ax.set_title(g, fontsize=9)
        ax.set_ylim(0, 1.05)
    np.atleast_1d(axes)[0].set_ylabel("held-out accuracy")
    fig.suptitle("planted flaw: repairs vs random controls and an unconstrained fine-tune", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
