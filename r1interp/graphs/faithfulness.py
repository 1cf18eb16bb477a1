"""Does an edge weight mean what it says? Patch the source feature and measure the target.

circuit-tracer's edge weight A[t, s] is the direct effect of feature s on node t in the linearised
model (attention patterns, norm scales and MLP outputs frozen), scaled by s's activation. Setting s
to zero in that same frozen model (`feature_intervention` with every layer constrained) must therefore
change t's pre-activation by exactly -A[t, s] (for a logit node: the demeaned logit). We sample sources
among feature nodes with large outgoing edges, take each source's largest edges, and report the
relative error |measured - attributed| / |attributed|. "Large" is relative to the largest edge
between these nodes (feature -> feature or logit): tiny edges would only measure float noise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def check_edges(
    model, graph, *, sources: int, edges_per_source: int, min_relative_weight: float, seed: int
) -> list[dict[str, Any]]:
    adj = graph.adjacency_matrix.float().cpu()
    n_features = len(graph.selected_features)
    n_layers = model.cfg.n_layers
    n_logits = len(graph.logit_targets)
    logit_start = adj.shape[0] - n_logits
    targets = list(range(n_features)) + list(range(logit_start, adj.shape[0]))
    block = adj[targets][:, :n_features]  # rows: feature and logit targets, cols: feature sources
    floor = min_relative_weight * float(block.abs().max()) if block.numel() else 0.0
    strong = block.abs() >= max(floor, 1e-12)
    eligible = np.flatnonzero(strong.any(dim=0).numpy())
    if not len(eligible):
        return []
    rng = np.random.default_rng(seed)
    chosen = rng.choice(eligible, size=min(sources, len(eligible)), replace=False)

    ids = graph.input_tokens.to(model.cfg.device)
    base_logits, base_acts = model.feature_intervention(
        ids, [], constrained_layers=range(n_layers), apply_activation_function=False
    )
    feats = graph.active_features[graph.selected_features]
    unembed_tokens = [int(t.vocab_idx) for t in graph.logit_targets]
    rows = []
    for s in sorted(int(c) for c in chosen):
        layer, pos, feature = (int(v) for v in feats[s].tolist())
        logits, acts = model.feature_intervention(
            ids, [(layer, pos, feature, 0.0)], constrained_layers=range(n_layers), apply_activation_function=False
        )
        column = block[:, s]
        order = torch.argsort(column.abs(), descending=True)
        for r in order[:edges_per_source].tolist():
            attributed = -float(column[r])
            if abs(attributed) < max(floor, 1e-12):
                break
            t = targets[r]
            if t < n_features:
                tl, tp, tf = (int(v) for v in feats[t].tolist())
                measured = float(acts[tl, tp, tf] - base_acts[tl, tp, tf])
                kind = "feature"
            else:
                tok = unembed_tokens[t - logit_start]
                delta = logits[0, -1] - base_logits[0, -1]
                measured = float(delta[tok] - delta.mean())
                kind = "logit"
            rows.append({
                "source_layer": layer, "source_pos": pos, "source_feature": feature,
                "target_kind": kind, "target_node": int(t), "attributed": attributed, "measured": measured,
                "relative_error": abs(measured - attributed) / abs(attributed),
            })  # fmt: skip
    return rows


def summarize(rows: list[dict[str, Any]], tolerance: float) -> dict[str, Any]:
    if not rows:
        return {
            "edges": 0,
            "max_relative_error": None,
            "median_relative_error": None,
            "tolerance": tolerance,
            "within_tolerance": None,
        }
    errors = np.array([r["relative_error"] for r in rows])
    return {
        "edges": len(rows),
        "max_relative_error": float(errors.max()),
        "median_relative_error": float(np.median(errors)),
        "tolerance": tolerance,
        "within_tolerance": bool(errors.max() <= tolerance),
    }
