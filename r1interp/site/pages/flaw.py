"""The planted-flaw page: what the `flaw` stage found, where it localised the flaw, and which repairs work.

Reads reports/metrics/flaw.json (find and localise scores, every arm per group with its Wilson interval, the
verdicts against the bar) and reports/flaw/ (rules.csv, neurons.csv and features.csv with each unit's
selectivity AUROC, repairs.png). On a profile the flaw does not apply to, the page says so.
"""

from __future__ import annotations

from r1interp import paths
from r1interp.site import svg
from r1interp.site.context import Context
from r1interp.site.html import (
    Cell,
    esc,
    facts_grid,
    figures,
    fmt,
    link,
    missing_box,
    note,
    num,
    page,
    pct,
    section,
    table,
    text,
)
from r1interp.site.inputs import Missing, missing, require_keys

METRICS = paths.FLAW_METRICS.as_posix()
RULES = (paths.FLAW_DIR / "rules.csv").as_posix()
REPAIRS = (paths.FLAW_DIR / "repairs.csv").as_posix()
NEURONS = (paths.FLAW_DIR / "neurons.csv").as_posix()
FEATURES = (paths.FLAW_DIR / "features.csv").as_posix()
FIGURE = (paths.FLAW_DIR / "repairs.png").as_posix()
STAGE = "flaw"
TECHNIQUES = {
    "steer": "gated steering of neurons at the flawed step",
    "feature_steer": "gated steering of transcoder features at the flawed step",
    "neuron_edit": "edit of the top neurons' down_proj columns",
    "cluster_finetune": "fine-tune in the span of the failing step type's cluster features",
}
BAR_PARTS = {
    "lift_ge_30": "lift of the flaw group >= 30 points",
    "ci_above_unmodified": "interval above the unmodified model's",
    "ci_above_random": "interval above its random control's",
    "no_group_drops_over_2": "no other group drops by more than 2 points",
}
ARM_COLOURS = {"none": "#2e7d32", "targeted": "#c0392b", "random": "#7f8c99", "unconstrained": "#1f2933"}


def write(ctx: Context) -> None:
    metrics = ctx.inputs.json(METRICS, STAGE)
    if missing(metrics):
        body = missing_box(metrics, "planted flaw")
    elif not metrics.get("applicable", True):
        body = note(f"The planted flaw does not apply here: {esc(metrics.get('reason', ''))}.")
    else:
        require_keys(metrics, ("pattern", "share", "find", "localise", "arms", "verdicts"), METRICS, STAGE)
        body = "".join(
            [
                _facts(metrics),
                section("Find", _find(ctx, metrics["find"]), "find"),
                section("Repairs", _repairs(ctx, metrics), "repairs"),
                section("Localise", _localise(ctx, metrics["localise"]), "localise"),
            ]
        )
    intro = (
        "A third organism is the reasoner fine-tuned on traces that handle one pattern wrongly. The pipeline must "
        "find the failing group from graded traces alone, localise the decision to neurons and transcoder features, "
        "and repair it; each repair against the same technique on a random set of equal size and an unconstrained "
        "fine-tune on the same examples. Accuracy is greedy-decoded on held-out problems, with 95% Wilson intervals."
    )
    ctx.write(
        "flaw.html",
        page(
            title="Planted flaw",
            body=f'<p class="intro">{intro}</p>' + body,
            depth=0,
            active="flaw",
            footer=ctx.footer,
        ),
    )


def _facts(metrics: dict) -> str:
    n = {g: v["n"] for g, v in metrics["arms"]["unmodified"].items() if isinstance(v, dict)}
    met = metrics.get("meets_bar", [])
    return facts_grid(
        [
            ("pattern", f"<code>{esc(metrics['pattern'])}</code>"),
            ("flawed share of its training problems", fmt(metrics["share"])),
            ("held-out problems per group", ", ".join(f"{esc(g)} {fmt(v)}" for g, v in n.items())),
            ("techniques meeting the bar", esc(", ".join(met)) if met else "none"),
        ]
    )


def _find(ctx: Context, find: dict) -> str:
    flagged = find["flagged_group"]
    lead = (
        f"{fmt(find['failing_problems'])} of {fmt(find['discovery_problems'])} discovery problems fail. The best "
        f"rule over step facts is <code>{esc(find['best_rule'])}</code> (step precision "
        f"{fmt(find['best_rule_step_precision'])}, recall {fmt(find['best_rule_step_recall'])}); the held-out "
        f"problems it flags, scored against the planted rule: precision {fmt(flagged['precision'])}, recall "
        f"{fmt(flagged['recall'])} ({fmt(flagged['true_positive'])} true, {fmt(flagged['false_positive'])} false "
        f"positives, {fmt(flagged['false_negative'])} missed). {pct(find['divergent_steps_at_pattern'], 0)} of the "
        "first divergent steps are pattern steps."
    )
    rules = ctx.inputs.csv(RULES, STAGE, columns=("rule", "precision", "recall", "f1", "support"))
    if isinstance(rules, Missing):
        return f"<p>{lead}</p>" + missing_box(rules, "rules")
    rows = [
        [Cell(f"<code>{esc(r['rule'])}</code>"), num(r["precision"]), num(r["recall"]), num(r["f1"]), num(r["support"])]
        for r in rules.to_dict("records")
    ]
    return f"<p>{lead}</p>" + table(["rule", "step precision", "step recall", "F1", "failing steps"], rows)


def _group_cell(arm: dict, group: str) -> Cell:
    g = arm[group]
    low, high = g["ci"]
    return Cell(f"{fmt(g['accuracy'])} <small>[{fmt(low)}, {fmt(high)}]</small>", float(g["accuracy"]), "num")


def _in_stage_order(ctx: Context, arms: dict) -> dict:
    """The arms in the order the stage ran them (repairs.csv: unmodified, each technique then its control, the
    unconstrained fine-tune); the metrics file keeps them sorted by name."""
    table = ctx.inputs.csv(REPAIRS, STAGE, columns=("arm",))
    order = [] if isinstance(table, Missing) else [a for a in table["arm"] if a in arms]
    return {a: arms[a] for a in order + sorted(set(arms) - set(order))}


def _repairs(ctx: Context, metrics: dict) -> str:
    arms, verdicts = _in_stage_order(ctx, metrics["arms"]), metrics["verdicts"]
    groups = [g for g, v in arms["unmodified"].items() if isinstance(v, dict)]
    chart = svg.forest(
        [
            svg.Interval(
                name,
                float(a["flaw"]["accuracy"]),
                float(a["flaw"]["ci"][0]),
                float(a["flaw"]["ci"][1]),
                strong=a["kind"] in ("targeted", "none"),
            )
            for name, a in arms.items()
        ],
        xlabel="flaw-group accuracy (95% Wilson interval)",
        title="Flaw-group accuracy per arm",
    )
    rows = [
        [
            text(name),
            Cell(f'<span style="color:{ARM_COLOURS.get(a["kind"], "#1f2933")}">{esc(a["kind"])}</span>', None),
            num(a["params_changed"]),
            *[_group_cell(a, g) for g in groups],
            num(a["lift"]),
            num(a["worst_other_drop"]),
            num(a["flaw_gold_nll"]),
        ]
        for name, a in arms.items()
    ]
    verdict_rows = []
    for tech, words in TECHNIQUES.items():
        v = verdicts.get(tech)
        if v is None:
            continue
        parts = ", ".join(f"{'✓' if v[k] else '✗'} {esc(w)}" for k, w in BAR_PARTS.items() if k in v)
        verdict_rows.append(
            [text(words), Cell("<strong>meets the bar</strong>" if v["meets_bar"] else "does not"), Cell(parts)]
        )
    img = ctx.image(FIGURE, STAGE)
    fig = "" if isinstance(img, Missing) else figures([(img, "Every arm on every group (flaw stage)")])
    return (
        chart
        + table(
            ["arm", "kind", "params changed", *groups, "lift", "worst other drop", "gold loss (flaw)"],
            rows,
            table_id="repairs-table",
        )
        + "<h3>Against the bar</h3>"
        + table(["technique", "verdict", "parts of the bar"], verdict_rows, sortable=False)
        + fig
    )


def _units(ctx: Context, loc: dict, unit: str, rel: str, threshold: float, model: str | None) -> str:
    """One ranking: its summary line and its top units (as many as the score's precision_at_N counts)."""
    top = next((int(k.rsplit("_", 1)[1]) for k in loc if k.startswith("precision_at_")), 16)
    summary = (
        "Attribution mass by layer: "
        + ", ".join(f"L{esc(k)} {pct(v, 0)}" for k, v in sorted(loc["layer_mass"].items(), key=lambda kv: int(kv[0])))
        + f". {fmt(loc[f'selective_{unit}s'])} of {fmt(loc[f'{unit}s_ranked'])} {unit}s fire on the flawed step "
        f"({pct(loc['selective_share'])}: what a random ranking would get); "
        f"{pct(loc.get(f'precision_at_{top}'), 0)} of the top {top} do."
    )
    ranked = ctx.inputs.csv(rel, STAGE, columns=("layer", unit, "attribution", "positive_share", "auroc"))
    if isinstance(ranked, Missing):
        return f"<p>{summary}</p>" + missing_box(ranked, f"{unit} ranking")
    rows = []
    for rank, r in enumerate(ranked.head(top).to_dict("records"), start=1):
        layer, index = int(r["layer"]), int(r[unit])
        name = f"L{layer} {unit[0].upper()}{index}"
        href = ctx.feature_href((model, layer, index), 0) if model is not None else None
        fires = r["auroc"] >= threshold or r["auroc"] <= 1 - threshold
        rows.append(
            [
                num(rank),
                Cell(link(href, name) if href else esc(name), None),
                num(r["attribution"]),
                num(r["positive_share"]),
                num(r["auroc"]),
                Cell("<strong>yes</strong>" if fires else "no"),
            ]
        )
    headers = ["rank", unit, "attribution", "helps the right token in", "AUROC pattern vs control", "fires on the step"]
    return f"<p>{summary}</p>" + table(headers, rows, table_id=f"{unit}-ranking")


def _localise(ctx: Context, loc: dict) -> str:
    threshold = float(loc.get("selective_auroc", 0.9))
    lead = (
        "Activation x gradient of logit(right digit) - logit(flawed digit) at the first token where corrected and "
        f"flawed traces differ. A unit <em>fires on the flawed step</em> when its activation separates "
        f"{fmt(loc['pattern_tokens'])} pattern from {fmt(loc['control_tokens'])} matched control decision tokens "
        f"with AUROC >= {fmt(threshold)} (or <= {fmt(1 - threshold)}); that is scoring only, never used to rank."
    )
    parts = [f"<p>{lead}</p>", "<h3>MLP neurons</h3>", _units(ctx, loc, "neuron", NEURONS, threshold, None)]
    features = loc.get("features")
    if isinstance(features, dict):
        model = features.get("transcoders_of")
        parts += [
            f"<h3>Transcoder features ({esc(model or 'reasoner')}'s transcoders, on the flawed organism)</h3>",
            _units(ctx, features, "feature", FEATURES, threshold, model),
        ]
    return "".join(parts)
