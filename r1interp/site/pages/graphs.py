"""Attribution graph pages: one interactive viewer per graph (ours and the reference graphs) and an index.

The viewer itself is `assets/graph.js`; this module reads and validates the graphs, embeds each one's
compact form in its page, and adds what the JSON does not carry: the graph's grading and scores from
the index, and its motif profile (census counts, null-model z-scores, degeneracy warnings).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from r1interp import paths
from r1interp.errors import ArtifactError
from r1interp.graphs.schema import read_graph
from r1interp.schemas import GraphIndexSchema
from r1interp.site import svg
from r1interp.site.context import Context, FeatureKey, graph_file
from r1interp.site.graphdata import CompactGraph, Usage, compact, mark_pages, usage
from r1interp.site.html import (
    Cell,
    esc,
    facts_grid,
    fmt,
    json_script,
    kv_table,
    link,
    missing_box,
    note,
    num,
    page,
    section,
    table,
    text,
)
from r1interp.site.inputs import Missing, missing
from r1interp.site.tokens import short

INDEX = paths.GRAPH_INDEX.as_posix()
ZSCORES = paths.MOTIF_ZSCORES.as_posix()
CENSUS = paths.MOTIF_CENSUS.as_posix()
WARNINGS = paths.MOTIF_WARNINGS.as_posix()
GRAPHS_METRICS = paths.GRAPHS_METRICS.as_posix()


@dataclass
class GraphSet:
    index: pd.DataFrame | Missing
    graphs: list[tuple[dict, CompactGraph]] = field(default_factory=list)  # (index row, graph)
    references: list[CompactGraph] = field(default_factory=list)
    usage: dict[FeatureKey, list[Usage]] = field(default_factory=dict)


def load(ctx: Context) -> GraphSet:
    """Every graph of the index (validated with the project's schema) and every reference graph."""
    index = ctx.inputs.parquet(INDEX, "graphs", schema=GraphIndexSchema)
    gs = GraphSet(index)
    if not missing(index):
        for row in index[index["status"] == "ok"].to_dict("records"):
            doc = read_graph(ctx.inputs.path(paths.GRAPHS_DIR.as_posix()) / row["path"])
            gs.graphs.append((row, compact(doc, row["slug"], row["model"])))
    for ref in ctx.params.motifs.reference_graphs:
        path = ctx.inputs.path(ref)
        if not path.is_file():
            continue  # reference graphs are inputs in git; a checkout without one simply shows none
        from r1interp.motifs.graph import load_neuronpedia

        load_neuronpedia(path, drop_errors=False)  # the lenient loader: raises ArtifactError naming the file
        doc = json.loads(path.read_text(encoding="utf-8"))
        scan = str(doc.get("metadata", {}).get("scan", "reference"))
        gs.references.append(compact(doc, Path(ref).stem, scan, reference=True))
    for _, g in gs.graphs:
        for key, uses in usage(g).items():
            gs.usage.setdefault(key, []).extend(uses)
    return gs


def write(ctx: Context, gs: GraphSet) -> None:
    ctx.graph_pages.update(g.slug for _, g in gs.graphs)
    ctx.graph_pages.update(g.slug for g in gs.references)
    motifs = _MotifTables(ctx)
    for row, g in gs.graphs:
        mark_pages(g, lambda key: key in ctx.feature_pages)
        ctx.write(graph_file(g.slug), _graph_page(ctx, g, row, motifs))
    for g in gs.references:
        ctx.write(graph_file(g.slug), _graph_page(ctx, g, None, motifs))
    ctx.write("graphs/index.html", _index_page(ctx, gs, motifs))


# ------------------------------------------------------------------------------------------ motif tables


class _MotifTables:
    """The motif stage's per-graph rows (z-scores, census, warnings), read once for all graph pages."""

    def __init__(self, ctx: Context):
        cols = ("null", "family", "label", "real", "mean", "std", "z", "p", "graph")
        self.z = ctx.inputs.parquet(ZSCORES, "motifs", columns=cols)
        self.census = ctx.inputs.parquet(CENSUS, "motifs", columns=("graph", "nodes", "edges", "ffl_coherent_fraction"))
        text_ = ctx.inputs.text(WARNINGS, "motifs")
        self.warnings: dict[str, list[str]] = {}
        if not missing(text_):
            for line in text_.splitlines():
                graph, _, msg = line.partition(": ")
                if msg:
                    self.warnings.setdefault(graph, []).append(msg)
        self.preferred = ctx.params.compare.null_model
        # one lookup table per graph, built once: filtering the long table per page dominated the build
        self.by_graph = {} if missing(self.z) else {g: rows for g, rows in self.z.groupby("graph", sort=False)}
        self.census_by_graph = {} if missing(self.census) else {r["graph"]: r for r in self.census.to_dict("records")}

    def census_row(self, slug: str) -> dict | None:
        return self.census_by_graph.get(slug)

    def z_of(self, slug: str, label: str) -> float | None:
        rows = self.by_graph.get(slug)
        if rows is None:
            return None
        rows = rows[(rows["null"] == self.preferred) & (rows["label"] == label)]
        return float(rows["z"].iloc[0]) if len(rows) and np.isfinite(rows["z"].iloc[0]) else None

    def profile(self, slug: str) -> str:
        if missing(self.z):
            return missing_box(self.z, "motif profile")
        rows = self.by_graph.get(slug)
        if rows is None:
            return note(
                f"No motif rows for <code>{esc(slug)}</code> in <code>{ZSCORES}</code>: rebuild with "
                "<code>dvc repro motifs</code>.",
                "missing",
            )
        nulls = sorted(rows["null"].unique(), key=lambda n: (n != self.preferred, n))
        parts = []
        census = self.census_row(slug)
        if census:
            parts.append(
                kv_table(
                    [
                        ("nodes (motif graph: errors dropped)", fmt(int(census["nodes"]))),
                        ("edges", fmt(int(census["edges"]))),
                        ("coherent share of feed-forward loops", fmt(census["ffl_coherent_fraction"])),
                    ]
                )
            )
        by_motif: dict[
            tuple, dict
        ] = {}  # (family, label) -> null -> row; plain dicts: pandas filters per motif were slow
        for r in rows.to_dict("records"):
            by_motif.setdefault((r["family"], r["label"]), {})[r["null"]] = r
        charts = []
        for family, title in (
            ("triad", "Triad z-scores (classes a null holds fixed are omitted)"),
            ("ffl", "Feed-forward-loop sign patterns: z-scores"),
        ):
            motifs = {
                label: by
                for (fam, label), by in by_motif.items()
                if fam == family and any(not pd.isna(r["z"]) for r in by.values())
            }
            labels = list(motifs)
            series = [
                svg.BarSeries(
                    null,
                    [
                        None if null not in by or pd.isna(by[null]["z"]) else float(by[null]["z"])
                        for by in motifs.values()
                    ],
                    color=svg.color(i),
                )
                for i, null in enumerate(nulls)
            ]
            if labels:
                charts.append(
                    f"<div><h3>{esc(title)}</h3>"
                    + svg.bars(labels, series, ylabel="z", width=560, height=250)
                    + "</div>"
                )
        parts.append('<div class="cols">' + "".join(charts) + "</div>")
        header = ["family", "motif", "real count"] + [
            h for n in nulls for h in (f"{n}: null mean ± sd", f"{n}: z", f"{n}: p")
        ]
        body = []
        for (family, label), by in by_motif.items():
            cells: list[Cell] = [text(family), text(label), num(int(next(iter(by.values()))["real"]))]
            for n in nulls:
                if n in by:
                    r = by[n]
                    cells += [
                        Cell(f"{fmt(r['mean'])} ± {fmt(r['std'])}", float(r["mean"]), "num"),
                        num(r["z"]),
                        num(r["p"]),
                    ]
                else:
                    cells += [text(""), text(""), text("")]
            body.append(cells)
        parts.append(
            "<details><summary>Census and null statistics (all classes)</summary>"
            + table(header, body, sortable=True)
            + "</details>"
        )
        for msg in self.warnings.get(slug, []):
            parts.append(note("Degeneracy: " + esc(msg), "warn"))
        return "".join(parts)


# ------------------------------------------------------------------------------------------------ pages


def _graph_page(ctx: Context, g: CompactGraph, row: dict | None, motifs: _MotifTables) -> str:
    data = g.data
    n_feat = sum(1 for n in data["nodes"] if n[1] == "f")
    facts = []
    if row is not None:
        correct = row.get("correct")
        verdict = (
            "–"
            if pd.isna(correct)
            else ('<span class="ok">correct</span>' if correct else '<span class="bad">incorrect</span>')
        )
        facts += [
            ("model", esc(row["model"])),
            ("graph kind", esc(row["kind"])),
            ("prompt", f'{esc(row["prompt_id"])} <span class="muted">({esc(row["category"])})</span>'),
            ("target token", f"<code>{esc(row.get('target_token') or '')}</code>"),
            ("expected answer", f"<code>{esc(row.get('expected') or '')}</code>"),
            ("graded answer", verdict),
            ("target probability", fmt(row.get("top_logit_prob"))),
            ("replacement score", fmt(row.get("replacement_score"))),
            ("completeness score", fmt(row.get("completeness_score"))),
            ("faithfulness: max relative error", fmt(row.get("faithfulness_max_relative_error"))),
        ]
    else:
        facts += [
            ("reference graph", esc(g.model)),
            ("note", "a published graph analysed for comparison; its labels come from its own export"),
        ]
    facts += [("nodes (feature / all)", f"{n_feat} / {len(data['nodes'])}"), ("links", fmt(len(data["links"]) // 3))]
    completion = ""
    if row is not None and isinstance(row.get("completion"), str):
        completion = (
            f"<details><summary>Greedy completion ({esc(row['model'])})</summary>"
            f'<pre class="completion">{esc(row["completion"])}</pre></details>'
        )
    viewer = """
<div class="viewer" id="viewer">
  <div class="controls">
    <label title="Edges are ranked by |weight|; keep the strongest fraction (starts at about 400 edges)">edges: keep strongest
      <input type="range" id="prune" min="1" max="100" value="15" step="1"> <output id="prune-val">15%</output></label>
    <span id="edge-count" class="muted"></span>
    <label><input type="checkbox" id="show-errors" checked> error nodes</label>
    <label><input type="checkbox" id="only-selected"> only the selected node's edges</label>
    <label title="zoom out so the whole prompt fits the canvas width"><input type="checkbox" id="fit-width"> fit width</label>
    <input type="search" id="node-search" placeholder="find: label text, L2 F87, token" aria-label="find node">
  </div>
  <div class="viewer-body">
    <div class="canvas" id="canvas"><noscript>The graph viewer needs JavaScript.</noscript></div>
    <aside class="details" id="details"><p class="muted">Click a node to see its label, activation, influence and
      strongest inputs and outputs. Scroll the canvas sideways for long prompts.</p></aside>
  </div>
  <div class="legend-row"><span><svg width="14" height="14"><circle cx="7" cy="7" r="5" class="n-f"/></svg> transcoder feature</span>
    <span><svg width="14" height="14"><rect x="2" y="2" width="10" height="10" class="n-e"/></svg> MLP error</span>
    <span><svg width="14" height="14"><rect x="1" y="3" width="12" height="8" rx="2" class="n-m"/></svg> token embedding</span>
    <span><svg width="14" height="14"><path d="M7 1 L13 7 L7 13 L1 7 Z" class="n-l"/></svg> output logit (filled: target)</span>
    <span><svg width="24" height="8"><line x1="0" y1="4" x2="24" y2="4" class="e-pos"/></svg> excitatory</span>
    <span><svg width="24" height="8"><line x1="0" y1="4" x2="24" y2="4" class="e-neg"/></svg> inhibitory</span>
    <span class="muted">width ∝ |weight|; y = layer, x = token position</span></div>
</div>"""
    body = (
        facts_grid(facts)
        + completion
        + section("Attribution graph", viewer + json_script("graph-data", data), "viewer-section")
        + section(
            "Motif profile",
            motifs.profile(g.slug),
            "motifs",
            "Triad census and signed feed-forward loops of this graph against its null models "
            f"(the comparisons use <code>{esc(motifs.preferred)}</code>); see the "
            '<a href="../motifs.html">motif comparisons</a>.',
        )
    )
    prompt = "".join(short(t) for t in data["tokens"]) or data["prompt"]
    shown = ("…" + prompt[-200:]) if len(prompt) > 200 else prompt
    return page(
        title=f"Graph {g.slug}",
        body=body,
        depth=1,
        active="graphs",
        footer=ctx.footer,
        scripts=("graph.js",),
        subtitle=f'<span class="mono">{esc(shown)}</span>',
    )


def _index_page(ctx: Context, gs: GraphSet, motifs: _MotifTables) -> str:
    if missing(gs.index):
        body = missing_box(gs.index, "attribution graphs")
        if gs.references:
            body += section(
                "Reference graphs",
                "<ul>"
                + "".join(f"<li>{link(g.slug + '.html', g.slug)} ({esc(g.model)})</li>" for g in gs.references)
                + "</ul>",
            )
        return page(title="Attribution graphs", body=body, depth=1, active="graphs", footer=ctx.footer)
    metrics = ctx.inputs.json(GRAPHS_METRICS, "graphs")
    parts = []
    if not missing(metrics) and isinstance(metrics.get("faithfulness"), dict):
        f = metrics["faithfulness"]
        parts.append(
            note(
                f"Faithfulness check: {fmt(f.get('edges'))} sampled edges, source feature patched in the frozen "
                f"model; max relative error {fmt(f.get('max_relative_error'))}, median "
                f"{fmt(f.get('median_relative_error'))}."
            )
        )
    rows = []
    for row, g in gs.graphs:
        census = motifs.census_row(g.slug) or {}
        correct = row.get("correct")
        rows.append(
            [
                Cell(link(g.slug + ".html", g.slug), None, "nowrap"),
                text(row["model"]),
                text(row["kind"]),
                Cell(esc(row["prompt_id"]), None, "nowrap"),
                text(row["category"]),
                Cell(
                    "–" if pd.isna(correct) else ("✓" if correct else "✗"),
                    None if pd.isna(correct) else int(bool(correct)),
                    "" if pd.isna(correct) else ("ok" if correct else "bad"),
                ),
                Cell(f"<code>{esc(row.get('target_token') or '')}</code>"),
                num(row.get("feature_nodes")),
                num(row.get("links")),
                num(row.get("replacement_score")),
                num(row.get("completeness_score")),
                num(census.get("ffl_coherent_fraction")),
                num(motifs.z_of(g.slug, "030T")),
            ]
        )
    header = [
        "graph",
        "model",
        "kind",
        "prompt",
        "category",
        "correct",
        "target",
        "feature nodes",
        "links",
        "replacement",
        "completeness",
        "coherent FFL share",
        "z 030T",
    ]
    parts.append(
        table(header, rows, filterable=True, table_id="graphs-table")
        + f'<p class="muted">z 030T: the feed-forward loop\'s z-score under the <code>{esc(motifs.preferred)}</code> null; '
        "correct: the graded final answer of the prompt (think graphs too).</p>"
    )
    skipped = gs.index[gs.index["status"] != "ok"]
    if len(skipped):
        parts.append(
            section(
                "Targets without a graph",
                table(
                    ["model", "prompt", "kind", "reason"],
                    [
                        [text(r["model"]), text(r["prompt_id"]), text(r["kind"]), text(r["reason"])]
                        for r in skipped.to_dict("records")
                    ],
                ),
            )
        )
    if gs.references:
        parts.append(
            section(
                "Reference graphs",
                "<ul>"
                + "".join(
                    f"<li>{link(g.slug + '.html', g.slug)} ({esc(g.model)}, {len(g.data['nodes'])} nodes, "
                    f"{len(g.data['links']) // 3} links)</li>"
                    for g in gs.references
                )
                + "</ul>",
            )
        )
    intro = (
        "Every attribution graph the <code>graphs</code> stage built: the reasoner's first column result inside "
        "<code>&lt;think&gt;</code> (think) and the first answer digit (answer), and the base model's answer. "
        "Click a graph to explore it."
    )
    return page(
        title="Attribution graphs",
        body=f'<p class="intro">{intro}</p>' + "".join(parts),
        depth=1,
        active="graphs",
        footer=ctx.footer,
    )


def check_unique(gs: GraphSet) -> None:
    slugs = [g.slug for _, g in gs.graphs] + [g.slug for g in gs.references]
    dup = {s for s in slugs if slugs.count(s) > 1}
    if dup:
        raise ArtifactError(
            f"{INDEX}: graph slug(s) {', '.join(sorted(dup))} appear more than once (or collide with a reference graph)"
        )
