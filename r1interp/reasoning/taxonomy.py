"""A taxonomy of reasoning steps from clusters: characteristic features (with their labels), a name and a
tag per cluster, example steps, the transition graph between clusters inside traces, and a similarity tree.

Characteristic features of a group (a cluster or a true step type) are ranked by standardised mean
difference (in-group vs out-group, pooled std), and tested with a two-sided Mann-Whitney U test with
Benjamini-Hochberg correction over all features.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def enrichment(profiles: np.ndarray, groups: np.ndarray, features: list[tuple[int, int]], top: int) -> pd.DataFrame:
    """Per group: the `top` features with the largest standardised mean difference (and q-values)."""
    from scipy.stats import false_discovery_control, mannwhitneyu

    rows = []
    alive = profiles.std(0) > 0
    for g in sorted(set(groups.tolist()), key=str):
        inside = groups == g
        a, b = profiles[inside][:, alive], profiles[~inside][:, alive]
        if len(a) < 2 or len(b) < 2:
            continue
        pooled = np.sqrt((a.var(0) + b.var(0)) / 2) + 1e-9
        effect = (a.mean(0) - b.mean(0)) / pooled
        p = mannwhitneyu(a, b, axis=0).pvalue
        q = false_discovery_control(np.nan_to_num(p, nan=1.0))
        cols = np.flatnonzero(alive)
        for j in np.argsort(-effect)[:top]:
            layer, feature = features[cols[j]]
            rows.append(
                {
                    "group": g,
                    "layer": layer,
                    "feature": feature,
                    "effect": float(effect[j]),
                    "mean_in": float(a[:, j].mean()),
                    "mean_out": float(b[:, j].mean()),
                    "q_value": float(q[j]),
                    "n_in": int(len(a)),
                }
            )
    return pd.DataFrame(rows)


def transitions(steps: pd.DataFrame, column: str) -> pd.DataFrame:
    """Counts and row-normalised probabilities of `column` value at step i -> step i+1 of the same trace."""
    s = steps.sort_values(["problem_id", "index"])
    nxt = s.groupby("problem_id")[column].shift(-1)
    pairs = pd.DataFrame({"from": s[column], "to": nxt}).dropna()
    counts = pairs.value_counts().rename("count").reset_index()
    counts["to"] = counts["to"].astype(s[column].dtype)
    counts["probability"] = counts["count"] / counts.groupby("from")["count"].transform("sum")
    return counts.sort_values(["from", "to"]).reset_index(drop=True)


def name_cluster(top_features: pd.DataFrame, labels: dict[tuple[int, int], str], n: int = 2) -> str:
    """A readable name from the labels of the cluster's most characteristic labeled features."""
    names = []
    for r in top_features.itertuples():
        label = labels.get((r.layer, r.feature))
        if label:
            names.append(f"L{r.layer}/{r.feature}: {label.split(';')[0]}")
        if len(names) == n:
            break
    return " + ".join(names) if names else "(no labeled characteristic feature)"


def build_taxonomy(
    steps: pd.DataFrame,
    z: np.ndarray,
    cluster_col: str,
    enrich: pd.DataFrame,
    labels: dict[tuple[int, int], str],
    examples: int,
    truth_col: str | None,
) -> list[dict[str, Any]]:
    out = []
    for c in sorted(steps[cluster_col].unique()):
        members = np.flatnonzero(steps[cluster_col].to_numpy() == c)
        centroid = z[members].mean(0)
        order = members[np.argsort(((z[members] - centroid) ** 2).sum(1))]
        texts = list(dict.fromkeys(steps.iloc[order]["text"]))[:examples]  # distinct steps, nearest first
        top = enrich[enrich["group"] == c]
        entry = {
            "cluster": int(c),
            "tag": f"C{int(c)}",
            "size": int(len(members)),
            "name": name_cluster(top, labels),
            "characteristic_features": [
                {
                    "layer": int(r.layer),
                    "feature": int(r.feature),
                    "effect": round(r.effect, 3),
                    "q_value": float(f"{r.q_value:.3g}"),
                    "label": labels.get((r.layer, r.feature)),
                }
                for r in top.head(8).itertuples()
            ],
            "examples": texts,
        }
        if truth_col:
            counts = steps.iloc[members][truth_col].value_counts()
            entry["true_step_types"] = {str(k): int(v) for k, v in counts.items()}
            entry["majority_true_type"] = str(counts.index[0])
            entry["purity"] = round(float(counts.iloc[0] / len(members)), 4)
        out.append(entry)
    return out


def similarity_tree(z: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """Ward linkage of the cluster centroids (scipy format)."""
    from scipy.cluster.hierarchy import linkage

    ids = sorted(set(clusters.tolist()))
    centroids = np.stack([z[clusters == c].mean(0) for c in ids])
    return linkage(centroids, method="ward") if len(ids) > 1 else np.zeros((0, 4))
