"""Build the whole site into a temporary directory and move it into place only when every page is written.

Order matters because pages link to each other: graphs are read first (they name the features they use),
then the feature selection is fixed, then every page is written knowing which links resolve.
"""

from __future__ import annotations

import re
import shutil
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from r1interp import paths
from r1interp.config import Params
from r1interp.io import atomic_path
from r1interp.site.context import Context
from r1interp.site.html import esc, fmt
from r1interp.site.inputs import Inputs, missing
from r1interp.site.pages import experiments, features, flaw, graphs, interventions, motifs, overview, taxonomy

ASSETS = ("site.css", "site.js", "graph.js")
QUALITY_DIR = paths.QUALITY_DIR.as_posix()


@dataclass
class BuildSummary:
    out: Path
    pages: int
    feature_pages: int
    graph_pages: int
    bytes: int
    seconds: float


def build_site(
    root: str | Path,
    out: str | Path,
    params: Params,
    *,
    params_file: str = "params.yaml",
    exp_show: Callable[[], list] | None = None,
) -> BuildSummary:
    """Read the artifacts under `root`, write the site to `out` atomically (the old site stays until the new
    one is complete). `exp_show` returns `dvc exp show --json` output (None: the table is not collected)."""
    started = time.perf_counter()
    root, out = Path(root), Path(out)
    inputs = Inputs(root)
    with atomic_path(out, directory=True) as tmp:
        ctx = Context(out=tmp, inputs=inputs, params=params, footer=_footer(root, params), params_file=params_file)
        _copy_assets(tmp)
        gs = graphs.load(ctx)
        graphs.check_unique(gs)
        sel = features.select(ctx, gs.usage)
        ctx.feature_pages.update(sel.reasons)
        graphs.write(ctx, gs)
        features.write(ctx, sel, gs.usage)
        motifs.write(ctx)
        taxonomy.write(ctx)
        interventions.write(ctx)
        flaw.write(ctx)
        experiments.write(ctx, exp_show)
        _quality(ctx, tmp)
        _favicon(tmp)
        overview.write(ctx, _cards(ctx, gs))
        size = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
        summary = BuildSummary(out, len(ctx.pages_written), len(ctx.feature_pages), len(ctx.graph_pages), size, 0.0)
    summary.seconds = round(time.perf_counter() - started, 2)
    return summary


def _copy_assets(out: Path) -> None:
    dest = out / "assets"
    dest.mkdir(parents=True, exist_ok=True)
    source = resources.files("r1interp.site") / "assets"
    for name in ASSETS:
        (dest / name).write_bytes((source / name).read_bytes())


def _quality(ctx: Context, out: Path) -> None:
    """The Data Docs are copied (not linked), so the site can be moved or served on its own; their front page
    gets a link back to the report (GX's pages know nothing of it)."""
    src = ctx.inputs.path(QUALITY_DIR)
    if not (src / "index.html").is_file():
        overview.quality_placeholder(ctx, out)
        return
    shutil.copytree(src, out / "quality")
    front = out / "quality/index.html"
    html = front.read_text(encoding="utf-8", errors="replace")
    back = (
        '<div style="font:14px system-ui,sans-serif;padding:8px 16px;background:#1d2733">'
        '<a href="../index.html" style="color:#fff">← r1interp report</a></div>'
    )
    front.write_text(re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + back, html, count=1), encoding="utf-8")


def _favicon(out: Path) -> None:
    """A 16x16 icon at the root: browsers ask every origin for /favicon.ico, and a 404 there is noise in the
    console of pages that declare none (the copied Data Docs)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x1d\x27\x33" * 16 for _ in range(16))
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    (out / "favicon.ico").write_bytes(png)  # a PNG in .ico clothing: every current browser sniffs the format


def _footer(root: Path, params: Params) -> str:
    # No build time and no git commit: the site is a hashed DVC output, and the same inputs must give the
    # same bytes (a clone at another commit, or a rebuild tomorrow, would otherwise differ).
    from r1interp import __version__

    return f"r1interp {esc(__version__)} report · profile <code>{esc(params.model.profile)}</code> · built by <code>dvc repro</code> from the artifacts in dvc.lock"


def _flaw_card(inputs: Inputs) -> tuple[str, str, str, str, bool]:
    metrics = inputs.json(flaw.METRICS, flaw.STAGE)
    if missing(metrics):
        return ("Planted flaw", "flaw.html", "–", "find, localise and repair a planted flaw", False)
    if not metrics.get("applicable", True):
        return ("Planted flaw", "flaw.html", "not applicable", "the embedded organism only", True)
    met = metrics.get("meets_bar", [])
    return (
        "Planted flaw",
        "flaw.html",
        f"{len(met)} of {len(metrics.get('verdicts', {}))} repairs",
        "meet the bar",
        True,
    )


def _cards(ctx: Context, gs: graphs.GraphSet) -> list[tuple[str, str, str, str, bool]]:
    inputs = ctx.inputs
    compare = inputs.json(motifs.COMPARE, "compare")
    cmp_line, cmp_built = "–", not missing(compare)
    if cmp_built and isinstance(compare.get("comparisons"), dict):
        rvb = compare["comparisons"].get("reasoner_vs_base") or next(iter(compare["comparisons"].values()), {})
        cmp_line = f"{fmt(rvb.get('significant'))} / {fmt(rvb.get('statistics'))} differ"
    tax = inputs.json(taxonomy.TAXONOMY, "clusters")
    cl_metrics = inputs.json(taxonomy.METRICS, "clusters")
    ari = (
        ""
        if missing(cl_metrics)
        else f"ARI {fmt(cl_metrics.get('kmeans', {}).get('ari_vs_true_step_types'))} vs step types"
    )
    inter_built = inputs.exists(interventions.RESULTS) or inputs.exists(interventions.METRICS)
    pareto = inputs.json(experiments.PARETO, "sweep")
    quality = inputs.json(overview.QUALITY, "quality")
    q_line = (
        "–"
        if missing(quality)
        else f"{fmt(quality.get('overall', {}).get('passed'))} / {fmt(quality.get('overall', {}).get('checks'))}"
    )
    n_graphs = len(gs.graphs)
    return [
        (
            "Features",
            "features/index.html",
            f"{len(ctx.feature_pages):,} pages",
            "labels, scores, examples, uses",
            bool(ctx.feature_pages),
        ),
        (
            "Attribution graphs",
            "graphs/index.html",
            f"{n_graphs} graphs",
            f"+ {len(gs.references)} reference; interactive viewer",
            not missing(gs.index),
        ),
        ("Motifs", "motifs.html", cmp_line, "reasoner vs base (statistics with CI excluding 0)", cmp_built),
        (
            "Taxonomy",
            "taxonomy.html",
            "–" if missing(tax) else f"{tax['k']} step clusters",
            ari or "clusters of <think> steps",
            not missing(tax),
        ),
        (
            "Interventions",
            "interventions.html",
            "results" if inter_built else "–",
            "steering, ablation, weight edits",
            inter_built,
        ),
        _flaw_card(inputs),
        (
            "Experiments",
            "experiments.html",
            "–" if missing(pareto) else f"{len(pareto.get('points', []))} sweep points",
            "Pareto front, dvc exp show",
            not missing(pareto),
        ),
        ("Data quality", "quality/index.html", q_line, "Great Expectations checks passing", not missing(quality)),
    ]
