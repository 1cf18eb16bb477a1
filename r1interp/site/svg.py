"""Static charts as inline SVG, drawn in Python.

Why not a JS chart library: the site must work offline from file:// with nothing vendored that we did
not write, and a static chart needs no script at all — it renders even with JS off and costs nothing at
load. Hover text comes from SVG `<title>` elements. Every chart scales to its container (viewBox).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from r1interp.site.html import esc, fmt

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7", "#bab0ac")
POSITIVE, NEGATIVE, MUTED = "#2f6db5", "#d1495b", "#9aa3ad"
CHAR_W = 6.2  # approximate width of one 11px character, for laying out labels


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2, 2.5, 5 x 10^k steps)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    return ticks


@dataclass
class Scale:
    """Linear (or log10) map from data to pixels."""

    lo: float
    hi: float
    a: float  # pixel of lo
    b: float  # pixel of hi
    log: bool = False

    def __call__(self, v: float) -> float:
        lo, hi, v = (math.log10(x) for x in (self.lo, self.hi, v)) if self.log else (self.lo, self.hi, v)
        if hi == lo:
            return (self.a + self.b) / 2
        return self.a + (v - lo) / (hi - lo) * (self.b - self.a)

    def ticks(self, n: int = 5) -> list[float]:
        if self.log:
            lo, hi = math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi))
            return [10.0**k for k in range(lo, hi + 1) if self.lo <= 10.0**k <= self.hi] or [self.lo, self.hi]
        return [t for t in nice_ticks(self.lo, self.hi, n) if self.lo - 1e-12 <= t <= self.hi + 1e-12]


def padded_range(values: Sequence[float], include_zero: bool = False, pad: float = 0.05) -> tuple[float, float]:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if include_zero:
        vals.append(0.0)
    if not vals:
        return 0.0, 1.0
    lo, hi = min(vals), max(vals)
    if hi == lo:
        lo, hi = lo - (abs(lo) or 1) * 0.5, hi + (abs(hi) or 1) * 0.5
    span = hi - lo
    lo2, hi2 = lo - pad * span, hi + pad * span
    if include_zero:  # keep the zero line at the edge when the data are all on one side
        lo2 = 0.0 if lo >= 0 else lo2
        hi2 = 0.0 if hi <= 0 else hi2
    ticks = nice_ticks(lo2, hi2)
    return min(ticks[0], lo2), max(ticks[-1], hi2)


def _svg(width: float, height: float, body: str, title: str = "", cls: str = "chart") -> str:
    label = f' aria-label="{esc(title)}"' if title else ""
    return (
        f'<svg class="{cls}" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
        f'role="img"{label} xmlns="http://www.w3.org/2000/svg">{body}</svg>'
    )


def _text(x: float, y: float, s: str, anchor: str = "start", cls: str = "", extra: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<text x="{x:.0f}" y="{y:.0f}" text-anchor="{anchor}"{c}{extra}>{esc(s)}</text>'


def tick(t: float) -> str:
    """Tick labels are round numbers: print them as such (0.5, not 0.500)."""
    if t == 0:
        return "0"
    if abs(t) >= 1e4 or abs(t) < 1e-3:
        return f"{t:.3g}"
    return f"{t:.6g}"


def _x_axis(sx: Scale, y: float, top: float, label: str, width: float, fmt_tick=tick) -> str:
    # grid lines as one path and tick labels in one <g>: charts repeat on ~1.5k feature pages
    ticks = sx.ticks()
    grid = "".join(f"M{sx(t):.0f} {top:.0f}V{y:.0f}" for t in ticks)
    labels = "".join(f'<text x="{sx(t):.0f}" y="{y + 14:.0f}">{esc(fmt_tick(t))}</text>' for t in ticks)
    out = [
        f'<path class="grid" d="{grid}"/><path class="axis" d="M{sx.a:.0f} {y:.0f}H{sx.b:.0f}"/>',
        f'<g class="tick" text-anchor="middle">{labels}</g>',
    ]
    if label:
        out.append(_text((sx.a + sx.b) / 2, y + 30, label, "middle", "axis-label"))
    return "".join(out)


def _y_axis(sy: Scale, x: float, right: float, label: str, fmt_tick=tick) -> str:
    ticks = sy.ticks()
    grid = "".join(f"M{x:.0f} {sy(t):.0f}H{right:.0f}" for t in ticks)
    labels = "".join(f'<text x="{x - 5:.0f}" y="{sy(t) + 4:.0f}">{esc(fmt_tick(t))}</text>' for t in ticks)
    out = [
        f'<path class="grid" d="{grid}"/><path class="axis" d="M{x:.0f} {sy.a:.0f}V{sy.b:.0f}"/>',
        f'<g class="tick" text-anchor="end">{labels}</g>',
    ]
    if label:
        cy = (sy.a + sy.b) / 2
        out.append(_text(12, cy, label, "middle", "axis-label", f' transform="rotate(-90 12 {cy:.0f})"'))
    return "".join(out)


def _legend(items: Sequence[tuple[str, str, str]], x: float, y: float, max_width: float) -> tuple[str, float]:
    """Legend entries (name, color, dash) flowing left to right; returns the SVG and the height used."""
    out, cx, cy = [], x, y
    for name, col, dash in items:
        w = 26 + CHAR_W * len(name) + 14
        if cx + w > x + max_width and cx > x:
            cx, cy = x, cy + 16
        d = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(
            f'<line x1="{cx:.0f}" x2="{cx + 20:.0f}" y1="{cy:.0f}" y2="{cy:.0f}" stroke="{col}" stroke-width="2.5"{d}/>'
        )
        out.append(_text(cx + 24, cy + 4, name, cls="legend"))
        cx += w
    return "".join(out), cy - y + 16


# ---------------------------------------------------------------------------------------------- charts


@dataclass
class Interval:
    """One row of a forest plot: an estimate with its interval."""

    label: str
    estimate: float
    low: float | None = None
    high: float | None = None
    strong: bool = False  # drawn dark (e.g. the CI excludes 0)
    tip: str = ""


def forest(
    rows: Sequence[Interval], *, xlabel: str = "", width: int = 640, label_width: int | None = None, title: str = ""
) -> str:
    """Estimates with interval whiskers, one row each, against a dashed zero line."""
    if not rows:
        return ""
    lw = label_width or min(260, int(12 + CHAR_W * max(len(r.label) for r in rows)))
    top, row_h = 10, 22
    height = top + row_h * len(rows) + 40
    values = [v for r in rows for v in (r.estimate, r.low, r.high) if v is not None]
    sx = Scale(*padded_range(values, include_zero=True), lw + 10, width - 20)
    bottom = top + row_h * len(rows)
    out = [_x_axis(sx, bottom, top, xlabel, width)]
    z = sx(0.0)
    out.append(f'<line class="zero" x1="{z:.0f}" x2="{z:.0f}" y1="{top:.0f}" y2="{bottom:.0f}"/>')
    for i, r in enumerate(rows):
        y = top + row_h * i + row_h / 2
        col = "#1f2933" if r.strong else MUTED
        tip = r.tip or f"{r.label}: {fmt(r.estimate)}" + (
            f" [{fmt(r.low)}, {fmt(r.high)}]" if r.low is not None else ""
        )
        g = [f"<g><title>{esc(tip)}</title>", _text(lw, y + 4, r.label, "end", "row-label")]
        if r.low is not None and r.high is not None:
            g.append(
                f'<line x1="{sx(r.low):.0f}" x2="{sx(r.high):.0f}" y1="{y:.0f}" y2="{y:.0f}" stroke="{col}" stroke-width="2"/>'
            )
            for v in (r.low, r.high):
                g.append(
                    f'<line x1="{sx(v):.0f}" x2="{sx(v):.0f}" y1="{y - 5:.0f}" y2="{y + 5:.0f}" stroke="{col}" stroke-width="1.5"/>'
                )
        g.append(f'<circle cx="{sx(r.estimate):.0f}" cy="{y:.0f}" r="4.5" fill="{col}"/></g>')
        out.append("".join(g))
    return _svg(width, height, "".join(out), title)


@dataclass
class BarSeries:
    name: str
    values: Sequence[float | None]
    low: Sequence[float | None] | None = None
    high: Sequence[float | None] | None = None
    color: str = ""


def bars(
    categories: Sequence[str],
    series: Sequence[BarSeries],
    *,
    ylabel: str = "",
    width: int = 640,
    height: int = 260,
    title: str = "",
    ylog: bool = False,
) -> str:
    """Grouped vertical bars (one group per category, one bar per series), with optional CI whiskers."""
    if not categories or not series:
        return ""
    legend_svg, legend_h = (
        _legend([(s.name, s.color or color(i), "") for i, s in enumerate(series)], 60, 12, width - 80)
        if len(series) > 1
        else ("", 0)
    )
    top, left = 14 + legend_h, 60
    group_w = (width - left - 20) / len(categories)
    rotate = max(len(c) for c in categories) * CHAR_W > group_w  # long category names are slanted
    bottom = height - (70 if rotate else 46)
    vals = [
        v
        for s in series
        for arr in (s.values, s.low or [], s.high or [])
        for v in arr
        if v is not None and math.isfinite(v)
    ]
    if ylog:
        pos = [v for v in vals if v > 0] or [1.0]
        sy = Scale(10 ** math.floor(math.log10(min(pos))), 10 ** math.ceil(math.log10(max(pos))), bottom, top, log=True)
    else:
        sy = Scale(*padded_range(vals, include_zero=True), bottom, top)
    out = [legend_svg, _y_axis(sy, left, width - 10, ylabel)]
    bar_w = min(28.0, group_w * 0.8 / len(series))
    base = sy(sy.lo) if ylog else sy(0.0)
    for ci, cat in enumerate(categories):
        gx = left + 10 + group_w * ci + (group_w - bar_w * len(series)) / 2
        for si, s in enumerate(series):
            v = s.values[ci]
            if v is None or not math.isfinite(v) or (ylog and v <= 0):
                continue
            x, y = gx + bar_w * si, sy(v)
            col = s.color or color(si)
            tip = f"{s.name} · {cat}: {fmt(v)}"
            lo = s.low[ci] if s.low else None
            hi = s.high[ci] if s.high else None
            if lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi):
                tip += f" [{fmt(lo)}, {fmt(hi)}]"
            g = [
                f"<g><title>{esc(tip)}</title>",
                f'<rect x="{x + 1:.0f}" y="{min(y, base):.0f}" width="{bar_w - 2:.0f}" height="{abs(base - y):.0f}" fill="{col}"/>',
            ]
            if lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi) and not ylog:
                cx = x + bar_w / 2
                g.append(f'<line class="whisker" x1="{cx:.0f}" x2="{cx:.0f}" y1="{sy(lo):.0f}" y2="{sy(hi):.0f}"/>')
                for e in (lo, hi):
                    g.append(
                        f'<line class="whisker" x1="{cx - 4:.0f}" x2="{cx + 4:.0f}" y1="{sy(e):.0f}" y2="{sy(e):.0f}"/>'
                    )
            out.append("".join(g) + "</g>")
        cx = left + 10 + group_w * (ci + 0.5)
        if rotate:
            out.append(
                _text(cx, bottom + 12, cat, "end", "tick", f' transform="rotate(-35 {cx:.0f} {bottom + 12:.0f})"')
            )
        else:
            out.append(_text(cx, bottom + 16, cat, "middle", "tick"))
    if not ylog:
        out.append(f'<line class="zero" x1="{left}" x2="{width - 10}" y1="{base:.0f}" y2="{base:.0f}"/>')
    return _svg(width, height, "".join(out), title)


@dataclass
class LineSeries:
    name: str
    xs: Sequence[float]
    ys: Sequence[float]
    low: Sequence[float] | None = None
    high: Sequence[float] | None = None
    color: str = ""
    dash: str = ""
    dots: Sequence[tuple[float, float]] = field(default_factory=list)  # extra points (e.g. single draws)


def lines(
    series: Sequence[LineSeries],
    *,
    xlabel: str = "",
    ylabel: str = "",
    width: int = 640,
    height: int = 300,
    xlog: bool = False,
    ylim: tuple[float, float] | None = None,
    refs: Sequence[tuple[float, str, str]] = (),
    marks: Sequence[tuple[float, str]] = (),
    title: str = "",
) -> str:
    """Lines with markers and CI whiskers; `refs` are horizontal dotted reference lines (y, label, color),
    `marks` labelled vertical lines (x, label), e.g. the chosen k."""
    series = [s for s in series if len(s.xs)]
    if not series:
        return ""
    legend_svg, legend_h = _legend(
        [(s.name, s.color or color(i), s.dash) for i, s in enumerate(series)], 64, 12, width - 84
    )
    top, left, bottom = 18 + legend_h, 64, height - 46
    xs = [x for s in series for x in s.xs]
    if xlog:
        pos = [x for x in xs if x > 0] or [1.0]
        sx = Scale(min(pos) / 1.3, max(pos) * 1.3, left + 8, width - 16, log=True)
    else:
        sx = Scale(*padded_range(xs), left + 8, width - 16)
    ys = [
        v
        for s in series
        for arr in (s.ys, s.low or [], s.high or [])
        for v in arr
        if v is not None and math.isfinite(v)
    ]
    ys += [r[0] for r in refs]
    sy = Scale(*(ylim or padded_range(ys)), bottom, top)
    out = [legend_svg, _y_axis(sy, left, width - 10, ylabel), _x_axis(sx, bottom, top, xlabel, width)]
    for x, label in marks:
        out.append(
            f'<line x1="{sx(x):.0f}" x2="{sx(x):.0f}" y1="{top:.0f}" y2="{bottom:.0f}" stroke="#1f2933" stroke-dasharray="4 3"/>'
            + _text(sx(x) + 4, top + 10, label, cls="legend")
        )
    for y, label, col in refs:
        out.append(
            f'<g><title>{esc(label)}: {fmt(y)}</title><line x1="{left}" x2="{width - 10}" y1="{sy(y):.0f}" '
            f'y2="{sy(y):.0f}" stroke="{col}" stroke-dasharray="2 3" stroke-width="1.5"/></g>'
        )
    for i, s in enumerate(series):
        col = s.color or color(i)
        pts = [
            (x, y)
            for x, y in zip(s.xs, s.ys, strict=False)
            if y is not None and math.isfinite(y) and (not xlog or x > 0)
        ]
        if len(pts) > 1:
            d = " ".join(f"{sx(x):.0f},{sy(y):.0f}" for x, y in pts)
            dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
            out.append(f'<polyline fill="none" stroke="{col}" stroke-width="2"{dash} points="{d}"/>')
        for x, y in s.dots:
            if not xlog or x > 0:
                out.append(f'<circle cx="{sx(x):.0f}" cy="{sy(y):.0f}" r="2" fill="{col}" opacity="0.45"/>')
        for j, (x, y) in enumerate(zip(s.xs, s.ys, strict=False)):
            if y is None or not math.isfinite(y) or (xlog and x <= 0):
                continue
            lo = s.low[j] if s.low is not None else None
            hi = s.high[j] if s.high is not None else None
            tip = f"{s.name}: x={fmt(x)}, y={fmt(y)}"
            g = [f"<g><title>{esc(tip)}"]
            if lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi):
                g[0] += esc(f" [{fmt(lo)}, {fmt(hi)}]")
                cx = sx(x)
                g.append(
                    f'</title><line x1="{cx:.0f}" x2="{cx:.0f}" y1="{sy(lo):.0f}" y2="{sy(hi):.0f}" stroke="{col}" stroke-width="1.3"/>'
                )
                for e in (lo, hi):
                    g.append(
                        f'<line x1="{cx - 3:.0f}" x2="{cx + 3:.0f}" y1="{sy(e):.0f}" y2="{sy(e):.0f}" stroke="{col}" stroke-width="1.3"/>'
                    )
            else:
                g.append("</title>")
            g.append(f'<circle cx="{sx(x):.0f}" cy="{sy(y):.0f}" r="3.5" fill="{col}"/></g>')
            out.append("".join(g))
    return _svg(width, height, "".join(out), title)


def histogram(
    values: Sequence[float],
    *,
    bins: int = 20,
    hi: float | None = None,
    marks: Sequence[float] = (),
    xlabel: str = "",
    width: int = 480,
    height: int = 170,
    title: str = "",
) -> str:
    """A histogram of `values` on [0, hi]; `marks` are drawn as a rug below it (e.g. the top examples).
    Bars and rug are single paths (no per-bar hover): this chart is on every feature page."""
    vals = [v for v in values if math.isfinite(v)]
    top_v = hi if hi and hi > 0 else max(vals + list(marks) + [1e-9])
    counts = [0] * bins
    for v in vals:
        counts[min(int(v / top_v * bins), bins - 1) if v > 0 else 0] += 1
    left, top, bottom = 40, 8, height - 48
    sx = Scale(0.0, top_v, left, width - 12)
    sy = Scale(0.0, max(counts + [1]) * 1.1, bottom, top)
    out = [_y_axis(sy, left, width - 12, ""), _x_axis(sx, bottom + 12, top, xlabel, width)]
    bw = (sx.b - sx.a) / bins
    d = "".join(
        f"M{sx.a + bw * i + 0.5:.1f} {bottom}V{sy(c):.1f}h{bw - 1:.1f}V{bottom}z" for i, c in enumerate(counts) if c
    )
    out.append(
        f'<path class="hist" d="{d}"><title>{esc(", ".join(str(c) for c in counts))} (counts per bin)</title></path>'
    )
    if marks:
        d = "".join(f"M{sx(min(m, top_v)):.1f} {bottom + 2:.0f}v8" for m in marks)
        out.append(f'<path class="rug" d="{d}"><title>{esc(", ".join(fmt(m) for m in marks))}</title></path>')
    return _svg(width, height, "".join(out), title)


def hbars(
    labels: Sequence[str], values: Sequence[float], *, width: int = 360, xlabel: str = "", title: str = ""
) -> str:
    """Horizontal signed bars with their labels and values (e.g. the tokens a feature promotes)."""
    if not labels:
        return ""
    lw = min(140, int(12 + CHAR_W * max(len(s) for s in labels)))
    row_h, top = 18, 6
    height = top + row_h * len(labels) + 36
    sx = Scale(*padded_range(values, include_zero=True), lw + 8, width - 44)
    bottom = top + row_h * len(labels)
    z = sx(0.0)
    names, nums, paths = [], [], {True: "", False: ""}
    for i, (lab, v) in enumerate(zip(labels, values, strict=False)):
        y = top + row_h * i
        names.append(f'<text x="{lw}" y="{y + 13}">{esc(lab)}</text>')
        nums.append(f'<text x="{max(z, sx(v)) + 4:.0f}" y="{y + 13}">{esc(fmt(v))}</text>')
        paths[v >= 0] += f"M{min(z, sx(v)):.1f} {y + 3}h{abs(sx(v) - z):.1f}v{row_h - 6}h{-abs(sx(v) - z):.1f}z"
    out = [
        _x_axis(sx, bottom, top, xlabel, width),
        f'<g class="mono" text-anchor="end">{"".join(names)}</g>',
        f'<g class="tick">{"".join(nums)}</g>',
    ]
    out += [f'<path d="{d}" fill="{POSITIVE if sign else NEGATIVE}"/>' for sign, d in paths.items() if d]
    return _svg(width, height, "".join(out), title)


@dataclass
class Point:
    x: float
    y: float
    tip: str = ""
    href: str = ""
    color: str = ""
    emphasis: bool = False


def scatter(
    points: Sequence[Point],
    *,
    xlabel: str = "",
    ylabel: str = "",
    width: int = 560,
    height: int = 320,
    paths: Sequence[tuple[Sequence[tuple[float, float]], str]] = (),
    legend: Sequence[tuple[str, str]] = (),
    xlog: bool = False,
    ylog: bool = False,
    title: str = "",
) -> str:
    """Points (optionally links), with polylines `paths` (e.g. a Pareto front) drawn underneath."""
    if not points:
        return ""
    legend_svg, legend_h = _legend([(n, c, "") for n, c in legend], 64, 12, width - 84) if legend else ("", 0)
    top, left, bottom = 18 + legend_h, 64, height - 46

    def scale(vals, a, b, log):
        if log:
            pos = [v for v in vals if v > 0] or [1.0]
            return Scale(min(pos) / 1.5, max(pos) * 1.5, a, b, log=True)
        return Scale(*padded_range(vals), a, b)

    sx = scale([p.x for p in points], left + 8, width - 16, xlog)
    sy = scale([p.y for p in points], bottom, top, ylog)
    out = [legend_svg, _y_axis(sy, left, width - 10, ylabel), _x_axis(sx, bottom, top, xlabel, width)]
    for pts, col in paths:
        d = " ".join(f"{sx(x):.0f},{sy(y):.0f}" for x, y in pts if (not xlog or x > 0) and (not ylog or y > 0))
        out.append(f'<polyline fill="none" stroke="{col}" stroke-width="1.5" stroke-dasharray="4 3" points="{d}"/>')
    for p in points:
        if (xlog and p.x <= 0) or (ylog and p.y <= 0):
            continue
        r = 5.5 if p.emphasis else 4
        dot = (
            f'<g><title>{esc(p.tip)}</title><circle cx="{sx(p.x):.0f}" cy="{sy(p.y):.0f}" r="{r}" fill="{p.color or color(0)}" '
            f'stroke="{"#111" if p.emphasis else "none"}"/></g>'
        )
        out.append(f'<a href="{esc(p.href)}">{dot}</a>' if p.href else dot)
    return _svg(width, height, "".join(out), title)


def strip(groups: Sequence[tuple[str, Sequence[Point]]], *, xlabel: str = "", width: int = 640, title: str = "") -> str:
    """One row per group, each point a dot at its x (deterministic vertical jitter); the group mean is a bar."""
    groups = [(n, pts) for n, pts in groups if pts]
    if not groups:
        return ""
    lw = min(220, int(12 + CHAR_W * max(len(n) for n, _ in groups)))
    row_h, top = 30, 8
    height = top + row_h * len(groups) + 40
    sx = Scale(*padded_range([p.x for _, pts in groups for p in pts]), lw + 10, width - 16)
    bottom = top + row_h * len(groups)
    out = [_x_axis(sx, bottom, top, xlabel, width)]
    for gi, (name, pts) in enumerate(groups):
        cy = top + row_h * gi + row_h / 2
        out.append(_text(lw, cy + 4, name, "end", "row-label"))
        mean = sum(p.x for p in pts) / len(pts)
        out.append(
            f'<g><title>{esc(name)}: mean {fmt(mean)} (n={len(pts)})</title><line x1="{sx(mean):.0f}" x2="{sx(mean):.0f}" '
            f'y1="{cy - 11:.0f}" y2="{cy + 11:.0f}" stroke="#1f2933" stroke-width="2.5"/></g>'
        )
        for j, p in enumerate(pts):
            jitter = ((j * 7919) % 17 - 8) * 0.9  # fixed pseudo-random offsets: the same page every build
            dot = (
                f'<g><title>{esc(p.tip)}</title><circle cx="{sx(p.x):.0f}" cy="{cy + jitter:.0f}" r="3.5" '
                f'fill="{p.color or color(gi)}" fill-opacity="0.75"/></g>'
            )
            out.append(f'<a href="{esc(p.href)}">{dot}</a>' if p.href else dot)
    return _svg(width, height, "".join(out), title)


def heat_color(v: float, vmax: float) -> str:
    """White -> blue for non-negative values (e.g. transition probabilities)."""
    t = 0.0 if vmax <= 0 else max(0.0, min(1.0, v / vmax))
    r, g, b = (int(255 + (c - 255) * t) for c in (47, 109, 181))
    return f"rgb({r},{g},{b})"
