"""Interventions page: accuracy under steering (vs alpha) and feature ablation (vs number ablated), each
against its random-feature control, and the other edits (weight edits, fine-tunes) against the baseline,
per problem group, with the stage's confidence intervals.

Convention read from results.csv: an intervention `X_random` is the control of `X` (same size / alpha, random
features instead of the targeted ones); `target` names what was targeted. A family whose alpha (else size)
varies is drawn as curves against it, one per `scale` setting when that varies too, as small multiples (one
chart per problem group, so a targeted curve is always next to its own control and the baseline); a family
with a single setting is a bar next to the baseline.
"""

from __future__ import annotations

import json

import pandas as pd

from r1interp import paths
from r1interp.site import svg
from r1interp.site.context import Context
from r1interp.site.html import Cell, esc, figures, json_tree, missing_box, num, page, pct, section, table, text
from r1interp.site.inputs import missing

RESULTS = paths.INTERVENTION_RESULTS.as_posix()
METRICS = paths.INTERVENTIONS_METRICS.as_posix()
COLUMNS = ("intervention", "model", "size", "alpha", "draw", "group", "n", "correct", "accuracy", "ci_low", "ci_high")
TITLES = {
    "steering": "Steering",
    "ablation": "Ablation",
    "weight_edit": "Weight edits",
    "finetune": "Fine-tuning",
}  # page order
X_LABELS = {("steering", "alpha"): "alpha (steering strength)", ("ablation", "size"): "features ablated"}
TARGETED, RANDOM, BASELINE = "#c0392b", "#7f8c99", "#2e7d32"


def write(ctx: Context) -> None:
    results = ctx.inputs.csv(RESULTS, "interventions", columns=COLUMNS)
    metrics = ctx.inputs.json(METRICS, "interventions")
    parts = []
    if missing(results) and missing(metrics):
        parts.append(missing_box([results, metrics], "interventions"))
    if not missing(results):
        for model, df in results.groupby("model", sort=False):
            parts.append(_model_section(str(model), df))
        extra = [c for c in ("target", "scale") if c in results]
        rows = [
            [text(r["intervention"]), text(r["model"])]
            + [text(r[c]) if c == "target" else num(r[c]) for c in extra]
            + [
                text(r["group"]),
                num(r["size"]),
                num(r["alpha"]),
                num(r["draw"]),
                num(r["n"]),
                num(r["correct"]),
                Cell(pct(r["accuracy"]), float(r["accuracy"]), "num"),
                Cell(f"[{pct(r['ci_low'])}, {pct(r['ci_high'])}]", float(r["ci_low"]), "num"),
            ]
            for r in results.to_dict("records")
        ]
        parts.append(
            section(
                f"All results ({len(results)} rows)",
                "<details><summary>Table</summary>"
                + table(
                    ["intervention", "model"]
                    + extra
                    + ["group", "size", "alpha", "draw", "n", "correct", "accuracy", "CI"],
                    rows,
                    filterable=True,
                    table_id="interventions-table",
                )
                + "</details>",
                "table",
            )
        )
    elif not missing(metrics):
        parts.append(missing_box(results, "per-group results"))
    if not missing(metrics):
        parts.append(section(f"Metrics ({METRICS})", _metrics(metrics), "metrics"))
    imgs = []
    folder = ctx.inputs.path(paths.INTERVENTIONS_DIR.as_posix())
    for f in sorted(folder.glob("*.png")) if folder.is_dir() else []:
        img = ctx.image((paths.INTERVENTIONS_DIR / f.name).as_posix(), "interventions")
        imgs.append((img, f.name))
    if imgs:
        parts.append(section("Figures from the interventions stage", figures(imgs), "figures"))
    intro = (
        "Causal tests of what the graphs and clusters suggest: add feature directions (steering), zero the features a "
        "circuit relies on (ablation), edit or fine-tune weights — each against the same intervention on random "
        "features. Accuracy is greedy-decoded on held-out problems per group; whiskers are the stage's confidence intervals."
    )
    ctx.write(
        "interventions.html",
        page(
            title="Interventions",
            body=f'<p class="intro">{intro}</p>' + "".join(parts),
            depth=0,
            active="interventions",
            footer=ctx.footer,
        ),
    )


def _pooled(df: pd.DataFrame, x: str) -> pd.DataFrame:
    """One point per x: accuracy pooled over draws (sum correct / sum n). With one draw the whiskers are its CI;
    with several they span the draws' CIs (random choice and sampling together) and each draw is a dot."""
    rows = []
    for xv, g in df.groupby(x, sort=True):
        rows.append(
            {
                x: float(xv),
                "accuracy": g["correct"].sum() / max(g["n"].sum(), 1),
                "ci_low": g["ci_low"].min(),
                "ci_high": g["ci_high"].max(),
                "dots": [(float(xv), float(a)) for a in g["accuracy"]] if len(g) > 1 else [],
            }
        )
    return pd.DataFrame(rows, columns=[x, "accuracy", "ci_low", "ci_high", "dots"])


def _series(df: pd.DataFrame, x: str, name: str, colour: str, dash: str = "") -> svg.LineSeries:
    p = _pooled(df, x)
    return svg.LineSeries(
        name,
        p[x].tolist(),
        p["accuracy"].tolist(),
        p["ci_low"].tolist(),
        p["ci_high"].tolist(),
        colour,
        dash,
        dots=[d for ds in p["dots"] for d in ds],
    )


def _target(df: pd.DataFrame) -> str:
    if "target" not in df:
        return ""
    names = [str(t) for t in df["target"].dropna().unique()]
    return ", ".join(names)


def _x_axis(rows: pd.DataFrame) -> str | None:
    """What a family's accuracy is plotted against: the knob that varies (alpha, else size), or None (bars)."""
    for x in ("alpha", "size"):
        if rows[x].dropna().nunique() > 1:
            return x
    return None


def _scales(rows: pd.DataFrame) -> list:
    """Settings of `scale` that make separate curves (e.g. weight edits that zero vs double), or [None]."""
    if "scale" not in rows or rows["scale"].dropna().nunique() < 2:
        return [None]
    return sorted(rows["scale"].dropna().unique())


def _curves(
    family: str, targeted: pd.DataFrame, control: pd.DataFrame, x: str, groups: list[str], baseline: dict[str, float]
) -> str:
    scales = _scales(pd.concat([targeted, control]))
    charts = []
    for group in groups:
        series = []
        for i, scale in enumerate(scales):
            suffix = "" if scale is None else f", scale {scale:g}"
            for rows, name, colour, dash in (
                (targeted, "targeted", TARGETED if i == 0 else svg.color(i + 3), ""),
                (control, "random", RANDOM, "5 4" if i == 0 else "2 3"),
            ):
                sub = rows[(rows["group"].astype(str) == group) & rows[x].notna()]
                if scale is not None:
                    sub = sub[sub["scale"] == scale]
                if len(sub):
                    series.append(_series(sub, x, name + suffix, colour, dash))
        if not series:
            continue
        refs = [(baseline[group], "baseline", BASELINE)] if group in baseline else []
        positive = sorted({v for s in series for v in s.xs if v > 0})
        log = len(positive) >= 3 and positive[-1] / positive[0] >= 50  # sizes like 10, 100, 1000: log axis
        charts.append(
            f"<div><h4>{esc(group)}</h4>"
            + svg.lines(
                series,
                xlabel=X_LABELS.get((family, x), x),
                ylabel="accuracy",
                ylim=(0, 1.02),
                xlog=log,
                refs=refs,
                width=360,
                height=230,
            )
            + "</div>"
        )
    several = control["draw"].nunique() > 1 if len(control) else False
    what = (
        f"targeted: <strong>{esc(_target(targeted) or family)}</strong>; control: {esc(_target(control) or 'none')}"
        f"{' (pooled over draws; dots: single draws)' if several else ''}; green dotted: unmodified model."
    )
    title = TITLES.get(family, family.replace("_", " ").capitalize()) + f": accuracy vs {X_LABELS.get((family, x), x)}"
    return f'<h3>{esc(title)}</h3><p class="muted">{what}</p><div class="cols small-multiples">{"".join(charts)}</div>'


def _model_section(model: str, df: pd.DataFrame) -> str:
    parts = []
    groups = list(dict.fromkeys(df["group"].astype(str)))
    base = df[df["intervention"] == "baseline"]
    baseline = {str(g): float(gg["correct"].sum() / max(gg["n"].sum(), 1)) for g, gg in base.groupby("group")}
    names = [str(k) for k in dict.fromkeys(df["intervention"])]
    families = sorted(
        dict.fromkeys(k.removesuffix("_random") for k in names if k != "baseline"),
        key=lambda f: list(TITLES).index(f) if f in TITLES else len(TITLES),
    )  # known families first
    flat = []  # families without a varying knob: bars next to the baseline
    for family in families:
        targeted, control = df[df["intervention"] == family], df[df["intervention"] == f"{family}_random"]
        x = _x_axis(pd.concat([targeted, control]))
        if x is None:
            flat.append(family)
        else:
            parts.append(_curves(family, targeted, control, x, groups, baseline))
    kinds = (["baseline"] if baseline else []) + [k for f in flat for k in (f, f"{f}_random") if k in names]
    if len(kinds) > (1 if baseline else 0):
        series = []
        for i, kind in enumerate(kinds):
            g = df[df["intervention"].astype(str) == kind]
            vals, lo, hi = [], [], []
            for group in groups:
                gg = g[g["group"].astype(str) == group]
                vals.append(float(gg["correct"].sum() / max(gg["n"].sum(), 1)) if len(gg) else None)
                lo.append(float(gg["ci_low"].min()) if len(gg) else None)
                hi.append(float(gg["ci_high"].max()) if len(gg) else None)
            colour = BASELINE if kind == "baseline" else RANDOM if kind.endswith("_random") else svg.color(i)
            label = kind + (f" ({_target(g)})" if _target(g) else "")
            series.append(svg.BarSeries(label, vals, lo, hi, colour))
        title = " and ".join(TITLES.get(f, f).lower() for f in flat) or "baseline"
        parts.append(
            f"<h3>{esc(title.capitalize())} vs baseline</h3>"
            + svg.bars(groups, series, ylabel="accuracy", width=900, height=300)
            + '<p class="muted">Grey bars: the random-feature controls; with several draws the bar pools them and '
            "the whiskers span their CIs.</p>"
        )
    return section(f"{model}", "".join(parts) or '<p class="muted">No rows to chart.</p>', f"model-{model}")


def _metrics(doc) -> str:
    """The metrics file can be large (every group of every point): scalars first, the whole file folded."""
    scalars = {k: v for k, v in doc.items() if not isinstance(v, (dict, list))} if isinstance(doc, dict) else {}
    head = json_tree(scalars) if scalars else ""
    return head + ("<details><summary>Full file</summary><pre>" + esc(json.dumps(doc, indent=1)) + "</pre></details>")
