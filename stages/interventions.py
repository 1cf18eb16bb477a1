"""Stage `interventions`: what targeted modifications do to held-out reasoning accuracy.

Every arm is evaluated on the same problem groups (organism: task x carry, out-of-distribution operand length;
Hub profiles: held-out problems by problem type, graded by math-verify, plus behaviour metrics: backtracking and
uncertainty sentences per trace, finished traces, think length) and every feature-based arm has random controls of
equal size per layer. Feature sets come from the clusters whose steps are mostly `target_step_type` (a generator
step type for the organism, an R1 behaviour such as backtracking for real traces). Rows go to reports/interventions/results.csv,
the summary to reports/metrics/interventions.json, plots next to the table.
"""

import r1interp  # noqa: F401  first import: pins deterministic numerics before torch/numpy load

import json
import time

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from r1interp import paths, stage, timings
from r1interp.errors import ArtifactError, ConfigError
from r1interp.io import atomic_path, write_json
from r1interp.models import load_role, resolve_device
from r1interp.reasoning import benchmark, feature_sets, finetune
from r1interp.reasoning import intervention_plots as plots
from r1interp.reasoning.interventions import ablate, decoder_rows, edit_down_proj, feature_vector, steer
from r1interp.reasoning.steps import feature_index
from r1interp.schemas import CorpusSchema, LabelSchema, read_parquet
from r1interp.transcoders import SET_ROOT, load_coders

BEHAVIOUR_KEYS = ("backtracking_per_trace", "uncertainty_per_trace", "finished", "think_tokens")
OUT = paths.INTERVENTIONS_DIR
METRICS = paths.INTERVENTIONS_METRICS


class Runner:
    """Evaluates arms and collects one row per (arm, group)."""

    def __init__(self, cfg, groups, behaviours: bool = False):
        self.cfg, self.groups, self.behaviours, self.rows = cfg, groups, behaviours, []

    def measure(self, lm, intervention, *, target="", size=np.nan, alpha=np.nan, scale=np.nan, draw=0, model="reasoner",
                nll=False):
        acc = benchmark.accuracy(lm.model, lm.tokenizer, self.groups, max_new_tokens=self.cfg.max_new_tokens,
                                 batch_size=self.cfg.batch_size, behaviours=self.behaviours)
        for group, r in acc.items():
            row = {"intervention": intervention, "target": target, "model": model, "size": size, "alpha": alpha,
                   "scale": scale, "draw": draw, "group": group, **r}
            if nll:
                row["gold_nll"] = benchmark.gold_nll(lm.model, lm.tokenizer, self.groups[group], self.cfg.batch_size)
            self.rows.append(row)
        return acc


def main(params, args):
    cfg = params.interventions
    started = time.perf_counter()
    real = params.model.profile != "organism"
    device = resolve_device(params.model.device)
    corpus = read_parquet(paths.CORPUS_PARQUET, CorpusSchema, "run `dvc repro corpus`")
    steps = pd.read_parquet(paths.CLUSTER_STEPS)
    profiles = np.load(paths.CLUSTER_PROFILES)
    lm = load_role(params.model.profile, cfg.model, device=device)
    coders = load_coders(SET_ROOT / cfg.model / "sparsify", device=device)
    index = feature_index(coders)
    if profiles.shape != (len(steps), len(index)):
        raise ArtifactError(f"{paths.CLUSTER_PROFILES} has shape {profiles.shape}; expected {(len(steps), len(index))} "
                            f"(steps x features of the {cfg.model} transcoders)", hint="run `dvc repro clusters`")
    if "true_type" not in steps:
        raise ArtifactError(f"{paths.CLUSTER_STEPS} has no true step types", hint="run `dvc repro clusters` on the organism")
    ranked, ranking_info = feature_sets.ranked_features(steps, profiles, index, cfg.target_step_type, cfg.contrast_step_type)
    too_big = [s for s in [*cfg.ablation_sizes, *cfg.edit.sizes, cfg.steering.features] if s > len(ranked)]
    if too_big:
        raise ConfigError(f"interventions: feature-set sizes {too_big} exceed the {len(ranked)} features")
    alive = feature_sets.alive_features(profiles, index)
    rng = np.random.default_rng(cfg.seed)
    if real:
        groups = benchmark.real_groups(corpus, cfg.problems_per_group)
    else:
        groups = benchmark.organism_groups(corpus, cfg.problems_per_group, cfg.ood_digits, cfg.seed)
    run = Runner(cfg, groups, behaviours=real)
    carry = f"{cfg.target_step_type} clusters"
    mean_in_target = dict(zip(zip(ranked["layer"], ranked["feature"]), ranked["mean_in_target"]))

    def typical_output(features: dict[int, list[int]], means: dict) -> dict:
        return feature_vector(coders, {l: {f: means[(l, f)] for f in fs} for l, fs in features.items()})

    plan = (2 + len(cfg.ablation_sizes) * (1 + cfg.random_controls)
            + len(cfg.edit.sizes) * (len(cfg.edit.scales) + cfg.random_controls) + 2 * len(cfg.steering.alphas)
            + (2 * len(cfg.steering.alphas) + 1 if cfg.steering.base_toward_reasoner else 0) + 3)
    bar = tqdm(total=plan, desc="interventions", unit="arm")

    def step(label):
        bar.set_postfix_str(label)
        bar.update(1)

    run.measure(lm, "baseline", nll=True)
    step("baseline")

    # 1. ablation of the carry clusters' features, by size, against random sets of equal size per layer
    for size in cfg.ablation_sizes:
        chosen = feature_sets.as_sets(ranked.head(size))
        with ablate(lm.model, coders, chosen):
            run.measure(lm, "ablation", target=carry, size=size)
        step(f"ablate {size}")
        for draw in range(cfg.random_controls):
            with ablate(lm.model, coders, feature_sets.random_matched(chosen, alive, rng)):
                run.measure(lm, "ablation_random", target="random features", size=size, draw=draw)
            step(f"ablate {size} random {draw}")

    # 2. weight edits: scale the carry features' decoder span inside down_proj
    for size in cfg.edit.sizes:
        chosen = feature_sets.as_sets(ranked.head(size))
        for scale in cfg.edit.scales:
            with edit_down_proj(lm.model, decoder_rows(coders, chosen), scale):
                run.measure(lm, "weight_edit", target=carry, size=size, scale=scale)
            step(f"edit {size} x{scale}")
        for draw in range(cfg.random_controls):
            control = feature_sets.random_matched(chosen, alive, rng)
            with edit_down_proj(lm.model, decoder_rows(coders, control), cfg.edit.scales[0]):
                run.measure(lm, "weight_edit_random", target="random features", size=size, scale=cfg.edit.scales[0], draw=draw)
            step(f"edit {size} random {draw}")

    # 3. steering the reasoner with the carry features' typical output (expected: spurious carries on no-carry problems)
    chosen = feature_sets.as_sets(ranked.head(cfg.steering.features))
    vector = typical_output(chosen, mean_in_target)
    control_set = feature_sets.random_matched(chosen, alive, rng)
    control_means = {(l, f): float(profiles[:, index.index((l, f))].mean()) for l, fs in control_set.items() for f in fs}
    control = typical_output(control_set, control_means)
    _match_norms(control, vector)
    for alpha in cfg.steering.alphas:
        with steer(lm.model, vector, alpha):
            run.measure(lm, "steering", target=carry, size=cfg.steering.features, alpha=alpha)
        step(f"steer {alpha}")
        with steer(lm.model, control, alpha):
            run.measure(lm, "steering_random", target="random features", size=cfg.steering.features, alpha=alpha)
        step(f"steer random {alpha}")

    # 4. steering the base model toward the reasoner's most active think features
    if cfg.steering.base_toward_reasoner:
        base = load_role(params.model.profile, "base", device=device)
        run.measure(base, "baseline", model="base", nll=True)
        step("base baseline")
        means = profiles.mean(0)
        top = np.argsort(-means)[: cfg.steering.features]
        active = feature_sets.as_sets(pd.DataFrame({"layer": [index[i][0] for i in top], "feature": [index[i][1] for i in top]}))
        mean_of = {index[i]: float(means[i]) for i in range(len(index))}
        toward = typical_output(active, mean_of)
        rand = typical_output(feature_sets.random_matched(active, alive, rng), mean_of)
        _match_norms(rand, toward)
        for alpha in cfg.steering.alphas:
            with steer(base.model, toward, alpha):
                run.measure(base, "steering", target="reasoner think features", model="base", size=cfg.steering.features,
                            alpha=alpha, nll=True)
            step(f"base steer {alpha}")
            with steer(base.model, rand, alpha):
                run.measure(base, "steering_random", target="random features", model="base", size=cfg.steering.features,
                            alpha=alpha, nll=True)
            step(f"base steer random {alpha}")
        del base

    # 5. cluster-specific fine-tuning on out-of-distribution problems the model gets wrong
    ft = cfg.finetune
    ft_ranked, ft_info = feature_sets.ranked_features(steps, profiles, index, ft.step_type, None)
    ft_set = feature_sets.as_sets(ft_ranked.head(ft.features))
    if real:  # training-split problems the model gets wrong, with their R1 traces; replay: ones it gets right
        pool = benchmark.real_training_items(corpus, ft.problems * 2, cfg.seed + 1)
        wrong, right = _failed(lm, pool, cfg, with_right=True)
        wrong = wrong[: ft.problems]
        replay = right[: round(ft.replay * len(wrong))]
    else:
        pool = benchmark.ood_problems(ft.task, ft.problems * 2, cfg.ood_digits, cfg.seed + 1)
        wrong = _failed(lm, pool, cfg)[: ft.problems]
        replay = benchmark.training_problems(corpus, ft.task, round(ft.replay * len(wrong)), cfg.seed)
    step("fine-tune data")
    finetune_info = {"step_type": ft.step_type, "clusters": ft_info["target_clusters"], "features": ft.features,
                     "training_problems": {"failing_ood": len(wrong), "replay_in_distribution": len(replay)}, "rank": {}}
    if len(wrong) >= 8:
        for name, features in (("finetune", ft_set), ("finetune_random", feature_sets.random_matched(ft_set, alive, rng))):
            deltas, losses = finetune.subspace_finetune(lm.model, lm.tokenizer, decoder_rows(coders, features), wrong + replay,
                                                        steps=ft.steps, lr=ft.lr, batch_size=ft.batch_size, seed=cfg.seed)
            finetune_info[name] = {"loss_first": round(losses[0], 4), "loss_last": round(float(np.mean(losses[-10:])), 4)}
            finetune_info["rank"][name] = {int(l): int(np.linalg.matrix_rank(d.numpy())) for l, d in deltas.items()}
            with finetune.applied(lm.model, deltas):
                run.measure(lm, name, target=f"{ft.step_type} clusters" if name == "finetune" else "random features",
                            size=ft.features, nll=True)
            step(name)
    else:
        finetune_info["skipped"] = (f"only {len(wrong)} failing training problems" if real else
                                    f"only {len(wrong)} failing {ft.task} problems with {cfg.ood_digits}-digit operands")
    bar.close()

    results = pd.DataFrame(run.rows)
    labels = _labels(cfg.model)
    top = ranked.head(20).merge(labels, on=["layer", "feature"], how="left")
    metrics = _summary(results, cfg, ranking_info, top, finetune_info)
    timings.record("interventions", {"seconds": round(time.perf_counter() - started, 1)})
    with atomic_path(OUT, directory=True) as tmp:
        results.to_csv(tmp / "results.csv", index=False)
        ranked.head(max(cfg.ablation_sizes)).merge(labels, on=["layer", "feature"], how="left").to_csv(
            tmp / "ranked_features.csv", index=False)
        plots.ablation_by_size(results, tmp / "ablation_size.png")
        plots.steering_by_alpha(results, tmp / "steering_alpha.png")
        plots.edits_and_finetune(results, tmp / "edits_finetune.png")
    write_json(METRICS, json.loads(json.dumps(metrics, default=float)))
    print(json.dumps(metrics, indent=1, default=float)[:4000])


def _match_norms(control: dict, reference: dict) -> None:
    """A random direction of the same norm per layer: the control differs in direction only."""
    for layer, vec in control.items():
        if layer in reference:
            control[layer] = vec * (reference[layer].norm() / vec.norm().clamp_min(1e-12))


def _failed(lm, items, cfg, with_right: bool = False):
    ok = benchmark.graded(lm.model, lm.tokenizer, items, max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size,
                          desc="fine-tune data")
    wrong = [i for i, right in zip(items, ok) if not right]
    return (wrong, [i for i, right in zip(items, ok) if right]) if with_right else wrong


def _labels(model: str) -> pd.DataFrame:
    path = paths.LABELS_PARQUET
    if not path.exists():
        return pd.DataFrame(columns=["layer", "feature", "label"])
    lab = read_parquet(path, LabelSchema)
    return lab[(lab["model"] == model)][["layer", "feature", "label"]]


def _summary(results: pd.DataFrame, cfg, ranking_info: dict, top: pd.DataFrame, finetune_info: dict) -> dict:
    def cell(r):
        out = {"n": int(r["n"]), "accuracy": round(float(r["accuracy"]), 4),
               "ci95": [round(float(r["ci_low"]), 4), round(float(r["ci_high"]), 4)]}
        if not pd.isna(r.get("gold_nll", np.nan)):
            out["gold_nll"] = round(float(r["gold_nll"]), 4)
        for key in BEHAVIOUR_KEYS:  # Hub profiles: what the arm does to how the model reasons
            if key in r and not pd.isna(r[key]):
                out[key] = float(r[key])
        return out

    reasoner = results[results["model"] == "reasoner"]
    base_rows = reasoner[reasoner["intervention"] == "baseline"].set_index("group")
    baseline = {g: cell(r) for g, r in base_rows.iterrows()}

    def arm(name, key):
        out = []
        rows = reasoner[reasoner["intervention"] == name]
        for value, chunk in rows.groupby(key):
            entry = {key: float(value), "groups": {}}
            for group, r in chunk.set_index("group").iterrows():
                entry["groups"][group] = cell(r)
            out.append(entry)
        return out

    def controls(name, key):
        rows = reasoner[reasoner["intervention"] == name]
        out = {}
        for (value, group), chunk in rows.groupby([key, "group"]):
            out.setdefault(float(value), {})[group] = {
                "draws": int(len(chunk)), "n": int(chunk["n"].iloc[0]), "mean_accuracy": round(float(chunk["accuracy"].mean()), 4),
                "min_accuracy": round(float(chunk["accuracy"].min()), 4), "max_accuracy": round(float(chunk["accuracy"].max()), 4)}
        return [{key: k, "groups": v} for k, v in out.items()]

    ablation = arm("ablation", "size")
    ablation_random = controls("ablation_random", "size")
    specificity = []
    for a, r in zip(ablation, ablation_random):
        g = a["groups"]
        row = {"size": a["size"]}
        for group in g:
            row[f"drop_{group}"] = round(baseline[group]["accuracy"] - g[group]["accuracy"], 4)
            row[f"random_drop_{group}"] = round(baseline[group]["accuracy"] - r["groups"][group]["mean_accuracy"], 4)
        specificity.append(row)

    edits = reasoner[reasoner["intervention"] == "weight_edit"]
    edit_out = []
    for (size, scale), chunk in edits.groupby(["size", "scale"]):
        edit_out.append({"size": float(size), "scale": float(scale), "groups": {g: cell(r) for g, r in chunk.set_index("group").iterrows()}})

    # best out-of-distribution result of any arm, against the unmodified model's interval
    ood = reasoner[reasoner["group"].str.startswith("ood_") & (reasoner["intervention"] != "baseline")]
    improvements = []
    for group in sorted(g for g in baseline if g.startswith("ood_")):
        rows = ood[ood["group"] == group]
        if rows.empty:
            continue
        best = rows.sort_values("accuracy", ascending=False).iloc[0]
        improvements.append({"group": group, "baseline": baseline[group], "best": {
            "intervention": best["intervention"], "target": best["target"], "size": _num(best["size"]), "alpha": _num(best["alpha"]),
            "scale": _num(best["scale"]), **cell(best)}, "improved": bool(best["ci_low"] > baseline[group]["ci95"][1])})

    base = results[results["model"] == "base"]
    steering_base = []
    for (name, alpha), chunk in base.groupby(["intervention", "alpha"], dropna=False):
        steering_base.append({"intervention": name, "alpha": _num(alpha),
                              "groups": {g: cell(r) for g, r in chunk.set_index("group").iterrows()}})

    ft_rows = reasoner[reasoner["intervention"].isin(["finetune", "finetune_random"])]
    for name, chunk in ft_rows.groupby("intervention"):
        finetune_info.setdefault(name, {})["groups"] = {g: cell(r) for g, r in chunk.set_index("group").iterrows()}

    return {
        "model": cfg.model,
        "groups": {g: v["n"] for g, v in baseline.items()},
        "feature_ranking": {**ranking_info, "target_step_type": cfg.target_step_type,
                            "contrast_step_type": cfg.contrast_step_type,
                            "top": top[["layer", "feature", "effect", "label"]].head(10).to_dict("records")},
        "baseline": baseline,
        "ablation": ablation,
        "ablation_random": ablation_random,
        "ablation_specificity": specificity,
        "weight_edit": edit_out,
        "weight_edit_random": controls("weight_edit_random", "size"),
        "steering": arm("steering", "alpha"),
        "steering_random": arm("steering_random", "alpha"),
        "steering_base_toward_reasoner": steering_base,
        "ood_improvement": improvements,
        "finetune": finetune_info,
    }


def _num(value):
    return None if pd.isna(value) else float(value)


if __name__ == "__main__":
    stage.run(main)
