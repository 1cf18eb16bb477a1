"""End-to-end: `dvc repro` of the foundation stages on the tiny params profile, in a temp git repo (a copy of
the shared tiny pipeline of conftest.py, which built them: they are not built a second time)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from helpers import copied_project, run


@pytest.fixture(scope="module")
def built(pipeline_project, tmp_path_factory) -> Path:
    return copied_project(pipeline_project, tmp_path_factory.mktemp("foundation") / "project")


@pytest.mark.slow
def test_repro_builds_every_foundation_stage(built: Path):
    from r1interp.data import load_token_split
    from r1interp.models import load_model
    from r1interp.schemas import CorpusSchema, read_parquet

    corpus = read_parquet(built / "data/corpus/corpus.parquet", CorpusSchema)
    assert set(corpus["split"]) == {"train", "heldout"}
    for role in ("base", "reasoner"):
        loaded = load_model(built / "models/lm" / role)
        assert loaded.arch.n_layers == 2
        text = loaded.tokenizer.apply_chat_template(
            [{"role": "user", "content": "What is 12+34?"}], tokenize=False, add_generation_prompt=True
        )
        assert text.endswith("<｜Assistant｜>")
    ds, meta = load_token_split(built / "data/tokens/train")
    assert meta["ctx_len"] == 128 and len(ds) == meta["rows"] > 0
    assert meta["packing"] == "pad" and meta["truncated_documents"] == 0
    first = ds[0]["input_ids"]
    assert first[0] == loaded.tokenizer.bos_token_id  # one chat turn per row, from its BOS
    assert 0 < meta["think_fraction"] < 1
    metrics = json.loads((built / "reports/metrics/organism.json").read_text())
    expected = _recomputed_accuracies(built, corpus)
    assert metrics["heldout_problems"] == 20  # organism.eval.problems_per_task 10, two tasks
    for role in ("base", "reasoner"):
        assert set(metrics[role]["accuracy"]) == {"add", "mul", "overall"}
        assert metrics[role]["accuracy"] == expected[role], role
        assert "train_cpu_seconds" not in metrics[role]  # times are not hashed outputs...
        timing = json.loads((built / f"reports/timings/organism-{role}.json").read_text())
        assert timing["train_cpu_seconds"] > 0 and timing["wall_seconds"] > 0  # ...but kept beside them
        assert 50 < timing["peak_rss_mb"] < 100_000  # MB, not KiB or bytes


@pytest.mark.slow
def test_second_repro_is_up_to_date_and_metrics_show(built: Path):
    again = run([sys.executable, "-m", "dvc", "repro", "tokens", "organism-eval"], built)
    assert "Data and pipelines are up to date" in again.stdout
    shown = json.loads(run([sys.executable, "-m", "dvc", "metrics", "show", "--json"], built).stdout)
    flat = json.dumps(shown)
    assert "reasoner" in flat and "accuracy" in flat


@pytest.mark.slow
def test_broken_params_fail_clearly_and_keep_outputs(built: Path):
    params = built / "params.yaml"
    good = params.read_text()
    before = sorted(p.name for p in (built / "models/lm/base").iterdir())
    try:
        params.write_text(good.replace("  layers: 2\n", "  layers: 0\n", 1))
        proc = run([sys.executable, "-m", "dvc", "repro", "tokens", "organism-eval"], built, check=False)
        assert proc.returncode != 0
        assert "error: params.yaml: organism.layers: 0 is out of range; must be >= 1" in proc.stderr + proc.stdout
        # persist: true + atomic writes -> the last good model is still there
        assert sorted(p.name for p in (built / "models/lm/base").iterdir()) == before
    finally:
        params.write_text(good)
    status = run([sys.executable, "-m", "dvc", "status", "tokens", "organism-eval", "--with-deps"], built).stdout
    assert "up to date" in status


@pytest.mark.slow
def test_a_bad_param_keeps_the_metrics_of_a_metrics_only_stage(built: Path):
    """organism-eval writes only a metrics file (not cached by DVC): without `persist` DVC deletes it before the
    failing run, and it could come back only from git."""
    metrics = built / "reports/metrics/organism.json"
    before = metrics.read_bytes()
    params = built / "params.yaml"
    good = params.read_text()
    try:
        params.write_text(good.replace("    problems_per_task: ", "    problems_per_task: -", 1))
        proc = run([sys.executable, "-m", "dvc", "repro", "organism-eval"], built, check=False)
        assert proc.returncode != 0
        assert "error: params.yaml: organism.eval.problems_per_task: " in proc.stderr + proc.stdout
    finally:
        params.write_text(good)
    assert metrics.read_bytes() == before
    status = run([sys.executable, "-m", "dvc", "status", "organism-eval"], built).stdout
    assert "up to date" in status


def _recomputed_accuracies(project: Path, corpus) -> dict:
    """Greedy answers of both organisms to the first 10 held-out problems of each task, graded here."""
    from r1interp.models import load_model
    from r1interp.organism.evaluate import generate, parse_answer

    heldout = corpus[corpus["split"] == "heldout"].groupby("task", group_keys=False).head(10)
    out = {}
    for role in ("base", "reasoner"):
        loaded = load_model(project / "models/lm" / role)
        answers = generate(loaded.model, loaded.tokenizer, heldout["prompt"].tolist(), max_new_tokens=96, batch_size=20)  # type: ignore[arg-type]  # LoadedModel fields are untyped objects
        right = [parse_answer(a) == parse_answer(gold) for a, gold in zip(answers, heldout["answer"], strict=True)]
        by_task = {
            task: sum(r for r, t in zip(right, heldout["task"], strict=True) if t == task) / 10
            for task in ("add", "mul")
        }
        out[role] = {**{t: round(v, 4) for t, v in by_task.items()}, "overall": round(sum(right) / len(right), 4)}
    return out
