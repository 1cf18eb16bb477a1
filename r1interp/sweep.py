"""Sweeps as DVC experiments: read `dvc exp show --json`, find the Pareto front, apply a point.

A sweep is queued with e.g.
    dvc exp run --queue -S train.expansion_factor=8,16 -S train.k=8,16 && dvc exp run --run-all
and every experiment records `reports/metrics/transcoders.json`. Points trade off
reconstruction damage (CE increase with all layers spliced) against sparsity (L0) and
dead features; a point is on the front when no other point is at least as good on every
objective and strictly better on one.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from r1interp import paths
from r1interp.errors import R1InterpError

METRICS_FILE = paths.TRANSCODERS_METRICS.as_posix()  # the key `dvc exp show --json` gives the metrics file
OBJECTIVES = ("ce_increase", "l0", "dead_pct")  # all minimized
SWEPT = ("expansion_factor", "num_latents", "k", "lr", "optimizer", "auxk_alpha", "max_tokens")


@dataclass(frozen=True)
class Point:
    name: str
    rev: str
    params: dict
    model: str
    ce_increase: float
    l0: float
    dead_pct: float

    def objectives(self) -> tuple[float, ...]:
        return tuple(getattr(self, o) for o in OBJECTIVES)


def exp_show_json(repo: str | Path = ".") -> list:
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "show", "--json", "--all-commits"],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise R1InterpError(
            f"`dvc exp show --json` failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}"
        )
    return json.loads(proc.stdout)


def _walk(entries) -> list[dict]:
    """Every revision node (commits and experiments) of dvc's exp-show JSON."""
    found = []
    for entry in entries or []:
        if isinstance(entry, dict):
            if "data" in entry and "rev" in entry:
                found.append(entry)
            for child in entry.get("experiments") or []:
                found.extend(_walk(child.get("revs", [])))
    return found


def points_from_exp_show(data: list) -> list[Point]:
    points, seen = [], set()
    for node in _walk(data):
        body = node.get("data") or {}
        params = ((body.get("params") or {}).get("params.yaml") or {}).get("data") or {}
        metrics = ((body.get("metrics") or {}).get(METRICS_FILE) or {}).get("data") or {}
        name = node.get("name") or node["rev"][:7]
        if not metrics or node["rev"] == "workspace":
            continue
        for model, result in metrics.items():
            summary = result.get("summary") if isinstance(result, dict) else None
            if not summary:
                continue
            key = (node["rev"], model)
            if key in seen:
                continue
            seen.add(key)
            train = params.get("train", {})
            points.append(
                Point(
                    name=name,
                    rev=node["rev"],
                    params={k: train.get(k) for k in SWEPT if k in train},
                    model=model,
                    ce_increase=float(summary["ce_increase_all_layers"]),
                    l0=float(summary["mean_l0"]),
                    dead_pct=float(summary["max_dead_pct"]),
                )
            )
    return points


def pareto_front(points: list[Point]) -> list[Point]:
    front = []
    for p in points:
        dominated = any(
            q is not p
            and q.model == p.model
            and all(a <= b for a, b in zip(q.objectives(), p.objectives(), strict=True))
            and any(a < b for a, b in zip(q.objectives(), p.objectives(), strict=True))
            for q in points
        )
        if not dominated:
            front.append(p)
    return sorted(front, key=lambda p: (p.model, p.l0))


def write_report(points: list[Point], front: list[Point], out_dir: str | Path = paths.SWEEP_DIR) -> Path:
    from r1interp.io import atomic_path, write_json

    out_dir = Path(out_dir)
    on_front = {(p.rev, p.model) for p in front}
    rows = [{**p.__dict__, "on_front": (p.rev, p.model) in on_front} for p in points]
    write_json(
        out_dir / "pareto.json", {"objectives": list(OBJECTIVES), "points": rows, "front": [p.name for p in front]}
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for p in points:
        marker = "o" if (p.rev, p.model) in on_front else "x"
        ax.scatter(p.l0, p.ce_increase, marker=marker, c="tab:red" if marker == "o" else "tab:gray")
        ax.annotate(f"{p.name} {p.params}", (p.l0, p.ce_increase), fontsize=6)
    ax.set_xlabel("L0 (active latents per token)")
    ax.set_ylabel("CE increase, all layers spliced (nats)")
    ax.set_title("Transcoder sweep: Pareto front (o) of CE increase vs L0")
    fig.tight_layout()
    with atomic_path(out_dir / "pareto.png") as tmp:
        fig.savefig(tmp, format="png", dpi=130)
    plt.close(fig)
    return out_dir / "pareto.json"


def apply(point_params: dict, params_file: str | Path = "params.yaml") -> dict:
    """Write a point's swept train params into params.yaml (validated before writing)."""
    from r1interp.config import load_params, parse_params
    from r1interp.io import atomic_path

    params_file = Path(params_file)
    load_params(params_file)  # the current file must be valid before we touch it
    data = yaml.safe_load(params_file.read_text())
    changed = {}
    for key, value in point_params.items():
        if value is not None and data["train"].get(key) != value:
            changed[key] = (data["train"].get(key), value)
            data["train"][key] = value
    parse_params(data)
    text = params_file.read_text()
    for key, (_old, new) in changed.items():
        # Edit the values in place so comments and layout of params.yaml survive.
        pattern = re.compile(rf"^(\s+{key}:\s*)([^#\n]*?)(\s*(#.*)?)$", re.M)
        section = text.index("\ntrain:")
        match = pattern.search(text, section)
        if match is None:
            raise R1InterpError(f"{params_file}: could not find train.{key} to update")
        text = (
            text[: match.start(2)]
            + yaml.safe_dump(new, default_flow_style=True).strip().removesuffix("...").strip()
            + text[match.end(2) :]
        )
    with atomic_path(params_file) as tmp:
        tmp.write_text(text)
    load_params(params_file)
    return {k: v[1] for k, v in changed.items()}
