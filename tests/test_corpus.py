"""The reasoning corpus (synthetic and OpenR1 layout) and the parquet schema checks."""

from __future__ import annotations

import pandas as pd
import pytest

from r1interp import chat, schemas
from r1interp.config import CorpusParams, HubCorpusParams, TaskParams
from r1interp.corpus import full_text, openr1_corpus, synthetic_corpus
from r1interp.errors import ArtifactError
from r1interp.organism import tasks

TASKS = {"add": TaskParams(2, 3), "mul": TaskParams(2, 3)}


def _params(**kw) -> CorpusParams:
    base = dict(seed=0, train_per_task=200, heldout_per_task=30, tasks=TASKS)
    base.update(kw)
    return CorpusParams(**base)


@pytest.fixture(scope="module")
def corpus() -> pd.DataFrame:
    return synthetic_corpus(_params())


# ------------------------------------------------------------------ synthetic


def test_synthetic_corpus_passes_schema(corpus):
    out = schemas.validate(corpus, schemas.CorpusSchema, "synthetic")
    assert len(out) == len(corpus)
    assert list(corpus.columns) == list(schemas.CorpusSchema.to_schema().columns)


def test_synthetic_counts_and_ids(corpus):
    assert corpus["id"].is_unique
    counts = corpus.groupby(["task", "split"]).size().to_dict()
    assert counts == {("add", "heldout"): 30, ("add", "train"): 200, ("mul", "heldout"): 30, ("mul", "train"): 200}


def test_synthetic_rows_are_consistent(corpus):
    for row in corpus.itertuples():
        p = tasks.make_problem(row.task, *map(int, row.id.split("-")[1:]))
        assert row.prompt == p.prompt
        assert row.think == p.think
        assert row.answer == p.answer_text
        assert row.text == full_text(p.prompt, p.think, p.answer_text)
        assert row.step_types == "|".join(p.step_types)
        assert row.has_carry == p.has_carry
        assert 10 <= p.a <= 999
        if row.task == "add":
            assert 10 <= p.b <= 999
    assert corpus["has_carry"].any() and not corpus["has_carry"].all()


def test_heldout_disjoint_from_train(corpus):
    for task, group in corpus.groupby("task"):
        held = set(group.loc[group.split == "heldout", "prompt"])
        train = set(group.loc[group.split == "train", "prompt"])
        assert held and train
        assert not held & train, task


def test_synthetic_is_deterministic(corpus):
    again = synthetic_corpus(_params())
    pd.testing.assert_frame_equal(corpus, again)
    other = synthetic_corpus(_params(seed=1))
    assert set(other["id"]) != set(corpus["id"])
    assert list(other["id"]) != list(corpus["id"])


def test_only_selected_tasks():
    df = synthetic_corpus(_params(train_per_task=20, heldout_per_task=5, tasks={"mul": TaskParams(1, 2)}))
    assert set(df["task"]) == {"mul"}
    assert len(df) == 25


def test_small_space_caps_training_problems():
    # One-digit addition has exactly 10 * 10 = 100 distinct problems.
    df = synthetic_corpus(_params(train_per_task=200, heldout_per_task=30, tasks={"add": TaskParams(1, 1)}))
    assert (df["split"] == "heldout").sum() == 30
    assert len(df) <= 100
    assert df["id"].is_unique
    schemas.validate(df, schemas.CorpusSchema, "small")


def test_task_space_too_small_for_heldout():
    with pytest.raises(ArtifactError) as info:
        synthetic_corpus(_params(heldout_per_task=200, tasks={"add": TaskParams(1, 1)}))
    msg = str(info.value)
    assert "corpus.tasks.add" in msg and "100" in msg and "heldout_per_task (200)" in msg


# ------------------------------------------------------------------ OpenR1 layout


def _gen(think: str, answer: str) -> str:
    return f"{chat.THINK_OPEN}{think}{chat.THINK_CLOSE}{answer}"


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    return tmp_path


def _openr1_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "uuid": ["u0", "u1", "u2", "u3", "u4"],
            "problem": ["Find x.", "Sum 1..3.", "Unfinished.", "Unverified.", "Second good."],
            "answer": ["2", "6", "?", "?", "9"],
            "problem_type": ["Algebra", "Number Theory", "Algebra", "Algebra", None],
            "generations": [
                [
                    _gen("wrong idea", "x=3"),
                    "<think>no end",
                    _gen(" x+x=4 so x=2 ", " The answer is 2. "),
                    _gen("later", "2"),
                ],
                ["<think>1+2+3", _gen("1+2+3=6", "6")],
                ["<think>still going", "no think at all"],
                [_gen("t", "a")],
                [_gen("3*3", "9")],
            ],
            "correctness_math_verify": [[False, True, True, True], [True, True], [True, True], [False], [True]],
        }
    )


def test_openr1_corpus_from_local_parquet(hf_cache):
    path = hf_cache / "openr1.parquet"
    _openr1_frame().to_parquet(path, index=False)
    df = openr1_corpus(HubCorpusParams(data_files=str(path), max_examples=10), heldout_fraction=0.34, seed=0)
    schemas.validate(df, schemas.CorpusSchema, "openr1")
    assert list(df["id"]) == ["u0", "u1", "u4"]  # u2: nothing complete; u3: nothing verified
    first = df.iloc[0]
    # The first verified *complete* generation (not the unverified one, not the unfinished one).
    assert first.think == "x+x=4 so x=2"
    assert first.answer == "The answer is 2."
    assert first.prompt == "Find x."
    assert first.task == "Algebra"
    assert first.text == full_text("Find x.", "x+x=4 so x=2", "The answer is 2.")
    assert df.iloc[1].think == "1+2+3=6" and df.iloc[1].answer == "6"
    assert df.iloc[2].task == "math"  # missing problem_type
    assert (df["split"] == "heldout").sum() == 1
    assert set(df["split"]) <= {"train", "heldout"}
    assert not df["has_carry"].any() and (df["step_types"] == "").all()


def test_openr1_corpus_max_examples(hf_cache):
    path = hf_cache / "openr1.parquet"
    _openr1_frame().to_parquet(path, index=False)
    df = openr1_corpus(HubCorpusParams(data_files=str(path), max_examples=2))
    assert list(df["id"]) == ["u0", "u1"]
    assert (df["split"] == "heldout").sum() == 1  # at least one held-out row


def test_openr1_corpus_missing_columns(hf_cache):
    path = hf_cache / "bad.parquet"
    _openr1_frame().drop(columns=["generations"]).to_parquet(path, index=False)
    with pytest.raises(ArtifactError) as info:
        openr1_corpus(HubCorpusParams(data_files=str(path)))
    assert str(path) in str(info.value)
    assert "generations" in str(info.value)


def test_openr1_corpus_no_usable_rows(hf_cache):
    path = hf_cache / "none.parquet"
    _openr1_frame().iloc[2:4].to_parquet(path, index=False)
    with pytest.raises(ArtifactError, match="no row has a gold answer and a complete") as info:
        openr1_corpus(HubCorpusParams(data_files=str(path)))
    assert str(path) in str(info.value)


def test_openr1_corpus_keeps_gold_answers_and_refuses_a_corpus_without_them(hf_cache):
    path = hf_cache / "openr1.parquet"
    frame = _openr1_frame()
    frame.loc[1, "answer"] = ""  # an ungradable problem is no benchmark item
    frame.to_parquet(path, index=False)
    df = openr1_corpus(HubCorpusParams(data_files=str(path), max_examples=10))
    assert list(zip(df["id"], df["gold"], strict=True)) == [("u0", "2"), ("u4", "9")]
    nogold = hf_cache / "nogold.parquet"
    _openr1_frame().drop(columns=["answer"]).to_parquet(nogold, index=False)
    with pytest.raises(ArtifactError, match="no gold `answer` column, so no held-out problem could be graded") as info:
        openr1_corpus(HubCorpusParams(data_files=str(nogold)))
    assert str(info.value).startswith(str(nogold))


def test_openr1_corpus_unreadable_file(hf_cache):
    path = hf_cache / "garbage.parquet"
    path.write_bytes(b"this is not parquet at all")
    with pytest.raises(ArtifactError) as info:
        openr1_corpus(HubCorpusParams(data_files=str(path)))
    assert str(path) in str(info.value)


# ------------------------------------------------------------------ read_parquet


def test_read_parquet_round_trip(corpus, tmp_path):
    path = tmp_path / "corpus.parquet"
    corpus.to_parquet(path, index=False)
    back = schemas.read_parquet(path, schemas.CorpusSchema)
    pd.testing.assert_frame_equal(back, corpus)


def test_read_parquet_missing_file(tmp_path):
    path = tmp_path / "missing.parquet"
    with pytest.raises(ArtifactError, match="file not found") as info:
        schemas.read_parquet(path, schemas.CorpusSchema, rebuild_hint="run `dvc repro corpus`")
    assert str(path) in str(info.value)
    assert info.value.hint == "run `dvc repro corpus`"


def test_read_parquet_garbage(tmp_path):
    path = tmp_path / "garbage.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(ArtifactError, match="not a readable parquet") as info:
        schemas.read_parquet(path, schemas.CorpusSchema)
    assert str(path) in str(info.value)


def test_read_parquet_truncated(corpus, tmp_path):
    good = tmp_path / "good.parquet"
    corpus.to_parquet(good, index=False)
    path = tmp_path / "truncated.parquet"
    data = good.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="not a readable parquet") as info:
        schemas.read_parquet(path, schemas.CorpusSchema)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "breakage, column",
    [
        ("duplicate_id", "id"),
        ("bad_split", "split"),
        ("empty_answer", "answer"),
        ("extra_column", "extra"),
        ("missing_column", "think"),
        ("int_carry", "has_carry"),
    ],
)
def test_read_parquet_schema_violation(corpus, tmp_path, breakage, column):
    df = corpus.head(10).copy()
    if breakage == "duplicate_id":
        df.loc[3, "id"] = df.loc[2, "id"]
    elif breakage == "bad_split":
        df.loc[0, "split"] = "test"
    elif breakage == "empty_answer":
        df.loc[1, "answer"] = ""
    elif breakage == "extra_column":
        df["extra"] = 1
    elif breakage == "missing_column":
        df = df.drop(columns=["think"])
    elif breakage == "int_carry":
        df["has_carry"] = df["has_carry"].astype(int)
    path = tmp_path / f"{breakage}.parquet"
    df.to_parquet(path, index=False)
    with pytest.raises(ArtifactError) as info:
        schemas.read_parquet(path, schemas.CorpusSchema)
    msg = str(info.value)
    assert msg.startswith(f"{path}: fails the CorpusSchema schema")
    assert column in msg
    assert "\n" not in msg
