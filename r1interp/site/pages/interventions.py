"""Interventions page: accuracy under steering (vs alpha), feature ablation vs ablating random features
(vs number ablated), and the other edits, per problem group, with the stage's confidence intervals."""

from __future__ import annotations

import math

import pandas as pd

from r1interp.site import svg
from r1interp.site.context import Context
from r1interp.site.html import Cell, esc, fmt, missing_box, num, page, pct, section, table, text
from r1interp.site.inputs import missing
from r1interp.site.html import json_tree

RESULTS = "reports/interventions/results.csv"
METRICS = "reports/metrics/interventions.json"
COLUMNS = ("intervention", "model", "size", "alpha", "draw", "group", "n", "correct", "accuracy", "ci_low", "ci_high")
CURVES = {"steering", "ablation", "ablation_random"}  # drawn as curves; every other intervention as bars


def write(ctx: Context) -> None:
    results = ctx.inputs.csv(RESULTS, "interventions", columns=COLUMNS)
    metrics = ctx.inputs.json(METRICS, "interventions")
    parts = []
    if missing(results) and missing(metrics):
        parts.append(missing_box([results, metrics], "interventions"))
    if not missing(results):
        colors = {g: svg.color(i) for i, g in enumerate(sorted(results["group"].astype(str).unique()))}
        for model, df in results.groupby("model", sort=True):
            parts.append(_model_section(str(model), df, colors))
        rows = [[text(r["intervention"]), text(r["model"]), text(r["group"]), num(r["size"]), num(r["alpha"]), num(r["draw"]),
                 num(r["n"]), num(r["correct"]), Cell(pct(r["accuracy"]), float(r["accuracy"]), "num"),
                 Cell(f"[{pct(r['ci_low'])}, {pct(r['ci_high'])}]", float(r["ci_low"]), "num")]
                for r in results.to_dict("records")]
        parts.append(section("All results", table(["intervention", "model", "group", "size", "alpha", "draw", "n", "correct",
                                                   "accuracy", "CI"], rows, filterable=True, table_id="interventions-table"), "table"))
    if not missing(metrics):
        parts.append(section("Metrics", json_tree(metrics), "metrics"))
    figs = sorted(ctx.inputs.path("reports/interventions").glob("*.png")) if ctx.inputs.exists("reports/interventions") else []
    imgs = []
    for f in figs:
        img = ctx.image(f"reports/interventions/{f.name}", "interventions")
        imgs.append(f'<figure><img class="figure" loading="lazy" src="{esc(img)}" alt="{esc(f.stem)}"><figcaption>{esc(f.name)}</figcaption></figure>')
    if imgs:
        parts.append(section("Figures from the interventions stage", '<div class="cols">' + "".join(imgs) + "</div>"))
    intro = ("Causal tests of what the graphs and clusters suggest: add a feature direction (steering), zero the "
             "features a circuit relies on (ablation) against as many random features (ablation_random), or edit weights. "
             "Accuracy is greedy-decoded on held-out problems per group; whiskers are the stage's confidence intervals.")
    ctx.write("interventions.html", page(title="Interventions", body=f'<p class="intro">{intro}</p>' + "".join(parts),
                                         depth=0, active="interventions", footer=ctx.footer))


def _pooled(df: pd.DataFrame, x: str) -> pd.DataFrame:
    """One point per x: accuracy pooled over draws (sum correct / sum n). With one draw the whiskers are its CI;
    with several, they span the draws' CIs (the spread of random choices and sampling together)."""
    rows = []
    for xv, g in df.groupby(x, sort=True):
        rows.append({x: float(xv), "accuracy": g["correct"].sum() / max(g["n"].sum(), 1),
                     "ci_low": g["ci_low"].min(), "ci_high": g["ci_high"].max(), "draws": len(g),
                     "dots": list(zip([float(xv)] * len(g), g["accuracy"].astype(float))) if len(g) > 1 else []})
    return pd.DataFrame(rows)


def _log_axis(values) -> bool:
    pos = [v for v in values if v > 0]
    return len(pos) >= 3 and max(pos) / min(pos) >= 50


def _model_section(model: str, df: pd.DataFrame, colors: dict[str, str]) -> str:
    parts = []
    baseline = df[df["intervention"] == "baseline"].groupby("group").apply(
        lambda g: g["correct"].sum() / max(g["n"].sum(), 1), include_groups=False)
    refs = [(float(v), f"baseline {g}", colors[str(g)]) for g, v in baseline.items()]
    steer = df[(df["intervention"] == "steering") & df["alpha"].notna()]
    if len(steer):
        series = []
        for group, g in steer.groupby("group", sort=True):
            p = _pooled(g, "alpha")
            series.append(svg.LineSeries(str(group), p["alpha"].tolist(), p["accuracy"].tolist(), p["ci_low"].tolist(),
                                         p["ci_high"].tolist(), colors[str(group)], dots=[d for ds in p["dots"] for d in ds]))
        parts.append("<div><h3>Steering: accuracy vs alpha</h3>" + svg.lines(
            series, xlabel="alpha (steering strength)", ylabel="accuracy", ylim=(0, 1.02), refs=refs, width=600, height=320)
            + '<p class="muted">Dotted lines: unmodified model per group.</p></div>')
    abl = df[df["intervention"].isin(["ablation", "ablation_random"]) & df["size"].notna()]
    if len(abl):
        series = []
        for (group, kind), g in abl.groupby(["group", "intervention"], sort=True):
            p = _pooled(g, "size")
            series.append(svg.LineSeries(f"{group} · {'targeted' if kind == 'ablation' else 'random'}", p["size"].tolist(),
                                         p["accuracy"].tolist(), p["ci_low"].tolist(), p["ci_high"].tolist(), colors[str(group)],
                                         dash="" if kind == "ablation" else "5 4", dots=[d for ds in p["dots"] for d in ds]))
        parts.append("<div><h3>Ablation: accuracy vs features ablated</h3>" + svg.lines(
            series, xlabel="features ablated", ylabel="accuracy", ylim=(0, 1.02), xlog=_log_axis(abl["size"].tolist()),
            refs=refs, width=600, height=320)
            + '<p class="muted">Solid: the targeted features; dashed: as many random features (pooled over draws, dots: single '
            "draws; whiskers span the draws' CIs).</p></div>")
    other = df[~df["intervention"].isin(CURVES)]
    if len(other["intervention"].unique()) > (1 if len(baseline) else 0):
        groups = sorted(other["group"].astype(str).unique())
        series = []
        for i, (kind, g) in enumerate(other.groupby("intervention", sort=True)):
            vals, lo, hi = [], [], []
            for group in groups:
                gg = g[g["group"].astype(str) == group]
                if gg.empty:
                    vals.append(None), lo.append(None), hi.append(None)
                    continue
                vals.append(float(gg["correct"].sum() / max(gg["n"].sum(), 1)))
                lo.append(float(gg["ci_low"].min()))
                hi.append(float(gg["ci_high"].max()))
            series.append(svg.BarSeries(str(kind), vals, lo, hi, svg.MUTED if kind == "baseline" else svg.color(i)))
        parts.append("<div><h3>Other interventions vs baseline</h3>" + svg.bars(groups, series, ylabel="accuracy", width=600, height=300) + "</div>")
    if not parts:
        parts.append('<p class="muted">No rows to chart for this model.</p>')
    return section(f"{model}", '<div class="cols">' + "".join(parts) + "</div>", f"model-{model}")


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)
