"""The reasoning-step taxonomy page: clusters of `<think>` steps, how traces move between them, and the
`critical` stage's view of which weights and features the fine-tune changed."""

from __future__ import annotations

import math

from r1interp import paths
from r1interp.errors import ArtifactError
from r1interp.site import svg
from r1interp.site.context import Context
from r1interp.site.html import Cell, esc, figures, fmt, kv_table, link, missing_box, num, page, section, table, text
from r1interp.site.inputs import missing, require_keys
from r1interp.site.tokens import readable

TAXONOMY = paths.TAXONOMY_JSON.as_posix()
METRICS = paths.CLUSTERS_METRICS.as_posix()
TRANSITIONS = paths.CLUSTER_TRANSITIONS.as_posix()
K_SELECTION = paths.CLUSTER_K_SELECTION.as_posix()
ENRICHMENT = paths.CLUSTER_ENRICHMENT.as_posix()
FIGURES = tuple(
    ((paths.CLUSTERS_DIR / name).as_posix(), caption)
    for name, caption in (
        ("transitions.png", "Transition graph (clusters stage)"),
        ("tree.png", "Similarity tree of cluster centroids"),
        ("layer_map.png", "Activation map: true step type x layer"),
        ("problem_feature_map.png", "Activation map: problem type x cluster feature group"),
    )
)
CRITICAL_METRICS = paths.CRITICAL_METRICS.as_posix()
CRITICAL_TABLES = (
    (
        paths.CRITICAL_ATTRIBUTION_RANKING.as_posix(),
        "Features ranked by influence on correct answers",
        ("graphs_present", "influence_correct", "influence_incorrect", "difference"),
    ),
    (
        paths.CRITICAL_DECODER_ALIGNED.as_posix(),
        "Decoder directions aligned with the MLP weight change",
        ("decoder_alignment", "encoder_alignment", "chance"),
    ),
    (
        paths.CRITICAL_ENCODER_ALIGNED.as_posix(),
        "Encoder directions aligned with the MLP weight change",
        ("encoder_alignment", "decoder_alignment", "chance"),
    ),
)
MIN_TRANSITION = 0.02  # transitions drawn in the diagram (all are in the matrix)


def short_label(label: str, limit: int = 110) -> str:
    """Offline labels list several n-gram rules; tables show the start, the full label is on hover and on the
    feature's page."""
    label = readable(label)
    if len(label) <= limit:
        return esc(label)
    return f'<span title="{esc(label)}">{esc(label[:limit].rstrip())}…</span>'


def check_taxonomy(doc) -> None:
    require_keys(doc, ("k", "clusters"), TAXONOMY, "clusters")
    if not isinstance(doc["clusters"], list):
        raise ArtifactError(f"{TAXONOMY}: 'clusters' must be a list", hint="rebuild it with `dvc repro clusters`")
    for i, cl in enumerate(doc["clusters"]):
        require_keys(cl, ("cluster", "tag", "size", "characteristic_features"), f"{TAXONOMY} clusters[{i}]", "clusters")
        for cf in cl["characteristic_features"]:
            require_keys(cf, ("layer", "feature"), f"{TAXONOMY} clusters[{i}].characteristic_features", "clusters")


def write(ctx: Context) -> None:
    body = [_clusters(ctx), _critical(ctx)]
    intro = (
        "Every held-out <code>&lt;think&gt;</code> trace is split into steps; each step is described by the mean "
        "activation of every transcoder feature, and steps are clustered. Names come from the labels of each "
        "cluster's most characteristic features; the generator's own step types are shown for comparison."
    )
    ctx.write(
        "taxonomy.html",
        page(
            title="Reasoning taxonomy",
            body=f'<p class="intro">{intro}</p>' + "".join(body),
            depth=0,
            active="taxonomy",
            footer=ctx.footer,
        ),
    )


def _clusters(ctx: Context) -> str:
    taxonomy = ctx.inputs.json(TAXONOMY, "clusters")
    if missing(taxonomy):
        return section("Step clusters", missing_box(taxonomy, "step clusters"), "clusters")
    check_taxonomy(taxonomy)
    model = ctx.params.clusters.model
    parts = []
    metrics = ctx.inputs.json(METRICS, "clusters")
    if not missing(metrics):
        km, ag = metrics.get("kmeans", {}), metrics.get("agglomerative", {})
        parts.append(
            kv_table(
                [
                    ("steps / problems", f"{fmt(metrics.get('steps'))} / {fmt(metrics.get('problems'))}"),
                    ("k", f'{fmt(metrics.get("k"))} <span class="muted">({esc(metrics.get("criterion", ""))})</span>'),
                    (
                        "ARI vs generator's step types",
                        f"k-means {fmt(km.get('ari_vs_true_step_types'))}, Ward {fmt(ag.get('ari_vs_true_step_types'))}",
                    ),
                    ("silhouette", f"k-means {fmt(km.get('silhouette'))}, Ward {fmt(ag.get('silhouette'))}"),
                    (
                        "bootstrap ARI (mean / min)",
                        f"k-means {fmt(km.get('bootstrap_ari_mean'))} / {fmt(km.get('bootstrap_ari_min'))}, "
                        f"Ward {fmt(ag.get('bootstrap_ari_mean'))} / {fmt(ag.get('bootstrap_ari_min'))}",
                    ),
                ]
            )
        )
    ks = ctx.inputs.csv(K_SELECTION, "clusters", columns=("k", "silhouette", "seed_stability"))
    if not missing(ks):
        series = [
            svg.LineSeries(c.replace("_", " "), ks["k"].tolist(), ks[c].tolist(), color=svg.color(i))
            for i, c in enumerate(("silhouette", "seed_stability", "ari_kmeans", "ari_agglomerative"))
            if c in ks
        ]
        parts.append(
            "<h3>Choosing k</h3>"
            + svg.lines(
                series,
                xlabel="k",
                ylabel="score",
                width=620,
                height=260,
                refs=[(ctx.params.clusters.min_stability, "min. seed stability", "#999")],
                marks=[(float(taxonomy["k"]), f"chosen k = {taxonomy['k']}")],
            )
        )
    summary = [
        [
            Cell(f'<a href="#cluster-{esc(cl["cluster"])}">{esc(cl["tag"])}</a>', int(cl["cluster"])),
            num(cl["size"]),
            num(cl.get("purity")),
            Cell(f"<code>{esc(cl.get('majority_true_type', ''))}</code>"),
            Cell(short_label(cl.get("name", ""), 150), None, "label-cell"),
        ]
        for cl in taxonomy["clusters"]
    ]
    parts.append(
        "<h3>Clusters</h3>"
        + table(["cluster", "steps", "purity", "mostly (generator's type)", "name (from feature labels)"], summary)
    )
    cards = []
    for cl in taxonomy["clusters"]:
        feats = []
        for cf in cl["characteristic_features"]:
            key = (model, int(cf["layer"]), int(cf["feature"]))
            href = ctx.feature_href(key, 0)
            name = f"L{key[1]} F{key[2]}"
            feats.append(
                [
                    Cell(link(href, name) if href else esc(name)),
                    num(cf.get("effect")),
                    num(cf.get("q_value")),
                    Cell(short_label(cf.get("label") or ""), None, "label-cell"),
                ]
            )
        types = cl.get("true_step_types") or {}
        chips = "".join(f"<span>{esc(t)}: {fmt(n)}</span>" for t, n in sorted(types.items(), key=lambda kv: -kv[1]))
        examples = "".join(f"<li><code>{esc(e)}</code></li>" for e in cl.get("examples", []))
        cards.append(
            f'<section class="cluster" id="cluster-{esc(cl["cluster"])}"><h3><span class="tag">{esc(cl["tag"])}</span>'
            f"{fmt(cl['size'])} steps · purity {fmt(cl.get('purity'))} · mostly <code>{esc(cl.get('majority_true_type', ''))}</code></h3>"
            f'<p class="muted">{esc(readable(cl.get("name", "")))}</p><p class="chips">{chips}</p>'
            f'<div class="cols"><div><h4>Example steps</h4><ul>{examples}</ul></div><div><h4>Characteristic features ({esc(model)})</h4>'
            + table(["feature", "effect", "q", "label"], feats)
            + "</div></div></section>"
        )
    parts.append("".join(cards))
    parts.append(_transitions(ctx, taxonomy))
    enrich = ctx.inputs.csv(ENRICHMENT, "clusters", columns=("group", "layer", "feature", "effect", "q_value"))
    if not missing(enrich):
        rows = []
        for group, grp in enrich.groupby("group", sort=True):
            for r in grp.sort_values("effect", ascending=False).head(5).to_dict("records"):
                key = (model, int(r["layer"]), int(r["feature"]))
                href = ctx.feature_href(key, 0)
                name = f"L{key[1]} F{key[2]}"
                rows.append(
                    [text(group), Cell(link(href, name) if href else esc(name)), num(r["effect"]), num(r["q_value"])]
                )
        parts.append(
            "<details><summary>Features enriched per true step type (top 5 each)</summary>"
            + table(["step type", "feature", "effect", "q"], rows)
            + "</details>"
        )
    figs = [(img, caption) for rel, caption in FIGURES if not missing(img := ctx.image(rel, "clusters"))]
    if figs:
        parts.append("<h3>Figures</h3>" + figures(figs))
    return section(f"Step clusters (k = {taxonomy['k']})", "".join(parts), "clusters")


def _transitions(ctx: Context, taxonomy: dict) -> str:
    tr = ctx.inputs.csv(TRANSITIONS, "clusters", columns=("from", "to", "count", "probability"))
    if missing(tr):
        return missing_box(tr, "transitions")
    clusters = {int(c["cluster"]): c for c in taxonomy["clusters"]}
    ids = sorted(clusters)
    n = len(ids)
    size, cx, cy, radius = 460, 230, 225, 160
    pos = {
        c: (
            cx + radius * math.cos(2 * math.pi * i / n - math.pi / 2),
            cy + radius * math.sin(2 * math.pi * i / n - math.pi / 2),
        )
        for i, c in enumerate(ids)
    }
    out = [
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9" markerHeight="9" '
        'markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
        '<path d="M0 0 L10 5 L0 10 z" fill="#2f6db5"/></marker></defs>'
    ]
    for r in tr.sort_values("probability").to_dict("records"):
        a, b, p = int(r["from"]), int(r["to"]), float(r["probability"])
        if p < MIN_TRANSITION or a not in pos or b not in pos:
            continue
        w = 0.8 + 7 * p
        tip = f"{clusters[a]['tag']} → {clusters[b]['tag']}: p {fmt(p)} ({fmt(int(r['count']))} transitions)"
        if a == b:  # self-loop: a small circle outside the node
            x, y = pos[a]
            ox, oy = (x - cx) / radius * 30, (y - cy) / radius * 30
            out.append(
                f'<g><title>{esc(tip)}</title><circle cx="{x + ox:.1f}" cy="{y + oy:.1f}" r="16" fill="none" '
                f'stroke="#2f6db5" stroke-opacity="0.6" stroke-width="{w:.1f}"/></g>'
            )
            continue
        (x1, y1), (x2, y2) = pos[a], pos[b]
        dx, dy = x2 - x1, y2 - y1
        dist = math.hypot(dx, dy)
        ux, uy = dx / dist, dy / dist
        sx, sy, ex, ey = x1 + ux * 24, y1 + uy * 24, x2 - ux * 26, y2 - uy * 26
        mx, my = (sx + ex) / 2 - uy * 24, (sy + ey) / 2 + ux * 24  # bend right, so a->b and b->a separate
        out.append(
            f'<g><title>{esc(tip)}</title><path d="M{sx:.1f} {sy:.1f} Q{mx:.1f} {my:.1f} {ex:.1f} {ey:.1f}" fill="none" '
            f'stroke="#2f6db5" stroke-opacity="0.65" stroke-width="{w:.1f}" marker-end="url(#arrow)"/>'
            + (
                f'<text x="{mx:.1f}" y="{my:.1f}" text-anchor="middle" class="tick">{fmt(p, 2)}</text>'
                if p >= 0.1
                else ""
            )
            + "</g>"
        )
    for c in ids:
        x, y = pos[c]
        cl = clusters[c]
        out.append(
            f'<a href="#cluster-{c}"><g><title>{esc(cl["tag"])}: {esc(cl.get("majority_true_type", ""))}, {fmt(cl["size"])} steps</title>'
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="22" fill="#1d2733"/>'
            f'<text x="{x:.1f}" y="{y + 4:.1f}" text-anchor="middle" fill="#fff" font-weight="700">{esc(cl["tag"])}</text></g></a>'
        )
        # the generator's step type under the node (self-loops sit radially outside it)
        out.append(
            f'<text x="{x:.1f}" y="{y + 36:.1f}" text-anchor="middle" class="tick">{esc(cl.get("majority_true_type", ""))}</text>'
        )
    diagram = (
        f'<svg class="chart" viewBox="-40 0 {size + 80} {size}" width="{size + 80}" height="{size}" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(out)}</svg>'
    )
    probs = {(int(r["from"]), int(r["to"])): float(r["probability"]) for r in tr.to_dict("records")}
    vmax = max(probs.values(), default=1.0)
    head = "<tr><th>from \\ to</th>" + "".join(f"<th>{esc(clusters[c]['tag'])}</th>" for c in ids) + "</tr>"
    body = "".join(
        f"<tr><th>{esc(clusters[a]['tag'])}</th>"
        + "".join(
            f'<td style="background:{svg.heat_color(probs.get((a, b), 0.0), vmax)};color:{"#fff" if probs.get((a, b), 0) > vmax * 0.55 else "#1f2933"}">'
            f"{fmt(probs[(a, b)], 2) if (a, b) in probs else ''}</td>"
            for b in ids
        )
        + "</tr>"
        for a in ids
    )
    matrix = f'<table class="matrix">{head}{body}</table>'
    return (
        "<h3>Transitions between consecutive steps</h3>"
        f'<p class="muted">P(next step in cluster B | step in cluster A), within traces; arrows for p ≥ {MIN_TRANSITION}.</p>'
        f'<div class="cols"><div>{diagram}</div><div>{matrix}</div></div>'
    )


def _critical(ctx: Context) -> str:
    parts = []
    metrics = ctx.inputs.json(CRITICAL_METRICS, "critical")
    if missing(metrics):
        return section("Critical weights and features", missing_box(metrics, "critical weights"), "critical")
    dec, enc = metrics.get("decoder_alignment", {}), metrics.get("encoder_alignment", {})
    by_module = metrics.get("mean_relative_change_by_module", {})
    parts.append(
        kv_table(
            [
                (
                    "decoder alignment with the top singular directions of the MLP change",
                    f"mean {fmt(dec.get('mean'))}, max {fmt(dec.get('max'))} (random direction: {fmt(dec.get('chance'))})",
                ),
                ("encoder alignment", f"mean {fmt(enc.get('mean'))}, max {fmt(enc.get('max'))}"),
                (
                    "graphs used (correct / incorrect)",
                    f"{fmt(metrics.get('graphs', {}).get('correct'))} / {fmt(metrics.get('graphs', {}).get('incorrect'))}",
                ),
            ]
        )
    )
    if by_module:
        mods = sorted(by_module, key=lambda m: -by_module[m])
        parts.append(
            "<h3>Mean relative weight change, reasoner vs base, by module</h3>"
            + svg.bars(
                mods,
                [svg.BarSeries("relative change", [by_module[m] for m in mods])],
                ylabel="‖Δ‖ / ‖base‖",
                width=700,
                height=260,
            )
        )
    img = ctx.image(paths.CRITICAL_WEIGHT_DIFF_PNG.as_posix(), "critical")
    if not missing(img):
        parts.append(
            "<details><summary>Per-tensor heatmap</summary>"
            + figures([(img, "relative weight change per tensor")])
            + "</details>"
        )
    for rel, title, cols in CRITICAL_TABLES:
        df = ctx.inputs.csv(rel, "critical", columns=("layer", "feature"))
        if missing(df):
            parts.append(missing_box(df, title))
            continue
        rows = []
        for rank, r in enumerate(df.to_dict("records"), start=1):
            key = ("reasoner", int(r["layer"]), int(r["feature"]))
            href = ctx.feature_href(key, 0)
            name = f"L{key[1]} F{key[2]}"
            rows.append(
                [num(rank), Cell(link(href, name) if href else esc(name))]
                + [num(r.get(c)) for c in cols if c in df]
                + [Cell(short_label(r.get("label") if isinstance(r.get("label"), str) else ""), None, "label-cell")]
            )
        tab = table(["rank", "feature"] + [c.replace("_", " ") for c in cols if c in df] + ["label"], rows)
        opened = " open" if rel == CRITICAL_TABLES[0][0] else ""
        parts.append(f"<details{opened}><summary>{esc(title)} ({len(rows)})</summary>{tab}</details>")
    intro = (
        "Where fine-tuning on traces changed the weights, which transcoder features lie along that change, and which "
        "features carry influence to correct answers in the reasoner's attribution graphs."
    )
    return section("Critical weights and features", "".join(parts), "critical", intro)
