"""The data-quality report (Great Expectations) on small synthetic artifacts: good data passes every
suite; each corruption fails the right suite and the summary names the failed expectation."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from r1interp.config import parse_params

ROOT = Path(__file__).resolve().parents[1]
VOCAB, BOS, PAD, CTX = 50, 0, 6, 16
LAYERS, LATENTS = 2, 32  # organism.hidden 8 x train.expansion_factor 4
HELDOUT_ROWS, TRAIN_ROWS = 12, 20
N_TOKENS = 100

PARAMS = {
    "corpus": {
        "train_per_task": 30,
        "heldout_per_task": 5,
        "tasks": {"add": {"min_digits": 2, "max_digits": 2}, "mul": {"min_digits": 2, "max_digits": 2}},
    },
    "organism": {
        "vocab_size": 384,
        "layers": LAYERS,
        "hidden": 8,
        "intermediate": 16,
        "heads": 2,
        "kv_heads": 1,
        "max_positions": 32,
    },
    "tokens": {"ctx_len": CTX, "max_train_tokens": 1000, "max_heldout_tokens": 1000},
    "train": {"models": ["reasoner"], "expansion_factor": 4, "k": 4},
    "activations": {
        "max_tokens": 1000,
        "window": 4,
        "top_n": 3,
        "quantile_bins": 2,
        "per_quantile": 2,
        "non_activating": 3,
        "top_output_tokens": 3,
    },
    "labels": {"min_activating": 2, "explain_examples": 3, "test_activating": 2, "test_non_activating": 2},
    "graphs": {"models": ["reasoner"]},
    # the flaw experiment's corrected examples come from the training split, so they fit this small corpus
    "flaw": {"repair": {"examples": 8}},
}


def _corpus() -> pd.DataFrame:
    rows = []
    for task, op in (("add", "+"), ("mul", "*")):
        for i in range(35):
            a, b = 10 + i, 20 + i
            answer = f"The answer is {a + b if task == 'add' else a * b}."
            think = f"ones: {a % 10}{op}{b % 10}"
            rows.append(
                {
                    "id": f"{task}-{a}-{b}",
                    "task": task,
                    "prompt": f"What is {a}{op}{b}?",
                    "think": think,
                    "answer": answer,
                    "gold": answer[len("The answer is ") : -1],
                    "text": f"<|User|>What is {a}{op}{b}?<|Assistant|><think>\n{think}\n</think>\n\n{answer}",
                    "split": "heldout" if i < 5 else "train",
                    "step_types": "column_sum",
                    "has_carry": bool(i % 2),
                }
            )
    return pd.DataFrame(rows)


def _token_rows(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    ids = np.full((n, CTX), PAD, dtype=np.int32)
    think = np.zeros((n, CTX), bool)
    answer = np.zeros((n, CTX), bool)
    for r in range(n):
        length = int(rng.integers(8, CTX))
        ids[r, 0] = BOS
        ids[r, 1:length] = rng.integers(PAD + 1, VOCAB, length - 1)
        think[r, 2 : length - 3] = True
        answer[r, length - 3 : length] = True
    docs = np.repeat(np.arange(n, dtype=np.int32)[:, None], CTX, axis=1)
    return {"input_ids": ids, "doc_ids": docs, "in_think": think, "in_answer": answer}


def _write_tokens(root: Path, split: str, rows: dict[str, np.ndarray]) -> None:
    from r1interp.data import write_token_split

    ids = rows["input_ids"]
    meta = {
        "split": split,
        "rows": len(ids),
        "ctx_len": CTX,
        "tokens": int(ids.size),
        "vocab_size": VOCAB,
        "tokenizer": "models/lm/reasoner",
        "packing": "pad",
        "truncated_documents": 0,
        "padding_fraction": round(float((ids == PAD).mean()), 4),
        "think_fraction": round(float(rows["in_think"].mean()), 4),
        "answer_fraction": round(float(rows["in_answer"].mean()), 4),
    }
    documents = pd.DataFrame({"doc_index": range(len(ids)), "id": [f"doc{i}" for i in range(len(ids))], "task": "add"})
    write_token_split(root / "data/tokens" / split, rows, documents, meta)


def _activations(rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    features, examples = [], []
    for layer in range(LAYERS):
        for f in range(LATENTS):
            count = 0 if f % 8 == 0 else int(rng.integers(1, 20))  # every 8th feature is dead
            max_act = float(rng.uniform(1, 5)) if count else 0.0
            features.append(
                {
                    "model": "reasoner",
                    "layer": layer,
                    "feature": f,
                    "n_tokens": N_TOKENS,
                    "count": count,
                    "density": count / N_TOKENS,
                    "max_act": max_act,
                    "mean_act": max_act / 2,
                    "think_fraction": 0.5 if count else 0.0,
                    "top_output_tokens": ["a", "b", "c"],
                    "top_output_logits": [0.3, 0.2, 0.1],
                }
            )
            kinds = [("non_activating", r, -1) for r in range(3)]
            if count:
                kinds += [("top", r, -1) for r in range(3)] + [("quantile", r, r // 2) for r in range(4)]
            for kind, rank, quantile in kinds:
                act = 0.0 if kind == "non_activating" else max_act / (rank + 1)
                acts = [0.0, 0.0, act, 0.0]
                examples.append(
                    {
                        "model": "reasoner",
                        "layer": layer,
                        "kind": kind,
                        "feature": f,
                        "rank": rank,
                        "quantile": quantile,
                        "row": int(rng.integers(0, HELDOUT_ROWS)),
                        "position": int(rng.integers(0, CTX)),
                        "activation": act,
                        "in_think": bool(rank % 2),
                        "target": 2,
                        "tokens": [7, 8, 9, 10],
                        "acts": acts,
                    }
                )
    return pd.DataFrame(features), pd.DataFrame(examples)


def _labels(features: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    labels, scores = [], []
    alive = features[features["count"] > 0].reset_index(drop=True)
    for i, f in alive.iterrows():
        ok = i != 0  # one feature without a rule
        acc = 0.75 if ok else np.nan
        labels.append(
            {
                "model": f["model"],
                "layer": f["layer"],
                "feature": f["feature"],
                "label": f"fires on {i}" if ok else None,
                "status": "ok" if ok else "no_rule",
                "labeler": "offline",
                "explainer_model": "offline-ngram-v1",
                "scorer_model": "offline-ngram-v1",
                "prompt_hash": hashlib.sha256(str(i).encode()).hexdigest(),
                "n_explain": 3,
                "n_test_activating": 2,
                "n_test_negative": 2,
                "density": f["density"],
                "think_fraction": f["think_fraction"],
                **{
                    f"{m}_{k}": acc
                    for m in ("detection", "fuzzing")
                    for k in ("balanced_accuracy", "precision", "recall", "f1")
                },
            }
        )
        if ok:
            for method in ("detection", "fuzzing"):
                for sample in range(4):
                    truth = sample < 2
                    scores.append(
                        {
                            "model": f["model"],
                            "layer": f["layer"],
                            "feature": f["feature"],
                            "method": method,
                            "sample": sample,
                            "truth": truth,
                            "prediction": truth if sample else not truth,
                            "text": f"window {sample}",
                        }
                    )
    return pd.DataFrame(labels), pd.DataFrame(scores)


def make_artifacts(root: Path, corrupt: bool = False) -> None:
    """A tiny organism project's artifacts; `corrupt` plants one defect per suite checked below."""
    rng = np.random.default_rng(0)
    model = root / "models/lm/reasoner"
    model.mkdir(parents=True)
    (model / "config.json").write_text(
        json.dumps(
            {
                "vocab_size": VOCAB,
                "bos_token_id": BOS,
                "pad_token_id": PAD,
                "num_hidden_layers": LAYERS,
                "hidden_size": 8,
            }
        )
    )
    (model / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "bos_token": "<bos>",
                "pad_token": "<pad>",
                "added_tokens_decoder": {str(BOS): {"content": "<bos>"}, str(PAD): {"content": "<pad>"}},
            }
        )
    )
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))

    corpus = _corpus()
    heldout = _token_rows(HELDOUT_ROWS, rng)
    features, examples = _activations(rng)
    labels, scores = _labels(features)
    if corrupt:
        corpus.loc[10, "id"] = corpus.loc[11, "id"]  # duplicate corpus id
        heldout["input_ids"][3, 2] = VOCAB  # token id outside the vocabulary
        features.loc[1, "density"] = 1.5  # density > 1
        labels.loc[1, "detection_balanced_accuracy"] = np.nan  # status ok without a score
    (root / "data/corpus").mkdir(parents=True)
    corpus.to_parquet(root / "data/corpus/corpus.parquet", index=False)
    _write_tokens(root, "train", _token_rows(TRAIN_ROWS, rng))
    _write_tokens(root, "heldout", heldout)
    acts = root / "data/activations/reasoner"
    acts.mkdir(parents=True)
    features.to_parquet(acts / "features.parquet", index=False)
    examples.to_parquet(acts / "examples.parquet", index=False)
    (root / "data/labels").mkdir(parents=True)
    labels.to_parquet(root / "data/labels/labels.parquet", index=False)
    if not corrupt:  # the corrupted project has no scores at all
        scores.to_parquet(root / "data/labels/scores.parquet", index=False)


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("quality-good")
    make_artifacts(root)
    return root


def test_schemas_accept_the_synthetic_artifacts(good):
    """The synthetic data is valid by the pipeline's own (pandera) schemas, so the suites are tested on
    realistic artifacts."""
    from r1interp.data import load_token_split
    from r1interp.schemas import CorpusSchema, ExampleSchema, FeatureSchema, LabelSchema, read_parquet

    read_parquet(good / "data/corpus/corpus.parquet", CorpusSchema)
    read_parquet(good / "data/activations/reasoner/features.parquet", FeatureSchema)
    read_parquet(good / "data/activations/reasoner/examples.parquet", ExampleSchema)
    read_parquet(good / "data/labels/labels.parquet", LabelSchema)
    load_token_split(good / "data/tokens/heldout", VOCAB)


def test_stage_passes_on_good_data_and_writes_offline_docs(good):
    before = sorted(p.name for p in (good / "data/tokens/train/dataset").iterdir())
    proc = subprocess.run(
        [sys.executable, str(ROOT / "stages/quality.py"), "--strict"],
        cwd=good,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((good / "reports/metrics/quality.json").read_text())
    failed = {name: s["failed"] for name, s in summary.items() if name != "overall" and not s["success"]}
    assert failed == {}
    assert summary["overall"]["success"] is True
    assert set(summary) == {
        "corpus",
        "tokens",
        "tokens_train",
        "tokens_heldout",
        "features_reasoner",
        "examples_reasoner",
        "labels",
        "scores",
        "overall",
    }
    assert all(s["evaluated"] == s["expectations"] > 5 for name, s in summary.items() if name != "overall")
    assert summary["overall"]["checks"] == sum(s["evaluated"] for n, s in summary.items() if n != "overall")

    from r1interp.quality import external_resources

    site = good / "reports/quality"
    index = (site / "index.html").read_text()
    assert "all suites pass" in index
    assert len(list((site / "validations").rglob("*.html"))) == 8
    assert (site / "expectations" / "corpus.html").is_file()
    assert external_resources(site) == []  # no CDN scripts/stylesheets or remote images left
    assert not list(site.parent.glob(".quality.tmp-*"))  # built atomically
    # sampling the token rows must not write cache files into the DVC-tracked dataset
    assert sorted(p.name for p in (good / "data/tokens/train/dataset").iterdir()) == before


def test_corruptions_fail_the_right_suites(tmp_path):
    from r1interp.quality import run_quality

    make_artifacts(tmp_path, corrupt=True)
    params = parse_params(PARAMS)
    summary = run_quality(tmp_path, params, tmp_path / "docs")

    expected = {
        "corpus": "expect_column_values_to_be_unique(id)",
        "tokens_heldout": "expect_column_values_to_be_between(max_id)",
        "features_reasoner": "expect_column_values_to_be_between(density)",
        "labels": "expect_column_values_to_not_be_null(detection_balanced_accuracy) where status == 'ok'",
        "scores": "artifact_readable",
    }
    for suite, name in expected.items():
        assert summary[suite]["success"] is False, suite
        assert name in summary[suite]["failed"], (suite, summary[suite]["failed"])
    for suite in ("tokens", "tokens_train", "examples_reasoner"):
        assert summary[suite]["success"] is True, (suite, summary[suite]["failed"])
    assert "file not found" in summary["scores"]["error"]
    assert summary["overall"]["success"] is False
    assert set(summary["overall"]["failed_suites"]) == set(expected)
    index = (tmp_path / "docs" / "index.html").read_text()
    assert "some suites fail" in index and "expect_column_values_to_be_unique(id)" in index


@pytest.mark.parametrize(
    "task, lo, hi, expected",
    [
        ("add", 1, 1, 10 * 10),  # operands 0..9
        ("add", 1, 3, 1000 * 1000),  # 0..999
        ("add", 2, 3, 990 * 990),  # 10..999
        ("add", 3, 5, 99900 * 99900),  # 100..99999
        ("mul", 1, 1, 10 * 8),  # 0..9 times a one-digit factor 2..9
        ("mul", 2, 3, 990 * 8),
        ("mul", 3, 5, 99900 * 8),
    ],
)
def test_problem_space_matches_the_corpus_module(task, lo, hi, expected):
    """Both copies of the formula against hand counts of the operand ranges (not against each other)."""
    from r1interp.corpus import _problem_space
    from r1interp.quality import problem_space

    assert problem_space(task, lo, hi) == expected
    assert _problem_space(task, lo, hi) == expected


@pytest.mark.parametrize("task, lo, hi", [("add", 1, 1), ("mul", 1, 1), ("mul", 1, 2)])
def test_problem_space_is_what_the_sampler_reaches(task, lo, hi):
    """The distinct (a, b) the corpus sampler draws, exhausted on small spaces: exactly the counted space."""
    import random

    from r1interp.organism import tasks
    from r1interp.quality import problem_space

    rng = random.Random(0)
    seen = {
        (p.a, p.b) for p in (tasks.sample_problem(task, rng, lo, hi) for _ in range(25 * problem_space(task, lo, hi)))
    }
    assert len(seen) == problem_space(task, lo, hi)


def test_layer_set_and_corpus_counts():
    from r1interp.quality import corpus_task_counts, layer_set

    assert layer_set(["all"], 4) == (0, 1, 2, 3)
    assert layer_set(["0", "2-3"], 4) == (0, 2, 3)
    params = parse_params({**PARAMS, "corpus": {"train_per_task": 20000, "heldout_per_task": 500}})
    assert corpus_task_counts(params) == {"add": (20000, 500), "mul": (7420, 500)}  # 2-3 digit mul: 7920 problems
