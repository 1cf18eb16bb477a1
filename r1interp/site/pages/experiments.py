"""Experiment comparison page: the transcoder sweep's Pareto front (`r1interp sweep pareto`) and a table
like `dvc exp show` — headline metrics and the parameters that differ, for the workspace, commits and
DVC experiments.

`dvc exp show` is a command, not an artifact: when it cannot run (no git repo, no DVC, an error) the page
says why instead of failing the build.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from r1interp import paths
from r1interp.errors import ArtifactError, R1InterpError
from r1interp.site import svg
from r1interp.site.context import Context
from r1interp.site.html import Cell, esc, figures, fmt, note, num, page, section, table, text
from r1interp.site.inputs import missing

PARETO = paths.SWEEP_PARETO_JSON.as_posix()
PARETO_PNG = paths.SWEEP_PARETO_PNG.as_posix()


def _metric(path, key: str) -> str:
    """A `file:key` pattern of `dvc exp show` metrics: the file literally, the model (\\w+) captured."""
    return re.escape(path.as_posix()) + r":(\w+)\." + key


HEADLINE = (  # metric columns of the table: (file:key pattern, short name)
    (_metric(paths.TRANSCODERS_METRICS, r"summary\.ce_increase_all_layers"), "CE incr. {0}"),
    (_metric(paths.TRANSCODERS_METRICS, r"summary\.mean_l0"), "L0 {0}"),
    (_metric(paths.TRANSCODERS_METRICS, r"summary\.max_dead_pct"), "dead % {0}"),
    (_metric(paths.TRANSCODERS_METRICS, r"summary\.mean_fvu"), "FVU {0}"),
    (_metric(paths.ORGANISM_METRICS, r"accuracy\.overall"), "accuracy {0}"),
    (_metric(paths.LABELS_METRICS, "detection_balanced_accuracy"), "detection {0}"),
    (_metric(paths.GRAPHS_METRICS, r"answer\.replacement"), "replacement {0}"),
)
MAX_PARAM_COLUMNS = 14


def write(ctx: Context, exp_show: Callable[[], list] | None) -> None:
    parts = [_pareto(ctx), _exp_table(exp_show)]
    intro = (
        "Transcoder sweeps run as DVC experiments (<code>dvc exp run --queue -S train.k=…</code>); "
        "<code>r1interp sweep pareto</code> finds the points no other point beats on CE increase, L0 and dead features."
    )
    ctx.write(
        "experiments.html",
        page(
            title="Experiments",
            body=f'<p class="intro">{intro}</p>' + "".join(parts),
            depth=0,
            active="experiments",
            footer=ctx.footer,
        ),
    )


def _pareto(ctx: Context) -> str:
    doc = ctx.inputs.json(PARETO, "sweep")
    if missing(doc):
        return section(
            "Pareto front",
            '<div class="missing"><strong>Sweep: not built yet</strong>: queue experiments and run '
            f"<code>r1interp sweep pareto</code> (writes <code>{esc(PARETO)}</code>).</div>",
            "pareto",
        )
    points = doc.get("points") if isinstance(doc, dict) else None
    fields = ("name", "model", "ce_increase", "l0", "dead_pct")
    if not isinstance(points, list) or not all(isinstance(p, dict) and all(f in p for f in fields) for p in points):
        raise ArtifactError(
            f"{PARETO}: expected {{'points': [{{{', '.join(fields)}, ...}}]}}", hint="re-run `r1interp sweep pareto`"
        )
    parts = []
    for model in sorted({p["model"] for p in points}):
        pts = [p for p in points if p["model"] == model]
        front = sorted((p for p in pts if p.get("on_front")), key=lambda p: p["l0"])
        chart_pts = [
            svg.Point(
                float(p["l0"]),
                float(p["ce_increase"]),
                f"{p['name']} {json.dumps(p.get('params', {}))}: L0 {fmt(p['l0'])}, CE +{fmt(p['ce_increase'])}, "
                f"dead {fmt(p['dead_pct'])}%",
                color="#c62828" if p.get("on_front") else svg.MUTED,
                emphasis=bool(p.get("on_front")),
            )
            for p in pts
        ]
        paths = [([(float(p["l0"]), float(p["ce_increase"])) for p in front], "#c62828")] if len(front) > 1 else []
        positive = all(float(p["ce_increase"]) > 0 for p in pts)
        parts.append(
            f"<div><h3>{esc(model)}</h3>"
            + svg.scatter(
                chart_pts,
                xlabel="L0 (active latents per token)",
                ylabel="CE increase, all layers (nats)",
                paths=paths,
                legend=[("on the front", "#c62828"), ("dominated", svg.MUTED)],
                ylog=positive and len(pts) > 2,
            )
            + "</div>"
        )
    rows = [
        [
            text(p["name"]),
            text(p["model"]),
            text(json.dumps(p.get("params", {}))),
            num(p["ce_increase"]),
            num(p["l0"]),
            num(p["dead_pct"]),
            Cell("front" if p.get("on_front") else "", int(bool(p.get("on_front"))), "ok" if p.get("on_front") else ""),
        ]
        for p in points
    ]
    body = (
        '<div class="cols">'
        + "".join(parts)
        + "</div>"
        + table(["experiment", "model", "swept params", "CE increase", "L0", "max dead %", "Pareto"], rows)
    )
    img = ctx.image(PARETO_PNG, "sweep")
    if not missing(img):
        body += (
            "<details><summary>pareto.png</summary>"
            + figures([(img, "Pareto front (r1interp sweep pareto)")])
            + "</details>"
        )
    return section(f"Pareto front ({len(points)} points)", body, "pareto")


# ------------------------------------------------------------------------------------------- exp show


def flatten(doc: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(doc, dict):
        out: dict[str, Any] = {}
        for k, v in doc.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: doc}


def exp_rows(data: list) -> list[dict]:
    """Workspace, commits and experiments of `dvc exp show --json`, in its order, each with flat params and
    metrics (`file:key.path`)."""
    rows = []

    def add(entry: dict, kind: str, parent: str = "") -> None:
        body = entry.get("data") or {}
        params = flatten(((body.get("params") or {}).get("params.yaml") or {}).get("data") or {})
        metrics = {}
        for file, m in (body.get("metrics") or {}).items():
            for k, v in flatten((m or {}).get("data") or {}).items():
                metrics[f"{file}:{k}"] = v
        rev = str(entry.get("rev", ""))
        rows.append(
            {
                "name": entry.get("name") or ("workspace" if rev == "workspace" else rev[:7]),
                "rev": rev,
                "kind": kind,
                "parent": parent,
                "timestamp": body.get("timestamp"),
                "params": params,
                "metrics": metrics,
                "error": entry.get("error"),
            }
        )
        for exp in entry.get("experiments") or []:
            for rev in exp.get("revs") or []:
                add(rev, "experiment", str(entry.get("rev", ""))[:7])

    for entry in data or []:
        if isinstance(entry, dict):
            add(entry, "workspace" if entry.get("rev") == "workspace" else "commit")
    return rows


def _exp_table(exp_show: Callable[[], list] | None) -> str:
    title = "Experiments and commits (dvc exp show)"
    if exp_show is None:
        return section(
            title,
            note(
                "Not part of the DVC-built site (it depends on the git history, not on the pipeline's inputs): "
                "<code>dvc exp show</code> prints it, or <code>python stages/report.py --experiments --out DIR</code> "
                "builds a site with it.",
                "missing",
            ),
            "exp-show",
        )
    try:
        data = exp_show()
    except (R1InterpError, OSError, json.JSONDecodeError) as exc:
        return section(
            title,
            note(
                f"<code>dvc exp show --json</code> could not run here: {esc(exc)}. "
                "It needs a git repository with DVC initialised.",
                "missing",
            ),
            "exp-show",
        )
    rows = exp_rows(data)
    if not rows:
        return section(title, note("No revisions found.", "missing"), "exp-show")
    metric_cols: list[tuple[str, str]] = []
    for pattern, name in HEADLINE:
        rx = re.compile(pattern + "$")
        keys = sorted({k for r in rows for k in r["metrics"] if rx.match(k)})
        metric_cols += [(k, name.format(*rx.match(k).groups())) for k in keys]
    varying = []
    for key in sorted({k for r in rows for k in r["params"]}):
        values = {json.dumps(r["params"].get(key), sort_keys=True) for r in rows if key in r["params"]}
        if len(values) > 1:
            varying.append(key)
    shown_params = varying[:MAX_PARAM_COLUMNS]

    # like `dvc exp show`, the workspace, HEAD and experiments (with their baselines) always; an older commit only
    # where a headline metric or a shown parameter changed from the newer row above it (long histories repeat)
    def values(r):
        return json.dumps(
            [[r["metrics"].get(k) for k, _ in metric_cols], [r["params"].get(k) for k in shown_params]],
            sort_keys=True,
            default=str,
        )

    baselines = {r["parent"] for r in rows if r["kind"] == "experiment"}
    kept, last, hidden, seen_head = [], None, 0, False
    for r in rows:
        keep = r["kind"] != "commit" or not seen_head or r["rev"][:7] in baselines or values(r) != last
        if r["kind"] == "commit":
            seen_head = True
            last = values(r)
        if keep:
            kept.append(r)
        else:
            hidden += 1
    body = []
    for r in kept:
        label = esc(r["name"]) + (
            f' <span class="muted">({esc(r["parent"])})</span>' if r["kind"] == "experiment" else ""
        )
        when = str(r["timestamp"] or "").replace("T", " ")[:16]
        rev = "" if r["kind"] == "workspace" else f"<code>{esc(r['rev'][:7])}</code>"
        cells = [Cell(label), text(r["kind"]), Cell(rev), Cell(esc(when), None, "nowrap")]
        cells += [
            num(r["metrics"].get(k)) if isinstance(r["metrics"].get(k), (int, float)) else text(r["metrics"].get(k, ""))
            for k, _ in metric_cols
        ]
        cells += [text(json.dumps(r["params"][k]) if k in r["params"] else "") for k in shown_params]
        body.append(cells)
    n_exp = sum(r["kind"] == "experiment" for r in rows)
    head = (
        f"<p>{n_exp} experiment(s), {sum(r['kind'] == 'commit' for r in rows)} commit(s) and the workspace"
        + (f"; {hidden} older commit(s) whose values equal the row above them are not shown" if hidden else "")
        + f". Parameter columns: the {len(shown_params)} that differ between revisions"
        + (f" (first {MAX_PARAM_COLUMNS} of {len(varying)})" if len(varying) > MAX_PARAM_COLUMNS else "")
        + ".</p>"
    )
    if not n_exp:
        head += note(
            "No DVC experiments yet: queue a sweep with <code>dvc exp run --queue evaluate -S train.k=8,16,32</code> "
            "and run it with <code>dvc exp run --run-all</code>."
        )
    return section(
        title,
        head
        + table(
            ["revision", "kind", "rev", "created"] + [n for _, n in metric_cols] + shown_params,
            body,
            filterable=True,
            table_id="exp-table",
        ),
        "exp-show",
    )
