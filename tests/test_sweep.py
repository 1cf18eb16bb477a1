"""Pareto front over experiments, parsing dvc's exp-show JSON, and applying a point to params.yaml."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from r1interp import sweep
from r1interp.config import load_params
from r1interp.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def _node(rev, name, k, ef, ce, l0, dead, experiments=None):
    return {
        "rev": rev,
        "name": name,
        "error": None,
        "data": {
            "rev": rev,
            "params": {"params.yaml": {"data": {"train": {"k": k, "expansion_factor": ef, "layer_groups": ["all"]}}}},
            "metrics": {
                sweep.METRICS_FILE: {
                    "data": {
                        "reasoner": {"summary": {"ce_increase_all_layers": ce, "mean_l0": l0, "max_dead_pct": dead}}
                    }
                }
            },
        },
        "experiments": experiments,
    }


def exp_show():
    exps = [
        _node("e1" * 20, "exp-a", 8, 8, 0.020, 8.0, 1.0),
        _node("e2" * 20, "exp-b", 16, 8, 0.010, 16.0, 1.0),
        _node("e3" * 20, "exp-c", 16, 16, 0.012, 16.0, 2.0),  # dominated by exp-b
        _node("e4" * 20, "exp-d", 4, 16, 0.050, 4.0, 0.5),
    ]
    return [
        {**_node("workspace", None, 16, 16, 0.012, 16.0, 2.0), "experiments": None},
        _node(
            "c0" * 20, "main", 16, 16, 0.012, 16.0, 2.0, experiments=[{"revs": [e], "name": e["name"]} for e in exps]
        ),
    ]


def test_points_skip_workspace_and_read_params():
    points = sweep.points_from_exp_show(exp_show())
    assert sorted(p.name for p in points) == ["exp-a", "exp-b", "exp-c", "exp-d", "main"]
    a = next(p for p in points if p.name == "exp-a")
    assert a.params == {"k": 8, "expansion_factor": 8} and (a.ce_increase, a.l0, a.dead_pct) == (0.02, 8.0, 1.0)


def test_pareto_front_drops_dominated_points():
    points = sweep.points_from_exp_show(exp_show())
    front = {p.name for p in sweep.pareto_front(points)}
    # exp-c and main (identical to exp-c) are dominated by exp-b: same L0, lower CE, fewer dead
    assert front == {"exp-a", "exp-b", "exp-d"}


def test_report_files(tmp_path):
    points = sweep.points_from_exp_show(exp_show())
    path = sweep.write_report(points, sweep.pareto_front(points), tmp_path)
    report = yaml.safe_load(path.read_text())
    assert sum(p["on_front"] for p in report["points"]) == 3
    assert (tmp_path / "pareto.png").read_bytes()[:4] == b"\x89PNG"


def test_apply_edits_params_in_place_and_validates(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    changed = sweep.apply({"k": 8, "expansion_factor": 32}, params)
    assert changed == {"k": 8, "expansion_factor": 32}
    loaded = load_params(params)
    assert (loaded.train.k, loaded.train.expansion_factor) == (8, 32)
    assert "# 0: hidden size x expansion_factor" in params.read_text()  # comments survive
    before = params.read_text()
    with pytest.raises(ConfigError, match="train.k"):
        sweep.apply({"k": 10**6}, params)
    assert params.read_text() == before  # a rejected point changes nothing
