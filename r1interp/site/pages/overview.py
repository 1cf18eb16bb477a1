"""The overview page (index.html): what was run (params, model profile), how good the pieces are (organism
accuracy, transcoders, labels, graph scores, data quality), and a card for every other page."""

from __future__ import annotations

import json
from pathlib import Path

from r1interp import paths
from r1interp.models import model_spec
from r1interp.site import svg
from r1interp.site.context import Context
from r1interp.site.html import Cell, esc, fmt, kv_table, missing_box, num, page, pct, section, table, text
from r1interp.site.inputs import Missing, missing

ORGANISM = paths.ORGANISM_METRICS.as_posix()
TRANSCODERS = paths.TRANSCODERS_METRICS.as_posix()
PER_LAYER = paths.TRANSCODERS_PER_LAYER.as_posix()
LABELS = paths.LABELS_METRICS.as_posix()
GRAPHS = paths.GRAPHS_METRICS.as_posix()
QUALITY = paths.QUALITY_METRICS.as_posix()
SPANS = ("all", "completion", "think", "answer")


def write(ctx: Context, cards: list[tuple[str, str, str, str, bool]]) -> None:
    """`cards`: (title, href, headline, what, built) for every other page."""
    parts = [
        _cards(cards),
        _run(ctx),
        _organism(ctx),
        _transcoders(ctx),
        _labels(ctx),
        _graphs(ctx),
        _quality(ctx),
        _params(ctx),
    ]
    profile = ctx.params.model.profile
    intro = (
        f"Mechanistic interpretability of a reasoning model against its base, profile <code>{esc(profile)}</code>: "
        "transcoders on every MLP, labeled features, attribution graphs and their motifs, reasoning-step clusters "
        "and interventions. Every number on this site is read from the pipeline's artifacts."
    )
    ctx.write(
        "index.html",
        page(
            title="r1interp report",
            body=f'<p class="intro">{intro}</p>' + "".join(parts),
            depth=0,
            active="overview",
            footer=ctx.footer,
        ),
    )


def _cards(cards) -> str:
    out = []
    for title, href, headline, what, built in cards:
        status = (
            '<span class="status-built">●</span>' if built else '<span class="status-missing">○ not built yet</span>'
        )
        out.append(
            f'<a class="card" href="{esc(href)}"><div class="what">{esc(title)} {status}</div>'
            f'<div class="big">{esc(headline)}</div><div class="what">{esc(what)}</div></a>'
        )
    return f'<div class="cards">{"".join(out)}</div>'


def _run(ctx: Context) -> str:
    profile = ctx.params.model.profile
    rows = []
    for role in ("reasoner", "base"):
        spec = model_spec(profile, role)
        cfg_path = ctx.inputs.path(str(spec.local_dir)) / "config.json"
        source = f"{spec.repo_id}@{spec.revision[:10]}" if spec.repo_id else "trained in the pipeline"
        if cfg_path.is_file():
            try:
                cfg = json.loads(cfg_path.read_text())
            except json.JSONDecodeError as exc:
                from r1interp.errors import ArtifactError

                raise ArtifactError(f"{cfg_path}: not valid JSON ({exc})") from None
            rows.append(
                [
                    text(role),
                    text(source),
                    num(cfg.get("num_hidden_layers")),
                    num(cfg.get("hidden_size")),
                    num(cfg.get("intermediate_size")),
                    num(cfg.get("num_attention_heads")),
                    num(cfg.get("vocab_size")),
                ]
            )
        else:
            rows.append(
                [
                    text(role),
                    text(source),
                    Cell('<span class="muted">not built yet</span>'),
                    text(""),
                    text(""),
                    text(""),
                    text(""),
                ]
            )
    tr = ctx.params.train
    width = tr.num_latents or f"{tr.expansion_factor} x hidden"
    body = table(
        ["model", "source", "layers", "hidden", "MLP width", "heads", "vocabulary"], rows, sortable=False
    ) + kv_table(
        [
            (
                "transcoders",
                f"skip transcoders on every MLP, {esc(width)} latents, TopK k = {tr.k}, models {esc(', '.join(tr.models))}",
            ),
            ("labeler", esc(ctx.params.labels.labeler)),
            (
                "comparisons",
                f"null model {esc(ctx.params.compare.null_model)}, {ctx.params.compare.bootstrap} bootstrap resamples",
            ),
        ]
    )
    return section("Run", body, "run")


def _organism(ctx: Context) -> str:
    doc = ctx.inputs.json(ORGANISM, "organism-eval")
    if missing(doc):
        return section("Model accuracy", missing_box(doc, "organism accuracy"), "accuracy")
    models = [m for m in ("reasoner", "base") if isinstance(doc.get(m), dict)]
    tasks = sorted({t for m in models for t in doc[m].get("accuracy", {})}, key=lambda t: (t == "overall", t))
    rows = [
        [text(m)]
        + [Cell(pct(doc[m]["accuracy"].get(t)), doc[m]["accuracy"].get(t), "num") for t in tasks]
        + [num(doc[m].get("final_loss"))]
        for m in models
    ]
    chart = svg.bars(
        tasks,
        [
            svg.BarSeries(m, [doc[m]["accuracy"].get(t) for t in tasks], color=svg.color(i))
            for i, m in enumerate(models)
        ],
        ylabel="accuracy",
        width=460,
        height=220,
    )
    body = (
        f'<div class="cols"><div>{table(["model"] + tasks + ["final loss"], rows, sortable=False)}'
        f'<p class="muted">Greedy-decoded held-out accuracy ({fmt(doc.get("heldout_problems"))} problems).</p></div>'
        f"<div>{chart}</div></div>"
    )
    return section("Model accuracy", body, "accuracy")


def _transcoders(ctx: Context) -> str:
    per_layer = ctx.inputs.json(PER_LAYER, "evaluate")
    summary = ctx.inputs.json(TRANSCODERS, "evaluate")
    if missing(per_layer) and missing(summary):
        return section("Transcoders", missing_box([per_layer, summary], "transcoder metrics"), "transcoders")
    parts = []
    if not missing(per_layer):
        models = list(dict.fromkeys(r["model"] for r in per_layer))
        layers = sorted({int(r["layer"]) for r in per_layer})
        by = {(r["model"], int(r["layer"])): r for r in per_layer}
        charts = []
        for key, label in (
            ("fvu", "fraction of variance unexplained"),
            ("dead_pct", "dead features (%)"),
            ("ce_increase", "CE increase spliced alone (nats)"),
        ):
            series = [
                svg.BarSeries(m, [by.get((m, lay), {}).get(key) for lay in layers], color=svg.color(i))
                for i, m in enumerate(models)
            ]
            charts.append(
                f"<div><h4>{esc(label)}</h4>{svg.bars([f'L{lay}' for lay in layers], series, width=400, height=220)}</div>"
            )
        parts.append('<div class="cols">' + "".join(charts) + "</div>")
        cols = [k for k in per_layer[0] if k not in ("model", "layer")]
        rows = [[text(r["model"]), num(r["layer"])] + [num(r.get(c)) for c in cols] for r in per_layer]
        parts.append(
            "<details><summary>Per-layer table</summary>"
            + table(["model", "layer"] + [c.replace("_", " ") for c in cols], rows)
            + "</details>"
        )
    if not missing(summary):
        rows = []
        for model, res in summary.items():
            if not isinstance(res, dict) or "all_layers" not in res:
                continue
            for span in SPANS:
                m = res["all_layers"].get(span)
                if isinstance(m, dict):
                    rows.append(
                        [
                            text(model),
                            text(span),
                            num(m.get("ce_clean")),
                            num(m.get("ce_spliced")),
                            num(m.get("ce_increase")),
                            num(m.get("kl")),
                            Cell(pct(m.get("frac_recovered_zero"), 2), m.get("frac_recovered_zero"), "num"),
                            Cell(pct(m.get("frac_recovered_mean"), 2), m.get("frac_recovered_mean"), "num"),
                            num(m.get("tokens")),
                        ]
                    )
        parts.append(
            "<h3>All layers spliced at once</h3>"
            + table(
                [
                    "model",
                    "span",
                    "CE clean",
                    "CE spliced",
                    "CE increase",
                    "KL",
                    "CE recovered vs zero-abl.",
                    "vs mean-abl.",
                    "n tokens",
                ],
                rows,
            )
        )
    return section("Transcoders", "".join(parts), "transcoders")


def _labels(ctx: Context) -> str:
    doc = ctx.inputs.json(LABELS, "labels")
    if missing(doc):
        return section("Feature labels", missing_box(doc, "label scores"), "labels")
    rows = []
    for model, res in doc.items():
        if not isinstance(res, dict) or "by_layer" not in res:
            continue
        for layer, m in [("all", res)] + sorted(res["by_layer"].items(), key=lambda kv: int(kv[0])):
            rows.append(
                [
                    text(model),
                    text(layer),
                    num(m.get("features")),
                    num(m.get("labeled")),
                    num(m.get("detection_balanced_accuracy")),
                    num(m.get("fuzzing_balanced_accuracy")),
                    Cell(
                        pct(m.get("detection_balanced_accuracy_ge_0.75"), 0),
                        m.get("detection_balanced_accuracy_ge_0.75"),
                        "num",
                    ),
                ]
            )
    body = (
        table(
            ["model", "layer", "features", "labeled", "detection bal. acc.", "fuzzing bal. acc.", "detection ≥ 0.75"],
            rows,
        )
        + f'<p class="muted">Labeler <code>{esc(doc.get("labeler", ""))}</code>; balanced accuracy on held-out windows, chance 0.5.</p>'
    )
    return section("Feature labels", body, "labels")


def _graphs(ctx: Context) -> str:
    doc = ctx.inputs.json(GRAPHS, "graphs")
    if missing(doc):
        return section("Attribution graphs", missing_box(doc, "graph scores"), "graph-scores")
    rows = []
    for model, res in doc.items():
        if not isinstance(res, dict) or model == "faithfulness":
            continue
        for kind in ("think", "answer"):
            m = res.get(kind)
            if isinstance(m, dict):
                rows.append(
                    [
                        text(model),
                        text(kind),
                        num(m.get("graphs")),
                        num(m.get("replacement")),
                        num(m.get("completeness")),
                        num(m.get("feature_nodes")),
                        num(m.get("links")),
                    ]
                )
    f = doc.get("faithfulness") or {}
    body = table(
        ["model", "graph kind", "graphs", "replacement", "completeness", "feature nodes (mean)", "links (mean)"], rows
    ) + (
        f'<p class="muted">Faithfulness: {fmt(f.get("edges"))} edges patched, max relative error {fmt(f.get("max_relative_error"))} '
        f"(tolerance {fmt(f.get('tolerance'))}).</p>"
        if f
        else ""
    )
    return section("Attribution graphs", body, "graph-scores")


def _quality(ctx: Context) -> str:
    doc = ctx.inputs.json(QUALITY, "quality")
    if missing(doc):
        return section("Data quality", missing_box(doc, "data quality"), "quality")
    overall = doc.get("overall", {})
    rows = [
        [
            text(name),
            text(s.get("artifact", "")),
            num(s.get("rows")),
            num(s.get("successful")),
            num(s.get("expectations")),
            Cell(
                "pass" if s.get("success") else "FAIL", int(bool(s.get("success"))), "ok" if s.get("success") else "bad"
            ),
            text(", ".join(map(str, s.get("failed", [])))),
        ]
        for name, s in doc.items()
        if name != "overall" and isinstance(s, dict)
    ]
    head = (
        f'<p><strong class="{"ok" if overall.get("success") else "bad"}">{fmt(overall.get("passed"))} of {fmt(overall.get("checks"))} '
        f"checks pass</strong> in {fmt(overall.get('suites'))} Great Expectations suites. "
        '<a href="quality/index.html">Open the Data Docs →</a></p>'
    )
    return section(
        "Data quality",
        head + table(["suite", "artifact", "rows", "passed", "checks", "result", "failed"], rows),
        "quality",
    )


def _params(ctx: Context) -> str:
    raw = ctx.inputs.text(ctx.params_file, "")
    if isinstance(raw, Missing):
        return ""
    return section(
        "Parameters",
        f"<details><summary>{esc(ctx.params_file)} ({len(raw.splitlines())} lines)</summary><pre>{esc(raw)}</pre></details>",
        "params",
    )


def quality_placeholder(ctx: Context, out: Path) -> None:
    """When the quality stage has not run, the nav's Data quality link still lands on a page."""
    from r1interp.site.html import page as page_

    body = missing_box(Missing(paths.QUALITY_INDEX.as_posix(), "quality"), "Great Expectations Data Docs")
    (out / "quality").mkdir(parents=True, exist_ok=True)
    html = page_(title="Data quality", body=body, depth=1, active="quality", footer=ctx.footer)
    (out / "quality" / "index.html").write_text(html, encoding="utf-8")
