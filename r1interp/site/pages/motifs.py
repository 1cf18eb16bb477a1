"""Motif comparisons page: differences between groups of graphs with bootstrap CIs (reasoner vs base,
think vs answer, correct vs incorrect, ours vs the reference graph), per-graph distributions, and the
compare stage's own figures."""

from __future__ import annotations

import pandas as pd

from r1interp import paths
from r1interp.site import svg
from r1interp.site.context import Context
from r1interp.site.html import Cell, esc, figures, fmt, kv_table, missing_box, note, num, page, section, table, text
from r1interp.site.inputs import missing, require_keys

COMPARE = paths.COMPARE_METRICS.as_posix()
MOTIFS = paths.MOTIFS_METRICS.as_posix()
DIFFERENCES = paths.COMPARE_DIFFERENCES.as_posix()
PER_GRAPH = paths.COMPARE_PER_GRAPH.as_posix()
FIGURES = tuple(
    ((paths.COMPARE_DIR / name).as_posix(), caption)
    for name, caption in (
        ("differences_z.png", "Differences of z-scores (compare stage)"),
        ("differences_sp.png", "Differences of significance profiles"),
        ("zscores_by_category.png", "z-scores by prompt category"),
        ("significance_profile_by_category.png", "Significance profile by prompt category"),
    )
)
FAMILIES = (
    ("coherent_fraction", "Coherent share of feed-forward loops (null-free)", "difference of shares"),
    ("z:", "z-scores under the null model", "difference of z"),
    ("sp:", "Significance profile (z normalised per family; size-robust)", "difference of SP"),
)
PER_GRAPH_STATS = (
    ("coherent_fraction", "coherent FFL share"),
    ("z:030T", "z of the feed-forward loop (030T)"),
    ("z:coherent", "z of coherent FFLs"),
)


def describe(name: str) -> tuple[str, str, str]:
    """(title, group a, group b) of a comparison name such as `reasoner_vs_base` or `correct_vs_incorrect:reasoner`."""
    pair, _, scope = name.partition(":")
    a, _, b = pair.partition("_vs_")
    known = {
        "reasoner_vs_base": "Reasoner vs base (answer graphs, paired by prompt)",
        "think_vs_answer": "<think> vs answer graphs (reasoner, paired by prompt)",
        "correct_vs_incorrect": "Correct vs incorrect answers",
    }
    title = known.get(pair, f"{a} vs the reference graph {b}")
    if scope:
        title += f" ({scope})"
    return title, a, b


def write(ctx: Context) -> None:
    parts = []
    compare = ctx.inputs.json(COMPARE, "compare")
    diffs = ctx.inputs.csv(
        DIFFERENCES,
        "compare",
        columns=("comparison", "statistic", "mean_a", "mean_b", "difference", "ci_low", "ci_high", "significant"),
    )
    if missing(compare) or missing(diffs):
        parts.append(missing_box([m for m in (compare, diffs) if missing(m)], "motif comparisons"))
    else:
        require_keys(compare, ("comparisons",), COMPARE, "compare")
        conf = compare.get("confidence", 0.95)
        parts.append(
            note(
                f"Null model <code>{esc(compare.get('null', ''))}</code>; {fmt(compare.get('graphs'))} graphs; "
                f"{int(round(100 * conf))}% bootstrap CIs over prompts ({fmt(compare.get('bootstrap'))} resamples), paired where "
                "the same prompt is in both groups. A difference is marked (dark) when its CI excludes 0."
            )
        )
        dropped = compare.get("dropped_as_copies") or {}
        if dropped:
            parts.append(
                note(
                    "Dropped as exact copies of another statistic under this null: "
                    + ", ".join(f"<code>{esc(k)} {esc(v)}</code>" for k, v in sorted(dropped.items())),
                    "warn",
                )
            )
        toc = []
        for name, grp in diffs.groupby("comparison", sort=False):
            title, a, b = describe(str(name))
            anchor = "cmp-" + "".join(ch if ch.isalnum() else "-" for ch in str(name))
            toc.append(f'<li><a href="#{anchor}">{esc(title)}</a></li>')
            parts.append(_comparison(str(name), title, a, b, grp, (compare["comparisons"] or {}).get(name, {}), anchor))
        parts.insert(0, section("Comparisons", f"<ul>{''.join(toc)}</ul>"))
    parts.append(_per_graph(ctx))
    parts.append(_groups(ctx))
    figs = []
    for rel, caption in FIGURES:
        img = ctx.image(rel, "compare")
        if not missing(img):
            figs.append((img, caption))
    if figs:
        parts.append(section("Figures from the compare stage", figures(figs), "figures"))
    intro = (
        "Network motifs of the attribution graphs: the triad census (16 MAN classes) and the sign patterns of "
        "feed-forward loops, as z-scores against null models and as the null-free coherent share."
    )
    ctx.write(
        "motifs.html",
        page(
            title="Motif comparisons",
            body=f'<p class="intro">{intro}</p>' + "".join(parts),
            depth=0,
            active="motifs",
            footer=ctx.footer,
        ),
    )


def _comparison(name: str, title: str, a: str, b: str, grp: pd.DataFrame, summary: dict, anchor: str) -> str:
    parts = []
    n_a, n_b = grp["n_a"].iloc[0] if "n_a" in grp else None, grp["n_b"].iloc[0] if "n_b" in grp else None
    sig = int(grp["significant"].astype(bool).sum())
    parts.append(
        f"<p>{esc(a)} (n = {fmt(n_a)}) minus {esc(b)} (n = {fmt(n_b)}): <strong>{sig} of {len(grp)}</strong> "
        "statistics have a CI excluding 0"
        + (" — about what chance gives for this many tests." if sig <= max(1, round(0.05 * len(grp)) + 1) else ".")
        + "</p>"
    )
    share = grp[grp["statistic"] == "coherent_fraction"]
    if len(share):
        r = share.iloc[0]
        verdict = (
            '<span class="ok">CI excludes 0</span>' if r["significant"] else '<span class="muted">CI includes 0</span>'
        )
        parts.append(
            f"<p>Coherent share of feed-forward loops (null-free): {esc(a)} <strong>{fmt(r['mean_a'])}</strong> vs "
            f"{esc(b)} <strong>{fmt(r['mean_b'])}</strong>, difference {fmt(r['difference'])} "
            f"[{fmt(r['ci_low'])}, {fmt(r['ci_high'])}] — {verdict}.</p>"
        )
    charts = []
    for prefix, caption, xlabel in FAMILIES[1:]:
        rows = grp[grp["statistic"].str.startswith(prefix)]
        if rows.empty:
            continue
        items = [
            svg.Interval(
                str(r["statistic"]).split(":", 1)[-1],
                float(r["difference"]),
                float(r["ci_low"]),
                float(r["ci_high"]),
                bool(r["significant"]),
                f"{r['statistic']}: {a} {fmt(r['mean_a'])} vs {b} {fmt(r['mean_b'])}; difference "
                f"{fmt(r['difference'])} [{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]",
            )
            for r in rows.to_dict("records")
        ]
        charts.append(f"<div><h4>{esc(caption)}</h4>{svg.forest(items, xlabel=xlabel, width=560)}</div>")
    parts.append('<div class="cols">' + "".join(charts) + "</div>")
    body = []
    for r in grp.to_dict("records"):
        body.append(
            [
                text(r["statistic"]),
                num(r["mean_a"]),
                num(r["mean_b"]),
                num(r["difference"], cls="pos" if r["difference"] > 0 else "neg"),
                Cell(f"[{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]", float(r["ci_low"]), "num"),
                Cell("yes" if r["significant"] else "", int(bool(r["significant"])), "ok" if r["significant"] else ""),
                text(r.get("top_prompts", "")),
            ]
        )
    parts.append(
        "<details><summary>Table</summary>"
        + table(
            [
                "statistic",
                f"mean {a}",
                f"mean {b}",
                "difference",
                "CI",
                "CI excludes 0",
                "prompts with the largest difference",
            ],
            body,
        )
        + "</details>"
    )
    return section(title, "".join(parts), anchor)


def _per_graph(ctx: Context) -> str:
    df = ctx.inputs.csv(PER_GRAPH, "compare", columns=("graph", "model", "kind", "coherent_fraction"))
    if missing(df):
        return section("Per graph", missing_box(df, "per-graph profiles"), "per-graph")
    charts = []
    for stat, label in PER_GRAPH_STATS:
        if stat not in df:
            continue
        groups = []
        for (model, kind), grp in sorted(
            df.groupby(["model", "kind"], sort=True), key=lambda kv: kv[0][1] == "reference"
        ):
            pts = []
            for r in grp.to_dict("records"):
                if pd.isna(r[stat]):
                    continue
                correct = r.get("correct")
                colour = (
                    svg.MUTED
                    if pd.isna(correct) or str(correct) in ("", "None")
                    else ("#2e7d32" if str(correct) == "True" else "#c62828")
                )
                href = ctx.graph_href(str(r["graph"]), 0)
                pts.append(
                    svg.Point(
                        float(r[stat]),
                        0.0,
                        f"{r['graph']} ({r.get('category', '')}): {fmt(r[stat])}",
                        href or "",
                        colour,
                    )
                )
            groups.append((f"reference: {grp['graph'].iloc[0]}" if kind == "reference" else f"{model} / {kind}", pts))
        charts.append(f"<div><h4>{esc(label)}</h4>{svg.strip(groups, xlabel=label, width=900)}</div>")
    legend = (
        '<p class="muted">One dot per graph (click to open it): <span class="ok">correct</span>, '
        '<span class="bad">incorrect</span>, grey ungraded; the bar is the group mean.</p>'
    )
    return section("Per graph", legend + "".join(charts), "per-graph")


def _groups(ctx: Context) -> str:
    motifs = ctx.inputs.json(MOTIFS, "motifs")
    if missing(motifs):
        return section("Group profiles", missing_box(motifs, "motif profiles"), "groups")
    groups = motifs.get("groups") or {}
    keys = sorted({k for g in groups.values() for k in g})
    rows = [[text(name)] + [num(g.get(k)) for k in keys] for name, g in groups.items()]
    head = kv_table(
        [
            ("null models", esc(", ".join(motifs.get("nulls", [])))),
            ("samples per graph and null", fmt(motifs.get("samples"))),
            ("graphs", fmt(motifs.get("graphs"))),
            ("degeneracy warnings", fmt(motifs.get("warnings"))),
        ]
    )
    return section(
        "Group profiles (means over graphs)",
        head + table(["group"] + [k.replace("_", " ") for k in keys], rows),
        "groups",
    )
