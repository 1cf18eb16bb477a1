"""Feature pages: which features get one, and the page itself (label, scores, activations, examples, uses).

Which features: every transcoder feature that is a node of an attribution graph, every characteristic
feature of a reasoning-step cluster, every feature in the `critical` stage's tables, and the
`TOP_PER_LAYER` best-scored labels of each model and layer (detection balanced accuracy, then fuzzing).
That is ~1.4k of the 8k features on the organism pair (~20 MB of pages) and keeps the site under 30 MB; any other
feature is one command away (`r1interp features show MODEL LAYER FEATURE`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from r1interp import paths
from r1interp.models import model_spec
from r1interp.schemas import ExampleSchema, FeatureSchema, LabelSchema, validate
from r1interp.site import svg
from r1interp.site.context import Context, FeatureKey, feature_file
from r1interp.site.graphdata import Usage
from r1interp.site.html import Cell, esc, fmt, kv_table, link, missing_box, note, num, page, pct, section, table, text
from r1interp.site.inputs import Missing, missing
from r1interp.site.tokens import load_vocab, readable, render_window, token_text, visible

TOP_PER_LAYER = 10  # best-scored labels per model and layer that get a page even if nothing references them
TOP_EXAMPLES = 10  # top-activating windows shown
PER_DECILE = 1  # windows shown per activation decile of the uniform sample (more would push the site past 30 MB)
LABELS = paths.LABELS_PARQUET.as_posix()
SCORES = paths.SCORES_PARQUET.as_posix()
TAXONOMY = paths.TAXONOMY_JSON.as_posix()
CRITICAL_TABLES = {
    paths.CRITICAL_ATTRIBUTION_RANKING.as_posix(): "influence on correct answers",
    paths.CRITICAL_DECODER_ALIGNED.as_posix(): "decoder aligned with the fine-tuning change",
    paths.CRITICAL_ENCODER_ALIGNED.as_posix(): "encoder aligned with the fine-tuning change",
}
REASONS = {
    "graphs": "in an attribution graph",
    "clusters": "characteristic of a step cluster",
    "critical": "in the critical-weights tables",
    "top": f"top {TOP_PER_LAYER} label scores in its layer",
}


@dataclass
class Selection:
    reasons: dict[FeatureKey, set[str]] = field(default_factory=lambda: defaultdict(set))
    clusters: dict[FeatureKey, list[dict]] = field(default_factory=lambda: defaultdict(list))
    critical: dict[FeatureKey, list[tuple[str, int, dict]]] = field(default_factory=lambda: defaultdict(list))


def select(ctx: Context, graph_usage: dict[FeatureKey, list[Usage]]) -> Selection:
    sel = Selection()
    for key in graph_usage:
        sel.reasons[key].add("graphs")
    taxonomy = ctx.inputs.json(TAXONOMY, "clusters")
    if not missing(taxonomy):
        from r1interp.site.pages.taxonomy import check_taxonomy

        check_taxonomy(taxonomy)
        model = ctx.params.clusters.model
        for cl in taxonomy["clusters"]:
            for cf in cl.get("characteristic_features", []):
                key = (model, int(cf["layer"]), int(cf["feature"]))
                sel.reasons[key].add("clusters")
                sel.clusters[key].append(
                    {
                        "tag": cl["tag"],
                        "name": cl.get("name", ""),
                        "effect": cf.get("effect"),
                        "q_value": cf.get("q_value"),
                        "cluster": cl["cluster"],
                    }
                )
    for rel, what in CRITICAL_TABLES.items():
        df = ctx.inputs.csv(rel, "critical", columns=("layer", "feature"))
        if missing(df):
            continue
        for rank, row in enumerate(df.to_dict("records"), start=1):
            key = ("reasoner", int(row["layer"]), int(row["feature"]))  # the critical stage studies the reasoner
            sel.reasons[key].add("critical")
            sel.critical[key].append((what, rank, row))
    labels = ctx.inputs.parquet(LABELS, "labels", schema=LabelSchema)
    if not missing(labels):
        ok = labels[labels["status"] == "ok"].sort_values(
            ["detection_balanced_accuracy", "fuzzing_balanced_accuracy", "density"], ascending=[False, False, False]
        )
        for (model, _layer), grp in ok.groupby(["model", "layer"], sort=True):
            for r in grp.head(TOP_PER_LAYER).itertuples():
                sel.reasons[(str(model), int(r.layer), int(r.feature))].add("top")
    return sel


# -------------------------------------------------------------------------------------------- data


class _ModelData:
    """One model's tables, restricted to the selected features."""

    def __init__(self, ctx: Context, model: str, keys: list[FeatureKey]):
        self.model = model
        features_rel, examples_rel = paths.features_parquet(model).as_posix(), paths.examples_parquet(model).as_posix()
        self.features = ctx.inputs.parquet(features_rel, "activations", schema=FeatureSchema)
        if not missing(self.features):
            self.features = self.features.set_index(["layer", "feature"])
        wanted = pd.DataFrame([(k[1], k[2]) for k in keys], columns=["layer", "feature"])
        examples = ctx.inputs.parquet(examples_rel, "activations", filters=[("kind", "in", ["top", "quantile"])])
        if not missing(examples):
            examples = examples.merge(wanted, on=["layer", "feature"])
            examples = validate(examples, ExampleSchema, examples_rel)
            # plain records per feature: pages walk ~130 rows each, and pandas row access would dominate the build
            self.examples = defaultdict(list)
            for rec in examples.to_dict("records"):
                self.examples[(rec["layer"], rec["feature"])].append(rec)
        else:
            self.examples = examples
        self.vocab = (
            load_vocab(ctx.inputs.path(str(model_spec(ctx.params.model.profile, model).local_dir)))
            if model in ("reasoner", "base")
            else None
        )


def _confusion(ctx: Context) -> dict[tuple, dict[str, dict[str, int]]] | Missing:
    cols = ["model", "layer", "feature", "method", "truth", "prediction"]
    scores = ctx.inputs.parquet(SCORES, "labels", read_columns=cols, columns=tuple(cols))
    if missing(scores):
        return scores
    counts = scores.groupby(["model", "layer", "feature", "method", "truth", "prediction"]).size()
    out: dict[tuple, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for (model, layer, feature, method, truth, pred), n in counts.items():
        cell = {(True, True): "TP", (False, True): "FP", (True, False): "FN", (False, False): "TN"}[
            (bool(truth), bool(pred))
        ]
        out[(str(model), int(layer), int(feature))][str(method)][cell] = int(n)
    return out


# ------------------------------------------------------------------------------------------- pages


def write(ctx: Context, sel: Selection, graph_usage: dict[FeatureKey, list[Usage]]) -> None:
    order = {m: i for i, m in enumerate(ctx.params.train.models)}  # the reasoner first, as in params
    keys = sorted(sel.reasons, key=lambda k: (order.get(k[0], len(order)), k))
    ctx.feature_pages.update(keys)
    labels = ctx.inputs.parquet(LABELS, "labels", schema=LabelSchema)
    label_rows = (
        {}
        if missing(labels)
        else {(str(r["model"]), int(r["layer"]), int(r["feature"])): r for r in labels.to_dict("records")}
    )
    confusion = _confusion(ctx)
    index_rows = []
    by_model: dict[str, list[FeatureKey]] = defaultdict(list)
    for k in keys:
        by_model[k[0]].append(k)
    for model, mkeys in by_model.items():
        data = _ModelData(ctx, model, mkeys)
        for key in mkeys:
            stats = None
            if not missing(data.features) and (key[1], key[2]) in data.features.index:
                stats = data.features.loc[(key[1], key[2])]
            ctx.write(
                feature_file(key),
                _feature_page(ctx, key, sel, stats, label_rows.get(key), confusion, data, graph_usage.get(key, [])),
            )
            index_rows.append(_index_row(key, sel, stats, label_rows.get(key), graph_usage.get(key, [])))
    ctx.write("features/index.html", _index_page(ctx, sel, index_rows, labels))


def _feature_page(ctx, key, sel, stats, label, confusion, data: _ModelData, uses: list[Usage]) -> str:
    model, layer, feature = key
    parts = [f'<p class="chips">{"".join(f"<span>{esc(REASONS[r])}</span>" for r in sorted(sel.reasons[key]))}</p>']
    if _label_text(label):
        parts.append(f'<div class="label-big">{esc(_label_text(label))}</div>')
    elif label is not None:
        parts.append(note(f"No label: the labeler found no rule (status <code>{esc(label['status'])}</code>).", "warn"))
    elif missing(ctx.inputs.parquet(LABELS, "labels", schema=LabelSchema)):
        parts.append(missing_box(Missing(LABELS, "labels"), "labels"))
    else:
        parts.append(
            note(
                "Not labeled: too few distinct activating examples for the labeler "
                f"(labels.min_activating = {ctx.params.labels.min_activating}).",
                "warn",
            )
        )

    left = []
    if stats is not None:
        left.append(
            kv_table(
                [
                    ("fires on", f"{fmt(int(stats['count']))} of {fmt(int(stats['n_tokens']))} held-out tokens"),
                    ("density", fmt(stats["density"])),
                    ("max activation", fmt(stats["max_act"])),
                    ("mean activation (when firing)", fmt(stats["mean_act"])),
                    ("share inside <think>", pct(stats["think_fraction"])),
                ]
            )
        )
    elif missing(data.features):
        left.append(missing_box(data.features, "activation statistics"))
    if label is not None:
        left.append(_scores_table(label, None if missing(confusion) else confusion.get(key, {})))
    right = []
    ex = [] if missing(data.examples) else data.examples.get((layer, feature), [])
    if stats is not None:
        quant = [e["activation"] for e in ex if e["kind"] == "quantile"]
        top = [e["activation"] for e in ex if e["kind"] == "top"]
        if quant:
            right.append(
                "<h3>Activation distribution</h3>"
                + svg.histogram(
                    quant, bins=16, hi=float(stats["max_act"]), marks=top, xlabel="activation (when firing)"
                )
                + f'<p class="muted small">Histogram of a uniform sample of {len(quant)} firing tokens; ticks below: '
                f"the top {len(top)} examples.</p>"
            )
        toks = [visible(t).replace(" ", "␣") for t in stats["top_output_tokens"]]
        if len(toks):
            right.append(
                "<h3>Promoted tokens (decoder · unembedding)</h3>"
                + svg.hbars(toks, [float(v) for v in stats["top_output_logits"]], xlabel="logit")
            )
    parts.append(f'<div class="cols"><div>{"".join(left)}</div><div>{"".join(right)}</div></div>')
    parts.append(
        section(
            "Examples",
            _examples(ctx, ex, stats, data),
            "examples",
            "Held-out windows; the background is the activation relative to the feature's max, the outlined "
            "token is the one sampled; hover a token for its value.",
        )
    )
    parts.append(section("Where it appears", _uses(ctx, key, sel, uses), "uses"))
    title = f"{model} · layer {layer} · feature {feature}"
    return page(title=title, body="".join(parts), depth=1, active="features", footer=ctx.footer)


def _label_text(label: dict | None) -> str:
    """The label string; labels.parquet has null (NaN after pandas) where no rule was found."""
    value = (label or {}).get("label")
    return readable(value) if isinstance(value, str) else ""


def _scores_table(label: dict, confusion: dict) -> str:
    rows = []
    for method in ("detection", "fuzzing"):
        c = confusion.get(method, {})
        rows.append(
            [
                text(method),
                num(label.get(f"{method}_balanced_accuracy")),
                num(label.get(f"{method}_precision")),
                num(label.get(f"{method}_recall")),
                num(label.get(f"{method}_f1")),
                text(" / ".join(str(c.get(k, 0)) for k in ("TP", "FP", "TN", "FN")) if c else "–"),
            ]
        )
    head = (
        f'<h3>Label scores <span class="muted">({esc(label["labeler"])}, {esc(label["explainer_model"])})</span></h3>'
    )
    return (
        head
        + table(["task", "balanced acc.", "precision", "recall", "F1", "TP / FP / TN / FN"], rows, sortable=False)
        + (
            f'<p class="muted">Held-out: {label["n_test_activating"]} activating and {label["n_test_negative"]} silent windows '
            "(chance = 0.5).</p>"
        )
    )


def _examples(ctx: Context, ex: list[dict], stats, data: _ModelData) -> str:
    if missing(data.examples):
        return missing_box(data.examples, "example windows")
    if not ex:
        return note("No activating held-out windows were sampled for this feature.", "warn")
    scale = float(stats["max_act"]) if stats is not None else max(float(np.max(e["acts"])) for e in ex)
    out = []
    if data.vocab is None:
        out.append(note("Tokenizer not found: tokens are shown as ids. Build the model to see text.", "warn"))

    def win(e: dict, meta: str) -> str:
        tokens = [token_text(data.vocab, int(t)) for t in e["tokens"]]
        where = "think" if e["in_think"] else "answer"
        return (
            f"<p class=w><span class=m>{meta} · {e['activation']:.3g}<br>{where}</span>"
            f"<span>{render_window(tokens, e['acts'], scale, int(e['target']))}</span></p>"
        )

    top = sorted((e for e in ex if e["kind"] == "top"), key=lambda e: e["rank"])[:TOP_EXAMPLES]
    out.append(
        f'<div class="qhead">Top {len(top)} activations</div><div class="windows">'
        + "".join(win(e, f"#{e['rank'] + 1}") for e in top)
        + "</div>"
    )
    deciles: dict[int, list[dict]] = defaultdict(list)
    for e in ex:
        if e["kind"] == "quantile":
            deciles[int(e["quantile"])].append(e)
    if deciles:
        wins = []
        for q in sorted(deciles, reverse=True):
            grp = sorted(deciles[q], key=lambda e: -e["activation"])
            picks = sorted({min(len(grp) - 1, int((j + 0.5) * len(grp) / PER_DECILE)) for j in range(PER_DECILE)})
            wins += [win(grp[i], f"q{q + 1}") for i in picks]
        out.append(
            f'<div class="qhead">A uniform sample of firing tokens, {PER_DECILE} window(s) per activation decile '
            '(q10 = the strongest tenth, q1 = the weakest)</div><div class="windows">' + "".join(wins) + "</div>"
        )
    return "".join(out)


def _uses(ctx: Context, key: FeatureKey, sel: Selection, uses: list[Usage]) -> str:
    out = []
    if uses:
        rows = []
        for u in sorted(uses, key=lambda u: u.influence if u.influence is not None else 9):
            href = ctx.graph_href(u.slug, 1)
            g = link(f"{href}#node={u.node_id}", u.slug) if href else esc(u.slug)
            rows.append(
                [
                    Cell(g),
                    num(u.pos),
                    Cell(f"<code>{esc(visible(u.token))}</code>"),
                    num(u.activation),
                    num(u.influence),
                ]
            )
        out.append(
            f"<h3>In {len(uses)} attribution graph node(s)</h3>"
            + table(
                [
                    "graph (opens with the node selected)",
                    "position",
                    "token",
                    "activation",
                    "influence (lower = more important)",
                ],
                rows,
            )
        )
    for c in sel.clusters.get(key, []):
        out.append(
            f'<p>Characteristic of step cluster <a href="../taxonomy.html#cluster-{c["cluster"]}">{esc(c["tag"])}</a> '
            f'(effect {fmt(c["effect"])}, q {fmt(c["q_value"])}): <span class="muted">{esc(readable(c["name"])[:160])}</span></p>'
        )
    for what, rank, row in sel.critical.get(key, []):
        extra = ", ".join(
            f"{k.replace('_', ' ')} {fmt(v)}"
            for k, v in row.items()
            if k not in ("layer", "feature", "label", "chance", "top_singular_values_down")
            and isinstance(v, (int, float))
        )
        out.append(
            f'<p>Rank {rank} in <a href="../taxonomy.html#critical">{esc(what)}</a> <span class="muted">({esc(extra)})</span></p>'
        )
    return "".join(out) or '<p class="muted">Selected for its label scores only.</p>'


def _index_row(key, sel, stats, label, uses) -> list[Cell]:
    model, layer, feature = key
    lab = _label_text(label)
    return [
        Cell(link(f"{model}-L{layer}-F{feature}.html", f"L{layer} F{feature}"), layer * 100000 + feature),
        text(model),
        num(layer),
        Cell(esc(lab[:100] + ("…" if len(lab) > 100 else "")), None, "label-cell"),
        num((label or {}).get("detection_balanced_accuracy")),
        num((label or {}).get("fuzzing_balanced_accuracy")),
        num(None if stats is None else stats["density"]),
        num(None if stats is None else stats["max_act"]),
        Cell(
            pct(None if stats is None else stats["think_fraction"], 0),
            None if stats is None else float(stats["think_fraction"]),
            "num",
        ),
        num(len({u.slug for u in uses})),
        text(", ".join(sorted(sel.reasons[key]))),
    ]


def _index_page(ctx: Context, sel: Selection, rows: list, labels) -> str:
    counts = defaultdict(int)
    for rs in sel.reasons.values():
        for r in rs:
            counts[r] += 1
    rule = (
        "A feature gets a page when it is "
        + "; ".join(f"{esc(REASONS[r])} ({counts[r]})" for r in REASONS)
        + f". {len(rows)} pages in all. Any other feature: <code>r1interp features show MODEL LAYER FEATURE</code>."
    )
    body = [f'<p class="intro">{rule}</p>']
    if missing(labels):
        body.append(missing_box(labels, "feature labels"))
    if not rows:
        body.append(
            note(
                "No feature pages: nothing references a feature yet (graphs, clusters, critical and labels are "
                "all missing).",
                "missing",
            )
        )
    else:
        body.append(
            table(
                [
                    "feature",
                    "model",
                    "layer",
                    "label",
                    "detection",
                    "fuzzing",
                    "density",
                    "max act.",
                    "in <think>",
                    "graphs",
                    "why",
                ],
                rows,
                filterable=True,
                table_id="features-table",
            )
        )
    return page(title="Features", body="".join(body), depth=1, active="features", footer=ctx.footer)
