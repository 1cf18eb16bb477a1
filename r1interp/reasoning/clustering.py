"""Clustering reasoning steps by their feature profiles.

Profiles are standardised per feature (dead columns dropped) and reduced with PCA; two algorithms run on
the same embedding: k-means and Ward agglomerative clustering. The number of clusters is chosen by one
stated criterion: the k in `k_range` with the highest mean silhouette among those whose k-means solution
is stable across seeds (mean pairwise ARI >= `min_stability`). Reported for every k: silhouette, seed
stability, and (when ground truth exists, e.g. the organism's generator step types) ARI against it.
Stability of the chosen solution is also measured by bootstrap: cluster resampled steps, compare with the
full solution on the resampled steps (ARI).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

ALGORITHMS = ("kmeans", "agglomerative")


def embed(profiles: np.ndarray, dims: int, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    x = profiles[:, profiles.std(0) > 0].astype(np.float64)
    x = (x - x.mean(0)) / x.std(0)
    dims = min(dims, x.shape[0] - 1, x.shape[1])
    return PCA(dims, random_state=seed).fit_transform(x)


def fit(z: np.ndarray, k: int, algorithm: str, seed: int) -> np.ndarray:
    from sklearn.cluster import AgglomerativeClustering, KMeans

    if algorithm == "kmeans":
        return KMeans(k, n_init=10, random_state=seed).fit_predict(z)
    if algorithm == "agglomerative":
        return AgglomerativeClustering(k, linkage="ward").fit_predict(z)
    raise ValueError(f"unknown algorithm {algorithm!r}; known: {', '.join(ALGORITHMS)}")


def seed_stability(z: np.ndarray, k: int, seeds: int, seed: int) -> float:
    from sklearn.metrics import adjusted_rand_score

    runs = [fit(z, k, "kmeans", seed + s) for s in range(seeds)]
    pairs = [adjusted_rand_score(runs[i], runs[j]) for i in range(len(runs)) for j in range(i + 1, len(runs))]
    return float(np.mean(pairs)) if pairs else 1.0


def bootstrap_stability(
    z: np.ndarray, labels: np.ndarray, k: int, algorithm: str, resamples: int, seed: int
) -> list[float]:
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(seed)
    out = []
    for r in range(resamples):
        idx = np.unique(rng.integers(0, len(z), len(z)))
        out.append(float(adjusted_rand_score(labels[idx], fit(z[idx], k, algorithm, seed + r))))
    return out


@dataclass
class Selection:
    k: int
    by_k: list[dict[str, Any]] = field(default_factory=list)
    criterion: str = ""


def choose_k(
    z: np.ndarray,
    k_range: tuple[int, int],
    *,
    seeds: int,
    min_stability: float,
    seed: int,
    truth: np.ndarray | None = None,
) -> Selection:
    from sklearn.metrics import adjusted_rand_score, silhouette_score

    rows = []
    for k in range(k_range[0], min(k_range[1], len(z) - 1) + 1):
        labels = fit(z, k, "kmeans", seed)
        row = {
            "k": k,
            "silhouette": float(silhouette_score(z, labels)),
            "seed_stability": seed_stability(z, k, seeds, seed),
        }
        if truth is not None:
            row["ari_kmeans"] = float(adjusted_rand_score(truth, labels))
            row["ari_agglomerative"] = float(adjusted_rand_score(truth, fit(z, k, "agglomerative", seed)))
        rows.append(row)
    stable = [r for r in rows if r["seed_stability"] >= min_stability] or rows
    best = max(stable, key=lambda r: r["silhouette"])
    criterion = (
        f"max mean silhouette over k in {k_range[0]}..{k_range[1]} among k-means solutions with seed "
        f"stability (mean pairwise ARI over {seeds} seeds) >= {min_stability}"
    )
    return Selection(best["k"], rows, criterion)
