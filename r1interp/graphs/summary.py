"""reports/metrics/graphs.json from the graph index and the faithfulness rows."""

from __future__ import annotations

from typing import Any

import pandas as pd

from r1interp.graphs import faithfulness


def _scores(df: pd.DataFrame) -> dict[str, Any]:
    return {
        "graphs": int(len(df)),
        "replacement": round(float(df["replacement_score"].mean()), 4),
        "completeness": round(float(df["completeness_score"].mean()), 4),
        "feature_nodes": round(float(df["feature_nodes"].mean()), 1),
        "links": round(float(df["links"].mean()), 1),
    }


def summarize(index: pd.DataFrame, edges: pd.DataFrame, tolerance: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for model, rows in index.groupby("model", sort=False):
        per_prompt = rows.drop_duplicates("prompt_id")
        graded = per_prompt["correct"].dropna()
        entry: dict[str, Any] = {
            "prompts": int(len(per_prompt)),
            "accuracy": round(float(graded.astype(bool).mean()), 4) if len(graded) else None,
            "skipped": int((rows["status"] == "skipped").sum()),
        }
        ok = rows[rows["status"] == "ok"]
        for kind, by_kind in ok.groupby("kind", sort=False):
            entry[kind] = {
                **_scores(by_kind),
                "by_category": {c: _scores(g) for c, g in by_kind.groupby("category")},
                "correct": _scores(by_kind[by_kind["correct"] == True]) if (by_kind["correct"] == True).any() else None,  # noqa: E712
                "incorrect": _scores(by_kind[by_kind["correct"] == False])  # noqa: E712  element-wise (pandas)
                if (by_kind["correct"] == False).any()  # noqa: E712
                else None,
            }
        out[model] = entry
    out["faithfulness"] = faithfulness.summarize(edges.to_dict("records"), tolerance)
    return out
