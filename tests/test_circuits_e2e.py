"""End-to-end: graphs -> motifs -> compare on the tiny profile (both organisms), in a temp git repo."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from helpers import copied_project, run
from r1interp.graphs.schema import read_graph
from r1interp.schemas import GraphIndexSchema, read_parquet

DVC = [sys.executable, "-m", "dvc"]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(pipeline_project, tmp_path_factory) -> Path:
    """A copy of the shared tiny pipeline: these tests run DVC and edit params.yaml."""
    return copied_project(pipeline_project, tmp_path_factory.mktemp("circuits") / "project")


def test_graphs_are_valid_labeled_and_faithful(project: Path):
    index = read_parquet(project / "data/graphs/index.parquet", GraphIndexSchema)
    ok = index[index["status"] == "ok"]
    assert set(ok["model"]) == {"reasoner", "base"}
    assert set(ok[ok["model"] == "reasoner"]["kind"]) == {"think", "answer"}
    assert set(ok[ok["model"] == "base"]["kind"]) == {"answer"}
    assert index[index["status"] == "skipped"]["reason"].str.len().gt(0).all()
    labels = pd.read_parquet(project / "data/labels/labels.parquet")
    labels = {(r.model, r.layer, r.feature): r.label for r in labels.itertuples() if r.label}
    clerps = 0
    for row in ok.itertuples():
        doc = read_graph(project / "data/graphs" / row.path)
        info = doc["metadata"]["info"]
        assert (info["model"], info["prompt_id"], info["kind"]) == (row.model, row.prompt_id, row.kind)
        for node in doc["nodes"]:
            if node["feature_type"] == "cross layer transcoder" and node["clerp"]:
                layer, feature = int(node["layer"]), int(node["node_id"].split("_")[1])
                assert labels[(row.model, layer, feature)] == node["clerp"]
                clerps += 1
    assert clerps > 0
    metrics = json.loads((project / "reports/metrics/graphs.json").read_text())
    for model in ("reasoner", "base"):
        assert 0 < metrics[model]["answer"]["replacement"] <= 1
        assert metrics[model]["answer"]["graphs"] == int(((ok["model"] == model) & (ok["kind"] == "answer")).sum())
    faith = metrics["faithfulness"]
    assert faith["edges"] > 0 and faith["within_tolerance"] and faith["max_relative_error"] < 1e-3


def test_motif_tables_include_the_reference_graph(project: Path):
    census = pd.read_parquet(project / "reports/motifs/tables/census.parquet")
    haiku = census[census["origin"] == "reference"].iloc[0]
    # the Claude 3.5 Haiku graph's triad census, errors dropped (checked against igraph in test_motifs)
    assert (haiku["nodes"], haiku["edges"], haiku["triad_030T"], haiku["triad_021U"]) == (78, 1282, 9213, 9960)
    ours = census[census["origin"] == "ours"]
    index = pd.read_parquet(project / "data/graphs/index.parquet")
    assert len(ours) == int((index["status"] == "ok").sum())
    z = pd.read_parquet(project / "reports/motifs/tables/zscores.parquet")
    assert set(z["null"]) == {"layer_configuration", "configuration"}
    assert (z.groupby(["graph", "null"])["samples"].first() == 20).all()


def test_comparisons_and_plots(project: Path):
    diffs = pd.read_csv(project / "reports/motifs/compare/differences.csv")
    assert {"reasoner_vs_base", "reasoner_vs_opposite_of_small", "base_vs_opposite_of_small"} <= set(
        diffs["comparison"]
    )
    rb = diffs[diffs["comparison"] == "reasoner_vs_base"]
    finite = rb.dropna(subset=["ci_low"])
    assert (
        len(finite)
        and (finite["ci_low"] <= finite["difference"]).all()
        and (finite["difference"] <= finite["ci_high"]).all()
    )
    for png in (
        "zscores_by_category.png",
        "significance_profile_by_category.png",
        "differences_sp.png",
        "differences_z.png",
    ):
        assert (project / "reports/motifs/compare" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((project / "reports/metrics/compare.json").read_text())
    assert metrics["null"] == "layer_configuration" and "reasoner_vs_base" in metrics["comparisons"]
    # graphs -> motifs -> compare and everything upstream are up to date (`dvc status` names stale stages)
    assert "Data and pipelines are up to date" in run(DVC + ["status", "compare"], project).stdout


def test_motifs_cli_reads_our_graphs(project: Path):
    index = pd.read_parquet(project / "data/graphs/index.parquet")
    row = index[(index["status"] == "ok") & (index["model"] == "reasoner") & (index["kind"] == "answer")].iloc[0]
    path = project / "data/graphs" / row["path"]
    out = run(
        [
            sys.executable,
            "-m",
            "r1interp.cli",
            "motifs",
            str(path),
            "--json",
            "--samples",
            "10",
            "--workers",
            "1",
            "--null",
            "erdos_renyi",
        ],
        project,
    )
    result = json.loads(out.stdout)
    census = pd.read_parquet(project / "reports/motifs/tables/census.parquet").set_index("graph").loc[row["slug"]]
    assert (result["graph"]["nodes"], result["graph"]["edges"]) == (census["nodes"], census["edges"])
    assert result["triad_census"]["030T"] == census["triad_030T"]
    assert set(result["nulls"]) == {"erdos_renyi"}


def test_bad_graph_params_fail_before_work(project: Path):
    path = project / "params.yaml"
    good = path.read_text()
    data = yaml.safe_load(good)
    data["train"]["models"] = ["reasoner"]
    try:
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        proc = run(DVC + ["repro", "graphs"], project, check=False)
        assert proc.returncode != 0
        assert "graphs.models: base has no transcoders" in proc.stderr + proc.stdout
        data["train"]["models"] = ["reasoner", "base"]
        data["compare"]["null_model"] = "erdos_renyi"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        proc = run(DVC + ["repro", "compare"], project, check=False)
        assert "compare.null_model: 'erdos_renyi' is not computed" in proc.stderr + proc.stdout
    finally:
        path.write_text(good)
    assert (project / "data/graphs/index.parquet").exists()
