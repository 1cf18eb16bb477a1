"""Motif profiles of graph groups compared, with bootstrap confidence intervals over prompts.

Statistics per graph (from the `motifs` tables, for one null model):
- `z:<label>`   z-score of a triad class, an FFL sign pattern, or coherent/incoherent FFLs;
- `sp:<label>`  its significance profile entry (z normalised within the family: comparable across
                graph sizes, which z is not — z grows with the number of edges);
- `coherent_fraction`  coherent / all FFLs (null-free).
Labels whose z is undefined (a class the null holds fixed) are left out for that graph.

Comparisons:
- paired (same prompt in both groups: reasoner vs base answer graphs, think vs answer of the reasoner):
  mean of per-prompt differences, bootstrap over prompts; the prompts with the largest |difference|;
- unpaired (correct vs incorrect answers): difference of group means, each group resampled;
- against a single reference graph (Claude 3.5 Haiku): our group mean minus the reference value, our
  prompts resampled.
A difference is flagged when its confidence interval excludes 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from r1interp.motifs.census import TRIAD_LABELS
from r1interp.motifs.signed import FFL_PATTERNS

# Column order of tables and heatmaps. When a null makes z-scores exact copies of each other (see
# `drop_copies`), the first in KEEP_ORDER is kept: the feed-forward loop 030T and the denser classes
# before the sparse ones they determine (003, 012, 021*).
LABEL_ORDER = (*TRIAD_LABELS, *FFL_PATTERNS, "coherent", "incoherent")
KEEP_ORDER = (*reversed(TRIAD_LABELS), *FFL_PATTERNS, "coherent", "incoherent")


def statistics_table(zscores: pd.DataFrame, census: pd.DataFrame, null: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """Wide table: one row per graph (descriptor columns + one column per statistic), and the
    statistics dropped as exact copies of a kept one ({dropped: "= -z:030T"})."""
    z = zscores[zscores["null"] == null]
    descriptors = ["graph", "origin", "model", "kind", "prompt_id", "category", "correct"]
    wide_z = z.pivot_table(index="graph", columns="label", values="z", aggfunc="first")
    wide_z = wide_z[[c for c in LABEL_ORDER if c in wide_z.columns]]
    wide_z.columns = [f"z:{c}" for c in wide_z.columns]
    sp = z[z["family"].isin(["triad", "ffl"]) & z["sp"].notna()]
    wide_sp = sp.pivot_table(index="graph", columns="label", values="sp", aggfunc="first")
    wide_sp = wide_sp[[c for c in LABEL_ORDER if c in wide_sp.columns]]
    wide_sp.columns = [f"sp:{c}" for c in wide_sp.columns]
    base = census[descriptors + ["ffl_coherent_fraction"]].rename(
        columns={"ffl_coherent_fraction": "coherent_fraction"}
    )
    out = base.set_index("graph").join(wide_z).join(wide_sp).reset_index()
    stat_cols = [c for c in out.columns if c.startswith(("z:", "sp:")) or c == "coherent_fraction"]
    keep = [c for c in stat_cols if out[c].notna().any()]
    copies = drop_copies(out[keep])
    return out[descriptors + [c for c in keep if c not in copies]], copies


def drop_copies(stats: pd.DataFrame) -> dict[str, str]:
    """Columns equal to +/- another column on every graph (degenerate nulls force that: under the
    layer-preserving configuration model the z of 003, 012 and 021* are all +/- the z of 030T)."""

    def rank(col: str) -> tuple[int, int]:
        kind, _, label = col.partition(":")
        return (0 if kind == "z" else 1 if kind == "sp" else 2, KEEP_ORDER.index(label) if label in KEEP_ORDER else 99)

    kept: list[str] = []
    copies: dict[str, str] = {}
    for col in sorted(stats.columns, key=rank):
        x = stats[col].to_numpy(dtype=float)
        for other in kept:
            if other.split(":")[0] != col.split(":")[0]:
                continue
            y = stats[other].to_numpy(dtype=float)
            both = np.isfinite(x) & np.isfinite(y)
            if both.sum() < 2 or (np.isfinite(x) != np.isfinite(y)).any():
                continue
            for sign in (1, -1):
                if np.allclose(x[both], sign * y[both], rtol=1e-6, atol=1e-9):
                    copies[col] = f"= {'-' if sign < 0 else ''}{other}"
                    break
            if col in copies:
                break
        else:
            kept.append(col)
    return copies


def statistic_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c.startswith(("z:", "sp:")) or c == "coherent_fraction"]


@dataclass(frozen=True)
class Bootstrap:
    resamples: int
    confidence: float
    seed: int

    def interval(self, samples: np.ndarray) -> tuple[float, float]:
        alpha = (1 - self.confidence) / 2
        lo, hi = np.quantile(samples, [alpha, 1 - alpha])
        return float(lo), float(hi)

    def rng(self, name: str) -> np.random.Generator:
        # one stream per (comparison, statistic): adding a statistic does not move the others' intervals
        return np.random.default_rng([self.seed, *name.encode()])


def _row(
    comparison: str,
    stat: str,
    n_a: int,
    n_b: int,
    mean_a: float,
    mean_b: float,
    diff: float,
    ci: tuple[float, float] | None,
    top: list[tuple[str, float]] | None = None,
) -> dict[str, Any]:
    lo, hi = ci if ci else (float("nan"), float("nan"))
    return {
        "comparison": comparison,
        "statistic": stat,
        "n_a": n_a,
        "n_b": n_b,
        "mean_a": mean_a,
        "mean_b": mean_b,
        "difference": diff,
        "ci_low": lo,
        "ci_high": hi,
        "significant": bool(ci is not None and (lo > 0 or hi < 0)),
        "top_prompts": "; ".join(f"{p} ({d:+.2f})" for p, d in (top or [])),
    }


def paired(name: str, a: pd.DataFrame, b: pd.DataFrame, stats: list[str], boot: Bootstrap, top: int) -> list[dict]:
    rows = []
    joined = (
        a.set_index("prompt_id")[stats]
        .add_suffix("_a")
        .join(b.set_index("prompt_id")[stats].add_suffix("_b"), how="inner")
    )
    for stat in stats:
        pair = joined[[f"{stat}_a", f"{stat}_b"]].dropna()
        if pair.empty:
            continue
        d = (pair[f"{stat}_a"] - pair[f"{stat}_b"]).to_numpy()
        ci = None
        if len(d) >= 2:
            idx = boot.rng(f"{name}/{stat}").integers(0, len(d), size=(boot.resamples, len(d)))
            ci = boot.interval(d[idx].mean(axis=1))
        largest = np.argsort(-np.abs(d))[:top]
        rows.append(
            _row(
                name,
                stat,
                len(d),
                len(d),
                float(pair[f"{stat}_a"].mean()),
                float(pair[f"{stat}_b"].mean()),
                float(d.mean()),
                ci,
                [(pair.index[i], float(d[i])) for i in largest],
            )
        )
    return rows


def unpaired(name: str, a: pd.DataFrame, b: pd.DataFrame, stats: list[str], boot: Bootstrap) -> list[dict]:
    rows = []
    for stat in stats:
        xa, xb = a[stat].dropna().to_numpy(), b[stat].dropna().to_numpy()
        if not len(xa) or not len(xb):
            continue
        ci = None
        if len(xa) >= 2 and len(xb) >= 2:
            rng = boot.rng(f"{name}/{stat}")
            ma = xa[rng.integers(0, len(xa), size=(boot.resamples, len(xa)))].mean(axis=1)
            mb = xb[rng.integers(0, len(xb), size=(boot.resamples, len(xb)))].mean(axis=1)
            ci = boot.interval(ma - mb)
        rows.append(
            _row(name, stat, len(xa), len(xb), float(xa.mean()), float(xb.mean()), float(xa.mean() - xb.mean()), ci)
        )
    return rows


def against_reference(
    name: str, a: pd.DataFrame, ref: pd.Series, stats: list[str], boot: Bootstrap, top: int
) -> list[dict]:
    rows = []
    for stat in stats:
        if pd.isna(ref.get(stat)):
            continue
        sub = a[["prompt_id", stat]].dropna()
        if sub.empty:
            continue
        x = sub[stat].to_numpy()
        r = float(ref[stat])
        ci = None
        if len(x) >= 2:
            idx = boot.rng(f"{name}/{stat}").integers(0, len(x), size=(boot.resamples, len(x)))
            ci = boot.interval(x[idx].mean(axis=1) - r)
        largest = np.argsort(-np.abs(x - r))[:top]
        rows.append(
            _row(
                name,
                stat,
                len(x),
                1,
                float(x.mean()),
                r,
                float(x.mean() - r),
                ci,
                [(sub["prompt_id"].iloc[i], float(x[i] - r)) for i in largest],
            )
        )
    return rows


def compare_all(table: pd.DataFrame, boot: Bootstrap, top: int) -> pd.DataFrame:
    stats = statistic_columns(table)
    ours = table[table["origin"] == "ours"]
    answer = ours[ours["kind"] == "answer"]
    rows: list[dict] = []
    reasoner_answer = answer[answer["model"] == "reasoner"]
    base_answer = answer[answer["model"] == "base"]
    if len(reasoner_answer) and len(base_answer):
        rows += paired("reasoner_vs_base", reasoner_answer, base_answer, stats, boot, top)
    reasoner_think = ours[(ours["model"] == "reasoner") & (ours["kind"] == "think")]
    if len(reasoner_think) and len(reasoner_answer):
        rows += paired("think_vs_answer", reasoner_think, reasoner_answer, stats, boot, top)
    for model, group in answer.groupby("model", sort=False):
        good, bad = group[group["correct"] == True], group[group["correct"] == False]  # noqa: E712
        if len(good) and len(bad):
            rows += unpaired(f"correct_vs_incorrect:{model}", good, bad, stats, boot)
    for ref in table[table["origin"] == "reference"].itertuples():
        ref_row = table.loc[ref.Index]
        for model, group in answer.groupby("model", sort=False):
            rows += against_reference(f"{model}_vs_{ref.graph}", group, ref_row, stats, boot, top)
    return pd.DataFrame(rows)


def category_profiles(table: pd.DataFrame) -> pd.DataFrame:
    """Mean of every statistic per (model, kind, category): the heatmap's rows."""
    stats = statistic_columns(table)
    return table.groupby(["origin", "model", "kind", "category"], sort=True)[stats].mean().reset_index()
