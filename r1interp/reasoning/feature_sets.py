"""Which features an intervention touches: a cluster's characteristic features and their random controls.

A cluster's features are ranked by the standardised mean difference of the per-step feature profiles
(`data/clusters/profiles.npy`) between the steps of the target clusters and those of the contrast clusters.
Clusters are chosen by their majority true step type (the organism's generator knows it): "the carry cluster"
is every cluster whose steps are mostly carry steps, contrasted with the plain column-step clusters, so the
ranking picks what is specific to carrying rather than to arithmetic steps in general.

A random control has the same number of features *in every layer* as the set it controls for, drawn from the
features that fire on some step (dead features would make the control trivially harmless).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from r1interp.errors import ArtifactError


def clusters_of_type(steps: pd.DataFrame, step_type: str, column: str = "cluster_kmeans") -> list[int]:
    """Clusters whose majority true step type is `step_type`; if none, the one with the largest share of them
    (a coarse clustering can merge step types)."""
    if not (steps["true_type"] == step_type).any():
        raise ArtifactError(
            f"no step has the true type {step_type!r}; present: {sorted(set(steps['true_type']))}",
            hint="pick interventions.target_step_type / contrast_step_type from them",
        )
    majority = steps.groupby(column)["true_type"].agg(lambda s: s.value_counts().index[0])
    found = sorted(int(c) for c, t in majority.items() if t == step_type)
    if not found:
        share = steps.groupby(column)["true_type"].agg(lambda s: (s == step_type).mean())
        found = [int(share.idxmax())]
    return found


def contrast_effect(profiles: np.ndarray, inside: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Standardised mean difference (inside - other) of every profile column."""
    a, b = profiles[inside], profiles[other]
    pooled = np.sqrt((a.var(0) + b.var(0)) / 2)
    return (a.mean(0) - b.mean(0)) / (pooled + 1e-9)


def ranked_features(
    steps: pd.DataFrame, profiles: np.ndarray, index: list[tuple[int, int]], target_type: str, contrast_type: str | None
) -> tuple[pd.DataFrame, dict]:
    """Features sorted by how specific they are to the target clusters' steps (largest effect first); with no
    contrast type, against every other step."""
    target = clusters_of_type(steps, target_type)
    contrast = (
        clusters_of_type(steps, contrast_type) if contrast_type else sorted(set(steps["cluster_kmeans"]) - set(target))
    )
    contrast = [c for c in contrast if c not in target]
    if not contrast:
        raise ArtifactError(
            f"the {target_type!r} and {contrast_type!r} steps fall into the same clusters {target}",
            hint="re-cluster with more clusters (clusters.k_min) or pick other step types",
        )
    inside = steps["cluster_kmeans"].isin(target).to_numpy()
    other = steps["cluster_kmeans"].isin(contrast).to_numpy()
    effect = contrast_effect(profiles, inside, other)
    table = pd.DataFrame(
        {
            "layer": [l for l, _ in index],
            "feature": [f for _, f in index],
            "effect": effect,
            "mean_in_target": profiles[inside].mean(0),
            "mean_in_contrast": profiles[other].mean(0),
        }
    )
    table = table.sort_values("effect", ascending=False, kind="stable").reset_index(drop=True)
    info = {
        "target_clusters": target,
        "contrast_clusters": [int(c) for c in contrast],
        "target_steps": int(inside.sum()),
        "contrast_steps": int(other.sum()),
    }
    return table, info


def as_sets(rows: pd.DataFrame) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for layer, feature in zip(rows["layer"], rows["feature"], strict=True):
        out.setdefault(int(layer), []).append(int(feature))
    return out


def random_matched(
    chosen: dict[int, list[int]], alive: dict[int, np.ndarray], rng: np.random.Generator
) -> dict[int, list[int]]:
    """As many random alive features per layer as `chosen` has there (excluding the chosen ones when possible)."""
    out = {}
    for layer, feats in chosen.items():
        pool = np.setdiff1d(alive[layer], feats)
        if len(pool) < len(feats):  # too few others in this layer: allow the chosen ones too
            pool = alive[layer]
        out[layer] = sorted(int(f) for f in rng.choice(pool, size=min(len(feats), len(pool)), replace=False))
    return out


def alive_features(profiles: np.ndarray, index: list[tuple[int, int]]) -> dict[int, np.ndarray]:
    fired = profiles.max(0) > 0
    out: dict[int, list[int]] = {}
    for (layer, feature), ok in zip(index, fired, strict=True):
        if ok:
            out.setdefault(layer, []).append(feature)
    return {layer: np.array(f) for layer, f in out.items()}
