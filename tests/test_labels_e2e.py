"""End-to-end: activations -> labels on the tiny profile, offline and through the real anthropic
SDK against a local Messages-API server (faults, resume after a kill, missing key)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml

from claude_responder import respond
from helpers import _env, copied_project, run
from messages_server import MessagesServer

DVC = [sys.executable, "-m", "dvc"]
KEY = "sk-ant-test-key-e2e"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(pipeline_project, tmp_path_factory) -> Path:
    """A copy of the shared tiny pipeline (built through `labels` and beyond): this module changes it."""
    return copied_project(pipeline_project, tmp_path_factory.mktemp("labels-project") / "project")


def _set_params(project: Path, **labels) -> str:
    path = project / "params.yaml"
    good = path.read_text()
    data = yaml.safe_load(good)
    for key, value in labels.items():
        section = data["labels"]
        *parents, leaf = key.split("__")
        for p in parents:
            section = section[p]
        section[leaf] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return good


def _claude_env(server: MessagesServer) -> dict[str, str]:
    env = _env()
    env["ANTHROPIC_API_KEY"] = KEY
    env["ANTHROPIC_BASE_URL"] = server.url
    return env


def test_offline_labels_are_validated_and_scored(project: Path):
    from r1interp.schemas import ExampleSchema, FeatureSchema, LabelSchema, read_parquet

    features = read_parquet(project / "data/activations/reasoner/features.parquet", FeatureSchema)
    examples = read_parquet(project / "data/activations/reasoner/examples.parquet", ExampleSchema)
    assert sorted(features["layer"].unique()) == [0, 1]
    assert set(examples["kind"]) == {"top", "quantile", "non_activating"}
    labels = read_parquet(project / "data/labels/labels.parquet", LabelSchema)
    ok = labels[labels["status"] == "ok"]
    assert len(ok) > 0 and (ok["labeler"] == "offline").all()
    assert ok["label"].str.startswith("fires on ").all()
    metrics = json.loads((project / "reports/metrics/labels.json").read_text())
    assert metrics["labeler"] == "offline"
    assert set(ok["model"]) == {"reasoner", "base"}  # both models have transcoders in the tiny profile
    for model in ("reasoner", "base"):
        assert metrics[model]["labeled"] == int((ok["model"] == model).sum())
    assert 0.5 <= metrics["reasoner"]["detection_balanced_accuracy"] <= 1.0
    shown = run(DVC + ["metrics", "show", "--json"], project).stdout
    assert "detection_balanced_accuracy" in shown
    # the CLI shows a labeled feature with its marked examples
    first = ok.iloc[0]
    cli = [
        sys.executable,
        "-m",
        "r1interp.cli",
        "features",
        "show",
        str(first["layer"]),
        str(first["feature"]),
        "--repo",
        str(project),
    ]
    out = run(cli, project).stdout
    assert first["label"] in out and "-- top" in out and "<<" in out
    bad = run(cli[:5] + ["7", "0", "--repo", str(project)], project, check=False)
    assert bad.returncode == 2 and "no feature 0 in layer 7" in bad.stderr


def test_one_labeling_process_per_model_gives_the_same_labels(project: Path):
    """model.threads 2: the offline labeler runs one process per model; labels and scores must not change."""
    before = {name: pd.read_parquet(project / f"data/labels/{name}.parquet") for name in ("labels", "scores")}
    path = project / "params.yaml"
    good = path.read_text()
    data = yaml.safe_load(good)
    assert data["model"]["threads"] == 1  # the shared project labeled in one process
    data["model"]["threads"] = 2
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    try:
        out = run(DVC + ["repro", "-s", "-f", "labels"], project).stdout
    finally:
        path.write_text(good)
    assert "labeling 2 model(s) in 2 process(es)" in out
    assert "reasoner: labeling" in out and "base: labeling" in out
    for name, frame in before.items():
        pd.testing.assert_frame_equal(pd.read_parquet(project / f"data/labels/{name}.parquet"), frame)


def test_missing_api_key_fails_before_any_work(project: Path):
    good = _set_params(project, labeler="claude")
    before = (project / "data/labels/labels.parquet").read_bytes()
    try:
        env = _env()
        env.pop("ANTHROPIC_API_KEY", None)
        proc = subprocess.run(DVC + ["repro", "labels"], cwd=project, env=env, capture_output=True, text=True)
        assert proc.returncode != 0
        assert "ANTHROPIC_API_KEY is not set" in proc.stderr + proc.stdout
        assert (project / "data/labels/labels.parquet").read_bytes() == before
    finally:
        (project / "params.yaml").write_text(good)


def test_claude_labels_through_the_sdk_with_faults_and_resume(project: Path):
    """Kill the stage after some answers, re-run it: no prompt is ever answered twice."""
    good = _set_params(
        project,
        labeler="claude",
        max_features_per_layer=3,
        claude__concurrency=2,
        claude__max_retry_wait_s=0.5,
        claude__requests_per_minute=6000,
    )
    cache = project / "data/labels/cache/responses.jsonl"
    try:
        with MessagesServer(respond, api_key=KEY) as server:
            server.faults = ["429", "529", "500", "malformed"]
            server.max_delivered = 8  # later requests hang until we kill the stage
            proc = subprocess.Popen(
                DVC + ["repro", "labels"],
                cwd=project,
                env=_claude_env(server),
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            deadline = time.time() + 120
            while time.time() < deadline and proc.poll() is None:
                if cache.exists() and len(cache.read_text().splitlines()) >= 8:
                    break
                time.sleep(0.05)
            assert proc.poll() is None, f"stage ended before the kill: {proc.stderr.read()[-2000:]}"
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            first = Counter(server.delivered)
            statuses = [status for _, _, status in server.message_requests()]
            headers = list(server.headers_seen)
        # held requests die with their server instead of being answered to a dead client
        assert sum(first.values()) == 8
        assert {429, 529, 500} <= set(statuses)  # the faults were really served, and retried

        with MessagesServer(respond, api_key=KEY) as server:
            done = subprocess.run(
                DVC + ["repro", "labels"], cwd=project, env=_claude_env(server), capture_output=True, text=True
            )
            assert done.returncode == 0, done.stderr[-3000:]
            second = Counter(server.delivered)
            headers += server.headers_seen
        total = first + second
        assert max(total.values()) == 1, "a prompt was paid for twice"
        assert len(cache.read_text().splitlines()) == sum(total.values())
        # every request carried the key as a Bearer token; the key is nowhere on disk
        assert headers and all(h.get("authorization") == f"Bearer {KEY}" for h in headers)
        labels = pd.read_parquet(project / "data/labels/labels.parquet")
        # 3 features per layer x 2 layers, for each of the two models
        assert len(labels) == 12 and (labels["labeler"] == "claude").all()
        assert labels.groupby("model").size().to_dict() == {"base": 6, "reasoner": 6}
        assert labels["label"].str.startswith("the token ").all()
        assert labels["explainer_model"].eq("claude-sonnet-4-6").all()
        metrics = json.loads((project / "reports/metrics/labels.json").read_text())
        assert metrics["labeler"] == "claude" and "requests" not in metrics  # network-dependent: not hashed
        requests = json.loads((project / "reports/timings/labels.json").read_text())["requests"]
        assert requests["cache_hits"] >= 8
        _assert_scores_are_the_responders(project, labels, metrics)
        for path in [
            cache,
            project / "reports/metrics/labels.json",
            project / "reports/timings/labels.json",
            project / "dvc.lock",
        ]:
            assert KEY not in path.read_text()

        # a third run of the stage alone (-s: with -f alone DVC would force every stage above it too), everything
        # cached: it sends nothing at all
        with MessagesServer(respond, api_key=KEY) as quiet:
            again = subprocess.run(
                DVC + ["repro", "-f", "-s", "labels"],
                cwd=project,
                env=_claude_env(quiet),
                capture_output=True,
                text=True,
            )
            assert again.returncode == 0, again.stderr[-3000:]
            assert quiet.log == []
    finally:
        (project / "params.yaml").write_text(good)


def _assert_scores_are_the_responders(project: Path, labels: pd.DataFrame, metrics: dict) -> None:
    """The test responder is deterministic: its detection answer is whether the label's token occurs in the
    excerpt, so every prediction is known; every per-feature score is the binary metrics of its samples, and
    the stage's metrics are their averages."""
    import math
    import re

    from r1interp.autointerp.pipeline import summarize
    from r1interp.autointerp.prompts import visible
    from r1interp.autointerp.scoring import METHODS, METRICS, binary_metrics

    scores = pd.read_parquet(project / "data/labels/scores.parquet")
    assert len(scores) > 0
    for row in labels.itertuples():
        token = re.fullmatch(r'the token "(.*)"', row.label).group(1)
        mine = scores[
            (scores["model"] == row.model) & (scores["layer"] == row.layer) & (scores["feature"] == row.feature)
        ]
        detection = mine[mine["method"] == "detection"].sort_values("sample")
        assert len(detection) > 0
        assert detection["prediction"].tolist() == [token in visible(text) for text in detection["text"]]
        for method in METHODS:
            part = mine[mine["method"] == method].sort_values("sample")
            expected = binary_metrics(part["truth"].tolist(), part["prediction"].tolist())
            for metric in METRICS:
                got, want = getattr(row, f"{method}_{metric}"), expected[metric]
                assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want), (
                    row.feature,
                    method,
                    metric,
                )
    summary = summarize(labels)
    for model in ("reasoner", "base"):
        for key in ("labeled", "detection_balanced_accuracy", "fuzzing_balanced_accuracy", "detection_f1"):
            assert metrics[model][key] == summary[model][key], (model, key)
