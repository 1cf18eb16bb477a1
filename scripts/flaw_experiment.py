"""Find and fix the planted flaw on the built organisms (issue 17, not yet a DVC stage): one command, one report.

    python scripts/flaw_experiment.py --out /tmp/flaw            # needs `dvc repro` built (reasoner, transcoders, clusters)

Trains the flawed organism (the reasoner fine-tuned on traces that drop the carry through a 9-column) unless
--flawed names one, finds the failing group from its graded traces, localises it to MLP neurons, repairs it with
three techniques against random controls and an unconstrained fine-tune, and writes report.json + report.md.
Not part of the pipeline yet: its outputs are not hashed, and its knobs are the arguments below, not params.yaml.
"""

import r1interp  # noqa: F401  first import: pins deterministic numerics before torch/numpy load

import argparse
import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from r1interp import chat, paths
from r1interp.flaw import find, localise, patterns, problems, repair
from r1interp.flaw.organism import train_flawed
from r1interp.flaw.problems import operands
from r1interp.models import load_model, model_spec
from r1interp.organism import tasks
from r1interp.organism.evaluate import generate
from r1interp.reasoning import benchmark, feature_sets, finetune
from r1interp.reasoning.interventions import decoder_rows
from r1interp.reasoning.steps import feature_index
from r1interp.transcoders import SET_ROOT, load_coders

PATTERN = "carry_through_nine"


def args_():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--flawed", type=Path, help="an already trained flawed organism (default: train into OUT/flawed)")
    p.add_argument("--share", type=float, default=1.0)
    p.add_argument("--train-steps", type=int, default=150)
    p.add_argument("--per-group", type=int, default=100)
    p.add_argument("--examples", type=int, default=64, help="corrected pattern problems (the repair budget)")
    p.add_argument("--neurons", type=int, default=16)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--steer-steps", type=int, default=200)
    p.add_argument("--steer-lr", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def digit_char(text: str, line: str) -> int:
    """Character index of the digit after 'write ' in `line` inside `text` (the decision token's character)."""
    return text.index(line) + line.index("write ") + len("write ")


def main():
    a = args_()
    if not 0 < a.share <= 1:
        raise SystemExit(f"--share: {a.share} is outside (0, 1]")
    a.out.mkdir(parents=True, exist_ok=True)
    corpus = pd.read_parquet(paths.CORPUS_PARQUET)
    train_rows = corpus[corpus["split"] == "train"]
    report: dict = {"pattern": PATTERN, "share": a.share, "args": {k: str(v) for k, v in vars(a).items()}}
    pool = [(t, *operands(i)) for t, i in zip(train_rows["task"], train_rows["id"], strict=True)]
    pattern_pool = [x for x in pool if patterns.has_pattern(PATTERN, *x)]
    if a.examples > len(pattern_pool):
        raise SystemExit(f"--examples: {a.examples} corrected examples asked, the training split has {len(pattern_pool)} "
                         "pattern problems")
    flawed_dir = a.flawed or a.out / "flawed"
    if not flawed_dir.exists():
        flaw = SimpleNamespace(pattern=PATTERN, share=a.share, seed=a.seed, organism=SimpleNamespace(
            steps=a.train_steps, lr=3e-3, batch_size=32, warmup_steps=20, weight_decay=0.0, final_lr_fraction=0.05, enrich=0.25))
        started = time.perf_counter()
        log = train_flawed(corpus, flaw, model_spec("organism", "reasoner").local_dir, flawed_dir)
        report["organism"] = {k: v for k, v in log.items() if k != "loss_curve"} | {"seconds": round(time.perf_counter() - started, 1)}
    lm = load_model(flawed_dir)
    model, tok = lm.model, lm.tokenizer

    seen = problems.seen_problems(train_rows)
    digits = {"add": (2, 3), "mul": (2, 3)}
    groups = problems.evaluation_groups(PATTERN, digits, seen, a.per_group, a.seed)
    items = {g: [problems.item(p) for p in v] for g, v in groups.items()}

    def measure(name: str, kind: str, params_changed: int, m=None) -> dict:
        acc = benchmark.accuracy(m or model, tok, items, max_new_tokens=160, batch_size=400)
        nll = benchmark.gold_nll(m or model, tok, items["flaw"], 64)
        row = {"arm": name, "kind": kind, "params_changed": params_changed, "flaw_gold_nll": round(nll, 4),
               **{f"{g}_{k}": r[k] for g, r in acc.items() for k in ("accuracy", "ci_low", "ci_high")}}
        print(name, {g: r["accuracy"] for g, r in acc.items()}, flush=True)
        return row

    rows = [measure("unmodified", "none", 0)]

    # find: graded fresh problems, first divergent steps, rule search (no ground truth)
    disc = problems.discovery_problems({"add": digits["add"]}, seen, 300, a.seed) + problems.discovery_problems(
        {"mul": digits["mul"]}, seen, 100, a.seed)
    completions = generate(model, tok, [p.prompt for p in disc], max_new_tokens=160, batch_size=400)
    table = find.step_table(disc, completions)
    rules = find.search_rules(table, max_conditions=2, min_support=5)
    if not rules:
        raise SystemExit("find: the flawed organism fails no discovery problem: nothing to find")
    all_eval = [p for v in groups.values() for p in v]
    truth = [patterns.has_pattern(PATTERN, p.task, p.a, p.b) for p in all_eval]
    failing = table[table["diverges"]]
    div_truth = [patterns.carry_through_nine(patterns.Column(int(r.column), int(r.x), int(r.y), int(r.carry_in)))
                 if r.task == "add" and r.x >= 0 else False for r in failing.itertuples()]
    report["find"] = {"discovery_problems": len(disc), "failing": int(failing["problem"].nunique()),
                      "rules": [{"rule": r.text(), "precision": r.precision, "recall": r.recall, "f1": r.f1} for r in rules[:5]],
                      "flagged_group_vs_truth": find.precision_recall(find.flagged(rules[0], all_eval), truth),
                      "divergent_steps_at_pattern_column": round(float(np.mean(div_truth)), 4),
                      "divergent_step_kinds": failing["kind"].value_counts().to_dict()}
    print(json.dumps(report["find"], indent=1), flush=True)

    # repair data: corrected training problems the model gets wrong, plus replay
    rng = np.random.default_rng(a.seed)
    chosen = [pattern_pool[i] for i in rng.choice(len(pattern_pool), a.examples, replace=False)]
    plain = [x for x in pool if not patterns.has_pattern(PATTERN, *x)]
    replay = [problems.item(tasks.make_problem(*plain[i])) for i in rng.choice(len(plain), a.examples, replace=False)]
    corrected = [problems.item(tasks.make_problem(*x)) for x in chosen]
    cases = [(it.question, it.completion, problems.item(patterns.flawed_addition(x[1], x[2], PATTERN)).completion)
             for it, x in zip(corrected, chosen, strict=True)]

    # localise
    ranked = localise.attribution(model, tok, cases)
    mass = localise.layer_mass(ranked)

    def decision_points(probs, pick):
        out = []
        for p in probs:
            text = chat.prompt_text(p.prompt) + problems.item(p).completion
            facts = find.step_facts(p)
            idx = next((i for i, f in enumerate(facts) if pick(f)), None)
            if idx is not None:
                out.append((text, digit_char(text, p.steps[idx].text)))
        return out

    is_pat = lambda f: f["task"] == "add" and f["carry_in"] == 1 and f["op_result"] == 9  # noqa: E731  scoring only
    # matched control: columns that also write 0 and carry 1, but from digits summing to 10 with no carry in (the
    # same token and the same right continuation; only the carried-through-9 part differs)
    # (tens column or higher, as the pattern always is: the ones column never receives a carry)
    is_ctrl = lambda f: f["task"] == "add" and f["carry_in"] == 0 and f["op_result"] == 10 and f["column"] >= 1  # noqa: E731
    sel = localise.selectivity(localise.activations_at(model, tok, decision_points(groups["flaw"], is_pat)),
                               localise.activations_at(model, tok, decision_points(groups["add_carry"], is_ctrl)))
    report["localise"] = {"layer_mass": mass, "top": ranked.head(10).round(4).to_dict("records"),
                          "score": localise.score_ranking(ranked, sel, threshold=0.9, top=a.neurons)}
    print(json.dumps(report["localise"]["score"]), mass, flush=True)

    data = corrected + replay
    width = model.config.intermediate_size
    # 1. neuron edit
    top = repair.top_neurons(ranked, a.neurons)
    for name, kind, ns in (("neuron_edit", "targeted", top), ("neuron_edit_random", "random", repair.random_neurons(top, width, rng))):
        deltas, _ = repair.neuron_edit(model, tok, ns, data, steps=a.steps, lr=a.lr, batch_size=32, seed=a.seed)
        with finetune.applied(model, deltas):
            rows.append(measure(name, kind, sum(len(v) for v in ns.values()) * model.config.hidden_size))
    # 2. gated steering in the layer with the most attribution
    layer = max(mass.items(), key=lambda kv: kv[1])[0]
    own = repair.top_neurons(ranked, a.neurons, layer)[layer]
    gates = {}
    for name, kind, ns in (("steer", "targeted", own), ("steer_random", "random", repair.random_neurons({layer: own}, width, rng)[layer])):
        gate, info = repair.fit_gate(model, tok, layer, ns, cases, replay, a.seed)
        offset = repair.train_offset(model, tok, layer, ns, cases, steps=a.steer_steps, lr=a.steer_lr, seed=a.seed)
        gates[name] = info
        with repair.gated_steering(model, layer, ns, gate, offset):
            rows.append(measure(name, kind, 2 * len(ns) + 1) | {f"gate_{k}": v for k, v in info.items()})
    # 3. cluster-specific fine-tune, aimed at the step type where traces go wrong
    step_type = failing["kind"].value_counts().index[0]
    coders = load_coders(SET_ROOT / "reasoner" / "sparsify")
    index = feature_index(coders)
    steps_table, profiles = pd.read_parquet(paths.CLUSTER_STEPS), np.load(paths.CLUSTER_PROFILES)
    ft_ranked, _ = feature_sets.ranked_features(steps_table, profiles, index, step_type, "column_sum" if step_type != "column_sum" else None)
    ft_set = feature_sets.as_sets(ft_ranked.head(a.neurons))
    ft_random = feature_sets.random_matched(ft_set, feature_sets.alive_features(profiles, index), rng)
    for name, kind, fs in (("cluster_finetune", "targeted", ft_set), ("cluster_finetune_random", "random", ft_random)):
        deltas, _ = finetune.subspace_finetune(model, tok, decoder_rows(coders, fs), data, steps=a.steps, lr=a.lr,
                                               batch_size=32, seed=a.seed)
        with finetune.applied(model, deltas):
            rows.append(measure(name, kind, sum(len(v) for v in fs.values()) * width))
    tuned, _ = repair.unconstrained(model, tok, data, steps=a.steps, lr=a.lr, batch_size=32, seed=a.seed)
    rows.append(measure("unconstrained", "unconstrained", sum(p.numel() for p in model.parameters()), tuned))

    df = pd.DataFrame(rows)
    base = df.iloc[0]
    others = [g for g in groups if g != "flaw"]
    df["lift"] = df["flaw_accuracy"] - base["flaw_accuracy"]
    df["worst_other_drop"] = [max(base[f"{g}_accuracy"] - r[f"{g}_accuracy"] for g in others) for _, r in df.iterrows()]
    verdicts = {}
    for tech in ("neuron_edit", "steer", "cluster_finetune"):
        t, c = df[df["arm"] == tech].iloc[0], df[df["arm"] == f"{tech}_random"].iloc[0]
        verdicts[tech] = {"lift_ge_30": bool(t["lift"] >= 0.30), "ci_above_unmodified": bool(t["flaw_ci_low"] > base["flaw_ci_high"]),
                          "ci_above_random": bool(t["flaw_ci_low"] > c["flaw_ci_high"]),
                          "no_group_drops_over_2": bool(t["worst_other_drop"] <= 0.02 + 1e-9)}
        verdicts[tech]["meets_bar"] = all(verdicts[tech].values())
    report["repair"] = {"rows": df.round(4).to_dict("records"), "verdicts": verdicts, "gates": gates, "steer_layer": layer,
                        "cluster_step_type": step_type}
    (a.out / "report.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    cols = ["arm", "kind", "params_changed", "flaw_accuracy", "flaw_ci_low", "flaw_ci_high", "lift", "worst_other_drop",
            *[f"{g}_accuracy" for g in others], "flaw_gold_nll"]
    (a.out / "report.md").write_text(df[cols].round(3).to_markdown(index=False) + "\n\n" + json.dumps(verdicts, indent=1) + "\n")
    print(df[cols].round(3).to_markdown(index=False))
    print(json.dumps(verdicts, indent=1))


if __name__ == "__main__":
    main()
