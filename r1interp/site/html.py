"""HTML building blocks shared by every page: escaping, numbers, tables, boxes and the page shell.

Pages are plain strings assembled from these helpers (no template engine: the markup is small, and
keeping it in Python keeps escaping in one place). Every value that comes from an artifact goes
through `esc`, including labels, which are model-generated text.
"""

from __future__ import annotations

import html as _html
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from r1interp.site.inputs import Missing

# (key, title, path from the site root); the order is the nav bar's
NAV = (
    ("overview", "Overview", "index.html"),
    ("features", "Features", "features/index.html"),
    ("graphs", "Graphs", "graphs/index.html"),
    ("motifs", "Motifs", "motifs.html"),
    ("taxonomy", "Taxonomy", "taxonomy.html"),
    ("interventions", "Interventions", "interventions.html"),
    ("flaw", "Planted flaw", "flaw.html"),
    ("experiments", "Experiments", "experiments.html"),
    ("quality", "Data quality", "quality/index.html"),
)


def esc(value) -> str:
    return _html.escape(str(value), quote=True)


def is_nan(x) -> bool:
    """None, NaN and pandas' NA (nullable columns) all mean "no value"."""
    if x is None or x is pd.NA:
        return True
    return isinstance(x, (float, np.floating)) and math.isnan(x)


def fmt(x, digits: int = 3) -> str:
    """A number as a researcher wants to read it: `digits` significant figures, no exponent for ordinary
    magnitudes, thousands separators for large values, an en dash for missing."""
    if is_nan(x):
        return "–"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, int) or (hasattr(x, "dtype") and getattr(x.dtype, "kind", "") in "iu"):
        return f"{int(x):,}"
    try:
        x = float(x)
    except (TypeError, ValueError):
        return esc(x)
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    mag = abs(x)
    if mag >= 1e4:
        return f"{x:,.0f}"
    if mag < 1e-3:
        return f"{x:.{max(digits - 1, 0)}e}"
    decimals = max(digits - 1 - math.floor(math.log10(mag)), 0)
    return f"{x:.{decimals}f}"


def pct(x, decimals: int = 1) -> str:
    return "–" if is_nan(x) else f"{100 * float(x):.{decimals}f}%"


def sign_class(x) -> str:
    if is_nan(x):
        return ""
    return "pos" if float(x) > 0 else "neg" if float(x) < 0 else ""


@dataclass(frozen=True)
class Cell:
    """A table cell: its HTML and, for sorting, a raw value (numbers sort numerically)."""

    html: str
    sort: object = None
    cls: str = ""


def num(x, digits: int = 3, cls: str = "") -> Cell:
    value = None if is_nan(x) else float(x)
    return Cell(fmt(x, digits), value, f"num {cls}".strip())


def text(x) -> Cell:
    return Cell(esc("" if is_nan(x) else x), None)


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Cell | str]],
    *,
    sortable: bool = True,
    filterable: bool = False,
    table_id: str = "",
    caption: str = "",
    cls: str = "",
) -> str:
    """A data table; `sortable` headers sort on click (site.js), `filterable` adds a search box."""
    tid = f' id="{esc(table_id)}"' if table_id else ""
    classes = " ".join(c for c in ("data", "sortable" if sortable else "", cls) if c)
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for c in row:
            if not isinstance(c, Cell):
                c = Cell(str(c))
            attrs = f' class="{c.cls}"' if c.cls else ""
            if c.sort is not None and isinstance(c.sort, (int, float)) and math.isfinite(c.sort):
                attrs += f' data-v="{c.sort:.6g}"'
            cells.append(f"<td{attrs}>{c.html}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    search = ""
    if filterable and table_id:
        search = f'<input class="filter" type="search" placeholder="filter rows…" data-table="{esc(table_id)}" aria-label="filter rows">'
    cap = f"<caption>{caption}</caption>" if caption else ""
    return (
        f'{search}<div class="table-wrap"><table class="{classes}"{tid}>{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def kv_table(pairs: Iterable[tuple[str, str]]) -> str:
    """Two columns, key and (already formatted HTML) value."""
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in pairs)
    return f'<table class="kv">{rows}</table>'


def facts_grid(pairs: Iterable[tuple[str, str]]) -> str:
    """Short key/value facts flowing in columns (a page header), values already HTML."""
    items = "".join(f"<div><dt>{esc(k)}</dt><dd>{v}</dd></div>" for k, v in pairs)
    return f'<dl class="facts">{items}</dl>'


def figures(items: Iterable[tuple[str, str]]) -> str:
    """Pipeline PNGs (site path, caption) at their natural size, wrapping; a click opens the full image."""
    figs = "".join(
        f'<figure><a href="{esc(src)}"><img class="figure" src="{esc(src)}" alt="{esc(cap)}"></a>'
        f"<figcaption>{esc(cap)}</figcaption></figure>"
        for src, cap in items
    )
    return f'<div class="figs">{figs}</div>' if figs else ""


def missing_box(items: Missing | Sequence[Missing], what: str = "") -> str:
    """The "not built yet" box: what is missing and the command that builds it."""
    items = [items] if isinstance(items, Missing) else list(items)
    stages = list(dict.fromkeys(m.stage for m in items))
    files = ", ".join(f"<code>{esc(m.path)}</code>" for m in items)
    cmd = " ".join(f"<code>dvc repro {esc(s)}</code>" for s in stages)
    lead = f"{esc(what)}: " if what else ""
    return f'<div class="missing"><strong>{lead}not built yet</strong>: run {cmd} (needs {files}).</div>'


def note(html_text: str, cls: str = "note") -> str:
    return f'<div class="{cls}">{html_text}</div>'


def section(title: str, body: str, anchor: str = "", intro: str = "") -> str:
    aid = f' id="{esc(anchor)}"' if anchor else ""
    lead = f'<p class="intro">{intro}</p>' if intro else ""
    link = f' <a class="anchor" href="#{esc(anchor)}">#</a>' if anchor else ""
    return f"<section{aid}><h2>{esc(title)}{link}</h2>{lead}{body}</section>"


def link(href: str, label: str, cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<a href="{esc(href)}"{c}>{esc(label)}</a>'


def json_script(element_id: str, data) -> str:
    """Data for a page's script, inline so the page works from file:// (no fetch); `</` is escaped so
    no string in the data can close the script element."""
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return f'<script type="application/json" id="{esc(element_id)}">{payload}</script>'


def page(
    *, title: str, body: str, depth: int, active: str, footer: str = "", scripts: Sequence[str] = (), subtitle: str = ""
) -> str:
    """A complete page: head with the shared assets, the nav bar, the body and the footer.

    `depth` is how many folders below the site root the page lives (0 or 1): every link is relative,
    so the site works from file:// and from any URL prefix.
    """
    p = "../" * depth
    current = ' class="active" aria-current="page"'
    nav = "".join(f'<a href="{p}{href}"{current if key == active else ""}>{esc(name)}</a>' for key, name, href in NAV)
    extra = "".join(f'<script src="{p}assets/{esc(s)}" defer></script>' for s in scripts)
    sub = f'<p class="subtitle">{subtitle}</p>' if subtitle else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)} · r1interp</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="{p}assets/site.css"><script src="{p}assets/site.js" defer></script>{extra}</head>
<body><header class="top"><a class="brand" href="{p}index.html">r1interp</a><nav>{nav}</nav></header>
<main><h1>{esc(title)}</h1>{sub}{body}</main>
<footer>{footer}</footer></body></html>
"""


def json_tree(doc, depth: int = 0) -> str:
    """Any JSON metrics document as nested key/value tables (for files whose layout the site does not
    know, e.g. a stage added after it): scalars formatted, lists of scalars inline, the rest nested."""
    if isinstance(doc, dict):
        if not doc:
            return '<span class="muted">{}</span>'
        rows = "".join(f"<tr><th>{esc(k)}</th><td>{json_tree(v, depth + 1)}</td></tr>" for k, v in doc.items())
        return f'<table class="kv nested">{rows}</table>'
    if isinstance(doc, list):
        if all(not isinstance(v, (dict, list)) for v in doc):
            return (
                ", ".join(fmt(v) if isinstance(v, (int, float)) else esc(v) for v in doc)
                or '<span class="muted">[]</span>'
            )
        return "<ol>" + "".join(f"<li>{json_tree(v, depth + 1)}</li>" for v in doc) + "</ol>"
    if isinstance(doc, (int, float)) and not isinstance(doc, bool):
        return fmt(doc, 4)
    return esc(doc)
