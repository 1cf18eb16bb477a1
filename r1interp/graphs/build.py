"""All graphs of one model: trace each prompt, attribute each target, score, check, export.

Returns plain rows so the stage script only writes files: one index row per graph (and per skipped
target, with the reason), one row per faithfulness-checked edge.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from r1interp.graphs import faithfulness
from r1interp.graphs.export import neuronpedia_document, write_graph
from r1interp.graphs.targets import find_targets, generate_trace

# Every index row has every column (skipped targets leave the graph's fields empty).
INDEX_COLUMNS = (
    "model",
    "prompt_id",
    "category",
    "kind",
    "status",
    "reason",
    "slug",
    "path",
    "correct",
    "expected",
    "completion",
    "n_tokens",
    "window_start",
    "target_token",
    "target_is_top_logit",
    "top_logit_prob",
    "active_features",
    "nodes",
    "feature_nodes",
    "links",
    "replacement_score",
    "completeness_score",
    "faithfulness_edges",
    "faithfulness_max_relative_error",
)  # each row also carries "seconds" (attribution time): reported in the timings, never in the hashed index


def index_frame(rows: list[dict[str, Any]]):
    import pandas as pd

    frame = pd.DataFrame([{c: r.get(c) for c in INDEX_COLUMNS} for r in rows], columns=list(INDEX_COLUMNS))
    for col in ("replacement_score", "completeness_score", "top_logit_prob", "faithfulness_max_relative_error"):
        frame[col] = frame[col].astype("float64")
    for col in ("n_tokens", "window_start", "active_features", "nodes", "feature_nodes", "links", "faithfulness_edges"):
        frame[col] = frame[col].astype("Int64")
    return frame.astype({"correct": "boolean", "target_is_top_logit": "boolean"})


def build_model_graphs(
    loaded, replacement_model, prompts, role: str, cfg, out_dir: Path, labels: dict[tuple[int, int], str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from circuit_tracer import attribute
    from circuit_tracer.graph import compute_graph_scores

    index: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    checked = 0
    tok = loaded.tokenizer
    for prompt in tqdm(prompts, desc=f"graphs {role}", unit="prompt"):
        trace = generate_trace(
            loaded.model,
            tok,
            prompt,
            role,
            max_new_tokens=cfg.max_new_tokens,
            max_positions=loaded.arch.max_positions,
            answer_anchor=cfg.answer_anchor,
        )
        targets = find_targets(
            tok, trace, think_anchor=cfg.think_anchor, answer_anchor=cfg.answer_anchor, window_tokens=cfg.window_tokens
        )
        common = {
            "model": role,
            "prompt_id": prompt.id,
            "category": prompt.category,
            "correct": trace.correct,
            "expected": prompt.expected,
            "completion": trace.completion,
        }
        for kind, reason in trace.skipped.items():
            if role == "base" and kind == "think":
                continue  # the base model never thinks: not a finding worth a row per prompt
            index.append({**common, "kind": kind, "slug": None, "status": "skipped", "reason": reason})
        for target in targets:
            started = time.perf_counter()
            graph = attribute(
                torch.tensor(target.input_ids),
                replacement_model,
                max_n_logits=cfg.max_n_logits,
                desired_logit_prob=cfg.desired_logit_prob,
                batch_size=cfg.batch_size,
                max_feature_nodes=cfg.max_feature_nodes,
            )
            replacement, completeness = compute_graph_scores(graph)
            seconds = time.perf_counter() - started
            check = cfg.faithfulness
            faith = {"edges": 0, "max_relative_error": None}
            if not check.graphs or checked < check.graphs:
                rows = faithfulness.check_edges(
                    replacement_model,
                    graph,
                    sources=check.sources_per_graph,
                    edges_per_source=check.edges_per_source,
                    min_relative_weight=check.min_relative_weight,
                    seed=check.seed,
                )
                edges.extend({"slug": target.slug, **r} for r in rows)
                faith = faithfulness.summarize(rows, check.tolerance)
                checked += 1
            probs = graph.logit_probabilities.tolist()
            info = {
                "model": role,
                "prompt_id": prompt.id,
                "category": prompt.category,
                "kind": target.kind,
                "correct": trace.correct,
                "target_token": tok.decode([target.target_token]),
                "replacement_score": replacement,
                "completeness_score": completeness,
                "window_start": target.window_start,
                "window_tokens": cfg.window_tokens,
            }
            doc = neuronpedia_document(
                graph,
                target.slug,
                tok,
                node_threshold=cfg.node_threshold,
                edge_threshold=cfg.edge_threshold,
                labels=labels,
                info=info,
            )
            path = out_dir / role / f"{target.slug}.json"
            write_graph(path, doc)
            features = sum(n["feature_type"] == "cross layer transcoder" for n in doc["nodes"])
            index.append({
                **common, "kind": target.kind, "slug": target.slug, "status": "ok", "reason": None,
                "path": str(path.relative_to(out_dir)), "n_tokens": len(target.input_ids),
                "window_start": target.window_start,
                "target_token": info["target_token"],
                "target_is_top_logit": bool(graph.logit_targets[0].vocab_idx == target.target_token),
                "top_logit_prob": float(probs[0]), "active_features": int(graph.active_features.shape[0]),
                "nodes": len(doc["nodes"]), "feature_nodes": int(features), "links": len(doc["links"]),
                "replacement_score": float(replacement), "completeness_score": float(completeness),
                "faithfulness_edges": faith["edges"], "faithfulness_max_relative_error": faith["max_relative_error"],
                "seconds": round(seconds, 3),
            })  # fmt: skip
    return index, edges
