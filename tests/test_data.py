"""Token data: think-masks, packing, and the on-disk split with its checks."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from r1interp import chat
from r1interp.data import COLUMNS, load_token_split, pack_rows, tokenize_documents, write_token_split
from r1interp.errors import ArtifactError

CTX = 16


def _assert_rejected(path, match) -> None:
    """Loading the split fails with an ArtifactError that names the split's path."""
    with pytest.raises(ArtifactError, match=match) as info:
        load_token_split(path)
    assert str(path) in str(info.value)


def _texts(corpus_texts) -> list[str]:
    # Mixed documents: reasoning ones, one answer-only one, one with an unfinished think.
    return (
        corpus_texts[:6]
        + [
            chat.prompt_text("What is 2+2?") + chat.answer_completion("The answer is 4."),
            chat.prompt_text("What is 3+3?") + chat.THINK_OPEN + "\n3+3=6, write 6.",
        ]
        + corpus_texts[6:10]
    )


def test_think_mask_matches_decoded_tokens(tokenizer, corpus_texts):
    texts = _texts(corpus_texts)
    streams = tokenize_documents(texts, tokenizer, max_tokens=10**6)
    ids, docs, think, answer = (streams[c] for c in COLUMNS)
    assert ids.dtype == np.int32 and docs.dtype == np.int32 and think.dtype == bool and answer.dtype == bool
    assert len(ids) == len(docs) == len(think) == len(answer)
    open_id = tokenizer.convert_tokens_to_ids(chat.THINK_OPEN)
    close_id = tokenizer.convert_tokens_to_ids(chat.THINK_CLOSE)
    for d, text in enumerate(texts):
        sel = docs == d
        doc_ids, mask = ids[sel], think[sel]
        assert tokenizer.decode(doc_ids.tolist()) == text
        expected = np.zeros(len(doc_ids), dtype=bool)
        opens = np.flatnonzero(doc_ids == open_id)
        closes = np.flatnonzero(doc_ids == close_id)
        if len(opens):
            end = closes[0] if len(closes) else len(doc_ids) - 1
            expected[opens[0] : end + 1] = True
        np.testing.assert_array_equal(mask, expected, err_msg=f"doc {d}: {text!r}")
        span = chat.think_span(text)
        inside = tokenizer.decode(doc_ids[mask].tolist())
        assert inside == ("" if span is None else text[span[0] : span[1]])
        # The answer is everything after `</think>`; think and answer never overlap.
        after = tokenizer.decode(doc_ids[answer[sel]].tolist())
        assert after == ("" if span is None else text[span[1] :])
        assert not (mask & answer[sel]).any()
    # The answer-only document has no think tokens; reasoning documents have some outside too.
    assert not think[docs == 6].any()
    assert think[docs == 0].any() and not think[docs == 0].all()


def test_doc_ids_are_monotonic_and_contiguous(tokenizer, corpus_texts):
    docs = tokenize_documents(corpus_texts[:30], tokenizer, max_tokens=10**6)["doc_ids"]
    assert docs[0] == 0
    assert np.all(np.diff(docs) >= 0)
    assert set(np.unique(docs)) == set(range(30))


def test_token_budget_is_respected(tokenizer, corpus_texts):
    full = tokenize_documents(corpus_texts[:40], tokenizer, max_tokens=10**6)
    budget = len(full["input_ids"]) // 3 + 7
    part = tokenize_documents(corpus_texts[:40], tokenizer, max_tokens=budget)
    for column in COLUMNS:
        assert len(part[column]) == budget
        np.testing.assert_array_equal(part[column], full[column][:budget])
    # Documents after the budget were not needed.
    assert part["doc_ids"].max() < 39


def test_tokenize_empty_split(tokenizer):
    with pytest.raises(ArtifactError, match="empty"):
        tokenize_documents([], tokenizer, max_tokens=100)


def test_pack_rows_shapes():
    ids = np.arange(50, dtype=np.int32)
    streams = {"input_ids": ids, "doc_ids": ids // 10, "in_think": ids % 2 == 0, "in_answer": ids % 3 == 0}
    think = streams["in_think"]
    rows = pack_rows(streams, CTX)
    assert set(rows) == set(COLUMNS)
    for key in COLUMNS:
        assert rows[key].shape == (3, CTX)
    np.testing.assert_array_equal(rows["input_ids"].ravel(), ids[:48])
    np.testing.assert_array_equal(rows["doc_ids"][1], streams["doc_ids"][16:32])
    np.testing.assert_array_equal(rows["in_think"][2], think[32:48])
    assert pack_rows({c: v[:16] for c, v in streams.items()}, CTX)["input_ids"].shape == (1, CTX)


def test_pack_rows_too_few_tokens():
    ids = np.arange(15, dtype=np.int32)
    with pytest.raises(ArtifactError, match=r"only 15 tokens.*ctx_len=16"):
        pack_rows({"input_ids": ids, "doc_ids": ids, "in_think": ids > 3, "in_answer": ids > 3}, CTX)


# ------------------------------------------------------------------ on-disk split


def _split(tokenizer, corpus_texts, path, **meta_over):
    rows = pack_rows(tokenize_documents(corpus_texts[:20], tokenizer, max_tokens=10**6), CTX)
    meta = {"split": "train", "rows": int(rows["input_ids"].shape[0]), "ctx_len": CTX, "vocab_size": len(tokenizer)}
    meta.update(meta_over)
    documents = pd.DataFrame({"doc_index": range(20), "id": [f"d{i}" for i in range(20)]})
    write_token_split(path, rows, documents, meta)
    return rows, meta, documents


@pytest.fixture
def split_dir(tokenizer, corpus_texts, tmp_path):
    path = tmp_path / "tokens" / "train"
    rows, meta, documents = _split(tokenizer, corpus_texts, path)
    return path, rows, meta, documents


def test_write_and_load_round_trip(split_dir, tokenizer):
    path, rows, meta, documents = split_dir
    ds, loaded_meta = load_token_split(path, vocab_size=len(tokenizer))
    assert loaded_meta == meta
    assert len(ds) == meta["rows"]
    arr = ds.with_format("numpy")
    for key in COLUMNS:
        np.testing.assert_array_equal(np.asarray(arr[key]), rows[key])
    pd.testing.assert_frame_equal(pd.read_parquet(path / "documents.parquet"), documents)
    # Nothing but the split itself is left in the parent folder.
    assert sorted(p.name for p in path.parent.iterdir()) == ["train"]


def test_rewrite_replaces_split(split_dir, tokenizer, corpus_texts):
    path, rows, meta, _ = split_dir
    _split(tokenizer, corpus_texts, path, split="again")
    ds, meta2 = load_token_split(path)
    assert meta2["split"] == "again"
    assert sorted(p.name for p in path.parent.iterdir()) == ["train"]


def test_vocab_smaller_than_ids(split_dir):
    path, rows, _, _ = split_dir
    limit = int(rows["input_ids"].max())
    with pytest.raises(ArtifactError, match="mismatch") as info:
        load_token_split(path, vocab_size=limit)
    assert str(path) in str(info.value)
    load_token_split(path, vocab_size=limit + 1)  # exactly enough is fine


def test_meta_vocab_used_when_none_given(tokenizer, corpus_texts, tmp_path):
    path = tmp_path / "split"
    _split(tokenizer, corpus_texts, path, vocab_size=10)
    with pytest.raises(ArtifactError, match="mismatch"):
        load_token_split(path)


def test_missing_meta(split_dir):
    path, *_ = split_dir
    (path / "meta.json").unlink()
    with pytest.raises(ArtifactError, match="no meta.json") as info:
        load_token_split(path, hint="run `dvc repro tokens`")
    assert str(path) in str(info.value)
    assert info.value.hint == "run `dvc repro tokens`"


def test_missing_split_dir(tmp_path):
    with pytest.raises(ArtifactError) as info:
        load_token_split(tmp_path / "nowhere")
    assert "nowhere" in str(info.value)


@pytest.mark.parametrize(
    "change, expected",
    [({"rows": 999}, "meta.json says 999"), ({"ctx_len": CTX * 2}, "not all 32 tokens")],
)
def test_meta_disagrees_with_dataset(split_dir, change, expected):
    path, _, meta, _ = split_dir
    (path / "meta.json").write_text(json.dumps({**meta, **change}))
    _assert_rejected(path, expected)


def test_garbled_meta(split_dir):
    path, *_ = split_dir
    (path / "meta.json").write_text('{"rows": 3, "ctx_')
    _assert_rejected(path, "meta.json")


def test_meta_missing_keys(split_dir):
    path, _, meta, _ = split_dir
    (path / "meta.json").write_text(json.dumps({"rows": meta["rows"]}))
    _assert_rejected(path, "ctx_len")


def _arrow_files(path):
    files = sorted((path / "dataset").glob("*.arrow"))
    assert files
    return files


@pytest.mark.parametrize("damage", ["delete_arrow", "garble_arrow", "truncate_arrow", "delete_state", "garble_state"])
def test_corrupted_dataset(split_dir, damage):
    path, *_ = split_dir
    arrow = _arrow_files(path)[0]
    state = path / "dataset" / "state.json"
    if damage == "delete_arrow":
        arrow.unlink()
    elif damage == "garble_arrow":
        arrow.write_bytes(b"\x00garbage" * 100)
    elif damage == "truncate_arrow":
        data = arrow.read_bytes()
        arrow.write_bytes(data[: len(data) // 2])
    elif damage == "delete_state":
        state.unlink()
    elif damage == "garble_state":
        state.write_text("{not json")
    with pytest.raises(ArtifactError) as info:
        load_token_split(path)
    assert str(path) in str(info.value)


def test_missing_column(tokenizer, corpus_texts, tmp_path):
    rows = pack_rows(tokenize_documents(corpus_texts[:10], tokenizer, max_tokens=10**6), CTX)
    del rows["in_think"]
    path = tmp_path / "split"
    write_token_split(
        path,
        rows,
        pd.DataFrame({"doc_index": [0]}),
        {"rows": len(rows["input_ids"]), "ctx_len": CTX, "vocab_size": 999},
    )
    _assert_rejected(path, "in_think")


def test_meta_not_a_mapping(split_dir):
    path, *_ = split_dir
    (path / "meta.json").write_text("[1, 2]")
    _assert_rejected(path, "meta.json lacks")


def test_pad_rows_one_document_per_row(tokenizer, corpus_texts):
    from r1interp.data import pad_rows

    streams = tokenize_documents(corpus_texts[:5], tokenizer, max_tokens=10**6)
    lengths = np.bincount(streams["doc_ids"])
    ctx = int(lengths.max())
    rows, truncated = pad_rows(streams, ctx, pad_id=tokenizer.pad_token_id)
    assert truncated == 0 and rows["input_ids"].shape == (5, ctx)
    for r, n in enumerate(lengths):
        assert tokenizer.decode(rows["input_ids"][r, :n].tolist()) == corpus_texts[r]
        assert (rows["input_ids"][r, n:] == tokenizer.pad_token_id).all()
        assert not rows["in_think"][r, n:].any() and not rows["in_answer"][r, n:].any()
        assert (rows["doc_ids"][r] == r).all()
    short, truncated = pad_rows(streams, int(lengths.min()), pad_id=tokenizer.pad_token_id)
    assert truncated == int((lengths > lengths.min()).sum())
    assert short["input_ids"].shape == (5, int(lengths.min()))
