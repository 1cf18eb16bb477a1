"""Motif statistics against a null ensemble: z-scores, significance profiles, p-values, degeneracy.

Why degeneracy detection: a null model that preserves structure also preserves linear combinations of
motif counts. Degree-preserving rewiring fixes, for instance, the number of edges, of out-2-stars
(sum C(out, 2)), of in-2-stars and of 2-paths (sum in * out); on a graph without mutual edges whose null
never creates any (a layered DAG under layer-preserving rewiring), those four constraints plus
sum = C(n, 3) leave the six varying triad classes (003, 012, 021D, 021U, 021C, 030T) exactly one free
dimension: every z-score is +-z(030T), so a "significance profile" says one thing six times. We detect
this numerically from the null samples instead of deriving it per model: the rank of the standardised
null count matrix is the number of free dimensions; a greedy basis (preferring richer classes, scanned
from the end of the label order) names free classes, and every other varying class is reported as an
exact linear function of them, in counts and in z-units. Classes whose count never changes under the
null (std 0) get z = NaN and are listed with their fixed value.

Conventions:
- z = (real - null mean) / null std (population std, ddof=0); NaN where std == 0.
- significance profile = z / ||z|| over the finite z of one family (Milo et al. 2004); NaN elsewhere.
- p: two-sided empirical, 2 * min(P(null >= real), P(null <= real)) with the +1 correction
  ((1 + #)/(N + 1)), capped at 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

RANK_RTOL = 1e-8  # singular values below this fraction of the largest count as zero


def zscores(real: np.ndarray, null: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z, mean, std) per column; z is NaN where the null std is 0."""
    null = np.asarray(null, dtype=np.float64)
    real = np.asarray(real, dtype=np.float64)
    mean = null.mean(axis=0)
    std = null.std(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(std > 0, (real - mean) / np.where(std > 0, std, 1.0), np.nan)
    return z, mean, std


def significance_profile(z: np.ndarray) -> np.ndarray:
    """z normalised to unit length over its finite entries (NaN stays NaN; all-zero gives NaN)."""
    z = np.asarray(z, dtype=np.float64)
    finite = np.isfinite(z)
    norm = float(np.sqrt(np.sum(z[finite] ** 2)))
    out = np.full(z.shape, np.nan)
    if norm > 0:
        out[finite] = z[finite] / norm
    return out


def empirical_p(real: np.ndarray, null: np.ndarray) -> np.ndarray:
    """Two-sided empirical p-values with the +1 correction."""
    null = np.asarray(null)
    real = np.asarray(real)
    n = null.shape[0]
    hi = (1 + (null >= real).sum(axis=0)) / (n + 1)
    lo = (1 + (null <= real).sum(axis=0)) / (n + 1)
    return np.minimum(1.0, 2 * np.minimum(hi, lo))


def degeneracy(null: np.ndarray, labels: Sequence[str], real: np.ndarray | None = None) -> dict[str, Any]:
    """How many z-scores the null leaves free, and which counts are forced.

    Returns fixed classes (std 0) with their value, the varying classes, free_dimensions (rank of the
    null covariance), a basis of free classes, every other varying class as an exact linear function of
    them ({"intercept", "coef" in counts, "z_coef" in z units}), whether the real counts obey the same
    relations, and flags: degenerate (fewer free dimensions than varying classes), single_free_z, and
    insufficient_samples (too few samples to tell).
    """
    x = np.asarray(null, dtype=np.int64)
    labels = list(labels)
    n, k = x.shape
    if n == 0:
        return {
            "samples": 0,
            "fixed": {},
            "varying": [],
            "free_dimensions": 0,
            "free": [],
            "determined": {},
            "degenerate": False,
            "single_free_z": False,
            "insufficient_samples": True,
            "message": "no null samples",
        }
    std = x.std(axis=0)
    varying = [j for j in range(k) if std[j] > 0]
    fixed = {labels[j]: int(x[0, j]) for j in range(k) if std[j] == 0}
    out: dict[str, Any] = {
        "samples": int(n),
        "fixed": fixed,
        "varying": [labels[j] for j in varying],
        "free_dimensions": 0,
        "free": [],
        "determined": {},
        "degenerate": False,
        "single_free_z": False,
        "insufficient_samples": n < 2 or n - 1 < len(varying),
    }
    if real is not None:
        out["fixed_real_differs"] = [lab for lab, v in fixed.items() if int(real[labels.index(lab)]) != v]
    if n < 2 or not varying:
        out["message"] = _message(out)
        return out
    # exact integer differences from the first sample, then standardise: no cancellation even for
    # huge 003 counts
    d = (x[:, varying] - x[0, varying]).astype(np.float64)
    d -= d.mean(axis=0)
    zmat = d / std[varying]
    s = np.linalg.svd(zmat, compute_uv=False)
    tol = RANK_RTOL * s[0] * max(zmat.shape)
    rank = int((s > tol).sum())
    basis: list[int] = []
    q = np.zeros((n, 0))
    for col in reversed(range(len(varying))):  # prefer the richer classes at the end of the order
        v = zmat[:, col]
        r = v - q @ (q.T @ v)
        norm = np.linalg.norm(r)
        if norm > 1e-6 * np.linalg.norm(v) and len(basis) < rank:
            basis.append(col)
            q = np.column_stack([q, r / norm])
    basis.sort()
    out["free_dimensions"] = rank
    out["free"] = [labels[varying[c]] for c in basis]
    if out["insufficient_samples"]:  # rank is capped by the sample count: relations would be artefacts
        out["message"] = _message(out)
        return out
    mean = x[:, varying].astype(np.float64).mean(axis=0)
    consistent = True
    for col in range(len(varying)):
        if col in basis:
            continue
        beta, *_ = np.linalg.lstsq(zmat[:, basis], zmat[:, col], rcond=None)
        j = varying[col]
        coef = {labels[varying[b]]: float(beta[i] * std[j] / std[varying[b]]) for i, b in enumerate(basis)}
        intercept = float(mean[col] - sum(coef[labels[varying[b]]] * mean[b] for b in basis))
        rel = {
            "intercept": _tidy(intercept),
            "coef": {f: _tidy(c) for f, c in coef.items()},
            "z_coef": {labels[varying[b]]: _tidy(float(beta[i])) for i, b in enumerate(basis)},
        }
        if real is not None:
            pred = intercept + sum(coef[labels[varying[b]]] * float(real[varying[b]]) for b in basis)
            rel["real_residual"] = _tidy(float(real[j]) - pred)
            consistent &= abs(float(real[j]) - pred) <= 1e-6 * max(1.0, float(std[j]))
        out["determined"][labels[j]] = rel
    if real is not None:
        out["real_obeys_relations"] = bool(consistent)
    out["degenerate"] = rank < len(varying)
    out["single_free_z"] = rank == 1
    out["message"] = _message(out)
    return out


def _tidy(v: float) -> float:
    r = round(v)
    return float(r) if abs(v - r) < 1e-6 * max(1.0, abs(v)) else round(v, 9)


def _message(d: dict[str, Any]) -> str:
    parts = []
    if d["fixed"]:
        parts.append(f"{len(d['fixed'])} class(es) fixed by the null (z undefined): {', '.join(d['fixed'])}")
    if d.get("fixed_real_differs"):
        parts.append(f"real count differs from the null's fixed value for {', '.join(d['fixed_real_differs'])}")
    nv = len(d["varying"])
    if d["insufficient_samples"]:
        parts.append(f"too few samples ({d['samples']}) to resolve {nv} varying classes")
    if nv and not d["insufficient_samples"]:
        parts.append(f"{d['free_dimensions']} free dimension(s) among {nv} varying classes")
    if d["single_free_z"] and nv > 1:
        parts.append(f"only one z is free: every other varying class is a linear function of {d['free'][0]}")
    elif d["degenerate"]:
        parts.append(f"{', '.join(d['determined'])} are exact linear functions of {', '.join(d['free'])}")
    return "; ".join(parts) if parts else "no degeneracy"


def summarize_family(
    real: np.ndarray, null: np.ndarray, labels: Sequence[str], *, derived: dict[str, Sequence[str]] | None = None
) -> dict[str, Any]:
    """Per-label real/mean/std/z/p, significance profile and degeneracy for one family of counts.

    `derived` adds labels that are sums of base labels (e.g. coherent FFLs): they get real/mean/std/z/p
    but stay out of the significance profile and the degeneracy analysis (they are linear in the base
    labels by construction).
    """
    labels = list(labels)
    real = np.asarray(real, dtype=np.int64)
    null = np.asarray(null, dtype=np.int64)
    z, mean, std = zscores(real, null)
    sp_ = significance_profile(z)
    p = empirical_p(real, null) if len(null) else np.full(len(labels), np.nan)
    out: dict[str, Any] = {
        "real": {lab: int(v) for lab, v in zip(labels, real, strict=True)},
        "mean": {lab: float(v) for lab, v in zip(labels, mean, strict=True)},
        "std": {lab: float(v) for lab, v in zip(labels, std, strict=True)},
        "z": {lab: float(v) for lab, v in zip(labels, z, strict=True)},
        "p": {lab: float(v) for lab, v in zip(labels, p, strict=True)},
        "significance_profile": {lab: float(v) for lab, v in zip(labels, sp_, strict=True)},
        "degeneracy": degeneracy(null, labels, real),
    }
    for name, parts in (derived or {}).items():
        idx = [labels.index(q) for q in parts]
        r, x = real[idx].sum(keepdims=True), null[:, idx].sum(axis=1, keepdims=True)
        zz, mm, ss = zscores(r, x)
        out["real"][name] = int(r[0])
        out["mean"][name] = float(mm[0])
        out["std"][name] = float(ss[0])
        out["z"][name] = float(zz[0])
        out["p"][name] = float(empirical_p(r, x)[0]) if len(x) else float("nan")
    return out
