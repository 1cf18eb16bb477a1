"""The interventions metrics: each arm's accuracy per group next to the unmodified model and the random controls.

Input is `experiment.run`'s rows (one per arm and group); output is the JSON written to
reports/metrics/interventions.json. Every cell carries its n and Wilson 95% interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Hub profiles: what an arm does to how the model reasons (benchmark.behaviour), reported next to accuracy
BEHAVIOUR_KEYS = ("backtracking_per_trace", "uncertainty_per_trace", "finished", "think_tokens")


def num(value) -> float | None:
    return None if pd.isna(value) else float(value)


def cell(row) -> dict:
    """One arm on one group: n, accuracy, its interval, gold-trace loss and behaviour metrics where measured."""
    out = {
        "n": int(row["n"]),
        "accuracy": round(float(row["accuracy"]), 4),
        "ci95": [round(float(row["ci_low"]), 4), round(float(row["ci_high"]), 4)],
    }
    if not pd.isna(row.get("gold_nll", np.nan)):
        out["gold_nll"] = round(float(row["gold_nll"]), 4)
    for key in BEHAVIOUR_KEYS:
        if key in row and not pd.isna(row[key]):
            out[key] = float(row[key])
    return out


def by_setting(rows: pd.DataFrame, name: str, key: str) -> list[dict]:
    """Arm `name` per value of its setting `key` (size, alpha): one cell per group."""
    out = []
    for value, chunk in rows[rows["intervention"] == name].groupby(key):
        out.append({key: float(value), "groups": {g: cell(r) for g, r in chunk.set_index("group").iterrows()}})
    return out


def controls(rows: pd.DataFrame, name: str, key: str) -> list[dict]:
    """Random-control draws of arm `name` per setting and group: mean, min and max accuracy over the draws."""
    out: dict[float, dict] = {}
    for (value, group), chunk in rows[rows["intervention"] == name].groupby([key, "group"]):
        out.setdefault(float(value), {})[group] = {
            "draws": int(len(chunk)),
            "n": int(chunk["n"].iloc[0]),
            "mean_accuracy": round(float(chunk["accuracy"].mean()), 4),
            "min_accuracy": round(float(chunk["accuracy"].min()), 4),
            "max_accuracy": round(float(chunk["accuracy"].max()), 4),
        }
    return [{key: k, "groups": v} for k, v in out.items()]


def specificity(ablation: list[dict], ablation_random: list[dict], baseline: dict) -> list[dict]:
    """Accuracy lost per group by ablating the target features, and by the random sets of the same size."""
    out = []
    random_by_size = {r["size"]: r["groups"] for r in ablation_random}
    for a in ablation:
        row = {"size": a["size"]}
        for group, c in a["groups"].items():
            row[f"drop_{group}"] = round(baseline[group]["accuracy"] - c["accuracy"], 4)
            row[f"random_drop_{group}"] = round(
                baseline[group]["accuracy"] - random_by_size[a["size"]][group]["mean_accuracy"], 4
            )
        out.append(row)
    return out


def ood_improvement(rows: pd.DataFrame, baseline: dict) -> list[dict]:
    """The best arm per out-of-distribution group; `improved` only if its interval clears the baseline's."""
    ood = rows[rows["group"].str.startswith("ood_") & (rows["intervention"] != "baseline")]
    out = []
    for group in sorted(g for g in baseline if g.startswith("ood_")):
        candidates = ood[ood["group"] == group]
        if candidates.empty:
            continue
        best = candidates.sort_values("accuracy", ascending=False).iloc[0]
        out.append(
            {
                "group": group,
                "baseline": baseline[group],
                "best": {
                    "intervention": best["intervention"],
                    "target": best["target"],
                    "size": num(best["size"]),
                    "alpha": num(best["alpha"]),
                    "scale": num(best["scale"]),
                    **cell(best),
                },
                "improved": bool(best["ci_low"] > baseline[group]["ci95"][1]),
            }
        )
    return out


def summarize(results: pd.DataFrame, cfg, ranking: dict, top: pd.DataFrame, finetune_info: dict) -> dict:
    reasoner = results[results["model"] == "reasoner"]
    baseline = {g: cell(r) for g, r in reasoner[reasoner["intervention"] == "baseline"].set_index("group").iterrows()}
    ablation, ablation_random = by_setting(reasoner, "ablation", "size"), controls(reasoner, "ablation_random", "size")

    edits = []
    for (size, scale), chunk in reasoner[reasoner["intervention"] == "weight_edit"].groupby(["size", "scale"]):
        edits.append(
            {
                "size": float(size),
                "scale": float(scale),
                "groups": {g: cell(r) for g, r in chunk.set_index("group").iterrows()},
            }
        )

    steering_base = []
    for (name, alpha), chunk in results[results["model"] == "base"].groupby(["intervention", "alpha"], dropna=False):
        steering_base.append(
            {
                "intervention": name,
                "alpha": num(alpha),
                "groups": {g: cell(r) for g, r in chunk.set_index("group").iterrows()},
            }
        )

    finetune_info = dict(finetune_info)
    for name, chunk in reasoner[reasoner["intervention"].isin(["finetune", "finetune_random"])].groupby("intervention"):
        finetune_info[name] = {
            **finetune_info.get(name, {}),
            "groups": {g: cell(r) for g, r in chunk.set_index("group").iterrows()},
        }

    return {
        "model": cfg.model,
        "groups": {g: v["n"] for g, v in baseline.items()},
        "feature_ranking": {
            **ranking,
            "target_step_type": cfg.target_step_type,
            "contrast_step_type": cfg.contrast_step_type,
            "top": top[["layer", "feature", "effect", "label"]].head(10).to_dict("records"),
        },
        "baseline": baseline,
        "ablation": ablation,
        "ablation_random": ablation_random,
        "ablation_specificity": specificity(ablation, ablation_random, baseline),
        "weight_edit": edits,
        "weight_edit_random": controls(reasoner, "weight_edit_random", "size"),
        "steering": by_setting(reasoner, "steering", "alpha"),
        "steering_random": by_setting(reasoner, "steering_random", "alpha"),
        "steering_base_toward_reasoner": steering_base,
        "ood_improvement": ood_improvement(reasoner, baseline),
        "finetune": finetune_info,
    }
