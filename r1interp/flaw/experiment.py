"""Find and fix the planted flaw on the flawed organism (the `flaw` stage's logic).

1. Find: grade fresh discovery problems, take the first step where each wrong trace leaves the gold trace, search
   rules over generic step facts that single those steps out (`find`). The finder never reads the planted rule;
   the scores (`flagged_group`: precision / recall of the problems the best rule flags, against the ground truth of
   every held-out problem) do.
2. Localise: attribution of the flawed decision to MLP neurons and to the reasoner's transcoder features from
   corrected training examples (`localise`), each scored by where the units that fire selectively on pattern steps
   land in the ranking (against the share of such units: a random ranking's precision).
3. Fix: four targeted repairs (gated steering at the flawed step, of neurons and of transcoder features, a
   neuron-column edit, cluster-specific fine-tuning), each against the same technique on a random set of equal
   size, plus an unconstrained fine-tune on the same examples and steps. Every arm is measured on the same held-out
   groups with Wilson 95% intervals.

The bar ("works"): lift of the flaw group >= 30 points, its interval's lower bound above the upper bounds of both
the unmodified model and the random control, and no other group dropping by more than 2 points.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from r1interp import chat
from r1interp.errors import ConfigError
from r1interp.flaw import find, localise, patterns, problems, repair
from r1interp.organism import tasks
from r1interp.organism.evaluate import generate
from r1interp.reasoning import benchmark, feature_sets, finetune
from r1interp.reasoning.interventions import decoder_rows

TECHNIQUES = ("steer", "feature_steer", "neuron_edit", "cluster_finetune")
ARMS = (  # the order of the repair table
    "unmodified",
    *(arm for t in TECHNIQUES for arm in (t, f"{t}_random")),
    "unconstrained",
)
SELECTIVE_AUROC = 0.9  # a unit fires on the flawed step: AUROC >= this (or <= 1 - this) vs matched control tokens
LIFT_BAR, DROP_BAR = 0.30, 0.02


@dataclass
class Outcome:
    rows: pd.DataFrame  # one row per arm: accuracy and interval per group, lift, worst drop, params changed
    find: dict
    localise: dict
    verdicts: dict
    ranked: pd.DataFrame  # neurons by attribution, with their selectivity AUROC
    features: pd.DataFrame  # transcoder features by attribution, with their selectivity AUROC
    rules: pd.DataFrame  # the finder's best rules
    arms: dict  # what each arm touched (layers, neurons / features, gate quality, skipped arms and why)


def decision_char(text: str, line: str) -> int:
    """Character index of the digit after 'write ' in `line` inside `text` (where a column step decides)."""
    return text.index(line) + line.index("write ") + len("write ")


def decision_points(probs: list[tasks.Problem], pick: Callable[[dict], bool]) -> list[tuple[str, int]]:
    """(gold text, decision character) of the first step of each problem whose facts satisfy `pick`."""
    out = []
    for p in probs:
        text = chat.prompt_text(p.prompt) + problems.item(p).completion
        idx = next((i for i, f in enumerate(find.step_facts(p)) if pick(f)), None)
        if idx is not None:
            out.append((text, decision_char(text, p.steps[idx].text)))
    return out


def _is_pattern_step(pattern: str, f: dict) -> bool:
    task, predicate = patterns.PATTERNS[pattern]
    return f["task"] == task and f["x"] >= 0 and predicate(patterns.Column(f["column"], f["x"], f["y"], f["carry_in"]))


def verdict(rows: pd.DataFrame, arm: str, control: str) -> dict:
    base = rows[rows["arm"] == "unmodified"].iloc[0]
    t, c = rows[rows["arm"] == arm].iloc[0], rows[rows["arm"] == control].iloc[0]
    out = {
        "lift_ge_30": bool(t["lift"] >= LIFT_BAR - 1e-9),
        "ci_above_unmodified": bool(t["flaw_ci_low"] > base["flaw_ci_high"]),
        "ci_above_random": bool(t["flaw_ci_low"] > c["flaw_ci_high"]),
        "no_group_drops_over_2": bool(t["worst_other_drop"] <= DROP_BAR + 1e-9),
    }
    out["meets_bar"] = all(out.values())
    return out


def run(
    cfg,
    *,
    model,
    tokenizer,
    corpus: pd.DataFrame,
    task_digits: dict[str, tuple[int, int]],
    coders,
    index,
    steps_table: pd.DataFrame,
    profiles: np.ndarray,
    log: Callable[[str], None] = print,
) -> Outcome:
    """The whole experiment on the flawed `model` (its weights come back unchanged)."""
    rc = cfg.repair
    pattern_pool, plain_pool = problems.repair_pools(corpus, cfg.pattern, rc.examples)
    seen = problems.seen_problems(corpus[corpus["split"] == "train"])
    groups = problems.evaluation_groups(cfg.pattern, task_digits, seen, rc.problems_per_group, cfg.seed)
    items = {g: [problems.item(p) for p in v] for g, v in groups.items()}
    others = [g for g in groups if g != "flaw"]

    def measure(name: str, kind: str, params_changed: int, m=None) -> dict:
        acc = benchmark.accuracy(
            m or model, tokenizer, items, max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size
        )
        nll = benchmark.gold_nll(m or model, tokenizer, items["flaw"], rc.batch_size)
        log(f"flaw: {name}: " + ", ".join(f"{g} {r['accuracy']:.2f}" for g, r in acc.items()))
        return {
            "arm": name,
            "kind": kind,
            "params_changed": int(params_changed),
            "flaw_gold_nll": nll,
            **{f"{g}_{k}": r[k] for g, r in acc.items() for k in ("n", "correct", "accuracy", "ci_low", "ci_high")},
        }

    rows = [measure("unmodified", "none", 0)]
    if rows[0]["flaw_correct"] == rows[0]["flaw_n"]:
        raise ConfigError(
            f"flaw.share: the flawed organism solves all {rows[0]['flaw_n']} held-out {cfg.pattern} problems, "
            "so there is no failure to repair (raise flaw.share or flaw.organism.steps)"
        )

    # 1. find: graded fresh problems of every task; the first divergent step of each wrong trace
    disc = [
        p
        for task in sorted(task_digits)
        for p in problems.discovery_problems({task: task_digits[task]}, seen, cfg.find.problems_per_task, cfg.seed)
    ]
    completions = generate(
        model,
        tokenizer,
        [p.prompt for p in disc],
        max_new_tokens=cfg.max_new_tokens,
        batch_size=cfg.batch_size,
        desc="discovery",
    )
    table = find.step_table(disc, completions)
    failing = table[table["diverges"]]
    if failing.empty:
        raise ConfigError(
            f"flaw.share: the flawed organism fails none of the {len(disc)} discovery problems, so there "
            f"is no failing group to find or repair (raise flaw.share or flaw.organism.steps)"
        )
    rules = find.search_rules(table, max_conditions=cfg.find.max_conditions, min_support=cfg.find.min_support)
    evaluated = [p for v in groups.values() for p in v]
    truth = [patterns.has_pattern(cfg.pattern, p.task, p.a, p.b) for p in evaluated]
    at_pattern = [_is_pattern_step(cfg.pattern, r) for r in failing.to_dict("records")]
    found = {
        "discovery_problems": len(disc),
        "failing_problems": int(failing["problem"].nunique()),
        "rules_found": len(rules),
        "best_rule": rules[0].text() if rules else None,
        "best_rule_step_precision": rules[0].precision if rules else 0.0,
        "best_rule_step_recall": rules[0].recall if rules else 0.0,
        "flagged_group": (
            find.precision_recall(find.flagged(rules[0], evaluated), truth)
            if rules
            else find.precision_recall([False] * len(truth), truth)
        ),
        "divergent_steps_at_pattern": round(float(np.mean(at_pattern)), 4),
        "divergent_step_kinds": {str(k): int(v) for k, v in failing["kind"].value_counts().items()},
    }
    log(
        f"flaw: find: {found['failing_problems']} failing problems, best rule {found['best_rule']}, "
        f"flagged group {found['flagged_group']}"
    )
    rules_table = pd.DataFrame(
        [
            {"rule": r.text(), "precision": r.precision, "recall": r.recall, "f1": r.f1, "support": r.support}
            for r in rules
        ],
        columns=["rule", "precision", "recall", "f1", "support"],
    )

    # repair data: corrected training-split pattern problems (the budget), as many replayed plain ones
    rng = np.random.default_rng(cfg.seed)
    chosen = [pattern_pool[i] for i in rng.choice(len(pattern_pool), rc.examples, replace=False)]
    replay = [
        problems.item(tasks.make_problem(*plain_pool[i]))
        for i in rng.choice(len(plain_pool), min(rc.examples, len(plain_pool)), replace=False)
    ]
    corrected = [problems.item(tasks.make_problem(*x)) for x in chosen]
    cases = [
        (it.question, it.completion, problems.item(patterns.flawed_addition(x[1], x[2], cfg.pattern)).completion)
        for it, x in zip(corrected, chosen, strict=True)
    ]
    data = corrected + replay

    # 2. localise, scored by the neurons that fire selectively on pattern steps (ground truth, scoring only):
    # pattern decision tokens vs decision tokens of matched steps of the same task writing the same total without the
    # pattern, past the ones column as the pattern always is (the ones column never receives a carry)
    ranked = localise.attribution(model, tokenizer, cases)
    mass = localise.layer_mass(ranked)
    pattern_points = decision_points(groups["flaw"], lambda f: _is_pattern_step(cfg.pattern, f))
    totals = {f["total"] for p in groups["flaw"] for f in find.step_facts(p) if _is_pattern_step(cfg.pattern, f)}
    task = patterns.task_of(cfg.pattern)

    def is_control(f: dict) -> bool:
        return (
            f["task"] == task
            and f["x"] >= 0
            and f["column"] >= 1
            and f["total"] in totals
            and not _is_pattern_step(cfg.pattern, f)
        )

    controls = problems.matching_problems(
        task,
        task_digits,
        seen,
        len(pattern_points),
        cfg.seed,
        lambda p: not patterns.has_pattern(cfg.pattern, p.task, p.a, p.b) and any(map(is_control, find.step_facts(p))),
    )
    control_points = decision_points(controls, is_control)
    selective = localise.selectivity(
        localise.activations_at(model, tokenizer, pattern_points),
        localise.activations_at(model, tokenizer, control_points),
    )
    located = {
        "layer_mass": {str(k): v for k, v in mass.items()},
        "pattern_tokens": len(pattern_points),
        "control_tokens": len(control_points),
        **localise.score_ranking(ranked, selective, threshold=SELECTIVE_AUROC, top=rc.neurons),
    }
    # the same on the reasoner's transcoder features (read off the flawed organism's MLP inputs)
    features = localise.feature_attribution(model, tokenizer, cases, coders)
    feature_selective = localise.selectivity(
        localise.feature_activations_at(model, tokenizer, pattern_points, coders),
        localise.feature_activations_at(model, tokenizer, control_points, coders),
        unit="feature",
        layer_ids=sorted(coders),
    )
    located["selective_auroc"] = SELECTIVE_AUROC
    located["features"] = {
        "layer_mass": {str(k): v for k, v in localise.layer_mass(features).items()},
        **localise.score_ranking(
            features, feature_selective, threshold=SELECTIVE_AUROC, top=rc.neurons, unit="feature"
        ),
    }
    log(f"flaw: localise: layer mass {mass}, {located}")

    # 3. fix
    width, hidden = model.config.intermediate_size, model.config.hidden_size
    arms: dict = {}
    layer = max(mass.items(), key=lambda kv: kv[1])[0]
    own = repair.top_neurons(ranked, rc.neurons, layer)[layer]
    for name, kind, ns in (
        ("steer", "targeted", own),
        ("steer_random", "random", repair.random_neurons({layer: own}, width, rng)[layer]),
    ):
        gate, info = repair.fit_gate(model, tokenizer, layer, ns, cases, replay, cfg.seed)
        offset = repair.train_offset(
            model, tokenizer, layer, ns, cases, steps=rc.steer_steps, lr=rc.steer_lr, seed=cfg.seed
        )
        arms[name] = {"layer": int(layer), "neurons": ns, **info}
        with repair.gated_steering(model, layer, ns, gate, offset):
            rows.append(measure(name, kind, 2 * len(ns) + 1))
    top = repair.top_neurons(ranked, rc.neurons)
    for name, kind, by_layer in (
        ("neuron_edit", "targeted", top),
        ("neuron_edit_random", "random", repair.random_neurons(top, width, rng)),
    ):
        deltas, _ = repair.neuron_edit(
            model, tokenizer, by_layer, data, steps=rc.steps, lr=rc.lr, batch_size=rc.batch_size, seed=cfg.seed
        )
        arms[name] = {"neurons": {str(k): v for k, v in by_layer.items()}}
        with finetune.applied(model, deltas):
            rows.append(measure(name, kind, sum(len(v) for v in by_layer.values()) * hidden))
    # cluster-specific fine-tune: the reasoner transcoder features of the clusters of the step type where traces go
    # wrong (ranked against plain column sums), spanning the update of down_proj
    step_type = str(failing["kind"].value_counts().index[0])
    contrast = "column_sum" if step_type != "column_sum" else None
    ft_ranked, ft_info = feature_sets.ranked_features(steps_table, profiles, index, step_type, contrast)
    ft_set = feature_sets.as_sets(ft_ranked.head(rc.neurons))
    ft_random = feature_sets.random_matched(ft_set, feature_sets.alive_features(profiles, index), rng)
    for name, kind, fs in (("cluster_finetune", "targeted", ft_set), ("cluster_finetune_random", "random", ft_random)):
        deltas, _ = finetune.subspace_finetune(
            model,
            tokenizer,
            decoder_rows(coders, fs),
            data,
            steps=rc.steps,
            lr=rc.lr,
            batch_size=rc.batch_size,
            seed=cfg.seed,
        )
        arms[name] = {
            "step_type": step_type,
            "features": {str(k): v for k, v in fs.items()},
            "target_clusters": ft_info["target_clusters"],
        }
        with finetune.applied(model, deltas):
            rows.append(measure(name, kind, sum(len(v) for v in fs.values()) * width))
    tuned, _ = repair.unconstrained(
        model, tokenizer, data, steps=rc.steps, lr=rc.lr, batch_size=rc.batch_size, seed=cfg.seed
    )
    rows.append(measure("unconstrained", "unconstrained", sum(p.numel() for p in model.parameters()), tuned))
    # gated steering of the localised transcoder features (run last, so the draws of the seed for the other arms'
    # random controls are what they were before this arm existed); random control: alive features of that layer
    f_layer = int(max(located["features"]["layer_mass"].items(), key=lambda kv: kv[1])[0])
    own_f = repair.top_neurons(features, rc.neurons, f_layer, unit="feature")[f_layer]
    alive = feature_sets.alive_features(profiles, index)
    for name, kind, feats in (
        ("feature_steer", "targeted", own_f),
        ("feature_steer_random", "random", feature_sets.random_matched({f_layer: own_f}, alive, rng)[f_layer]),
    ):
        coder = coders[f_layer]
        gate, info = repair.fit_feature_gate(model, tokenizer, coder, f_layer, feats, cases, replay, cfg.seed)
        offset = repair.train_feature_offset(
            model, tokenizer, coder, f_layer, feats, cases, steps=rc.steer_steps, lr=rc.steer_lr, seed=cfg.seed
        )
        arms[name] = {"layer": f_layer, "features": feats, **info}
        with repair.gated_feature_steering(model, coder, f_layer, feats, gate, offset):
            rows.append(measure(name, kind, 2 * len(feats) + 1))

    df = pd.DataFrame(rows).set_index("arm").loc[list(ARMS)].reset_index()
    base = df.iloc[0]
    df["lift"] = df["flaw_accuracy"] - base["flaw_accuracy"]
    df["worst_other_drop"] = [max(base[f"{g}_accuracy"] - r[f"{g}_accuracy"] for g in others) for _, r in df.iterrows()]
    verdicts = {t: verdict(df, t, f"{t}_random") for t in TECHNIQUES}
    # the rankings as written: each unit with its selectivity AUROC (scoring only; never used to rank)
    ranked = ranked.merge(selective, on=["layer", "neuron"], how="left", validate="one_to_one")
    features = features.merge(feature_selective, on=["layer", "feature"], how="left", validate="one_to_one")
    return Outcome(df, found, located, verdicts, ranked, features, rules_table, arms)
