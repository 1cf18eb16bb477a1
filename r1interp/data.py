"""Token data: corpus text -> fixed-length token rows that sparsify consumes.

Documents are tokenized, concatenated (each starts with BOS and ends with EOS, as
in the chat format) and cut into rows of `ctx_len` tokens, without padding. Each
token keeps the index of its document and whether it lies inside `<think>…</think>` or in
the final answer after it, so evaluations can separate the reasoning span from the answer.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from r1interp import chat
from r1interp.errors import ArtifactError
from r1interp.io import atomic_path

COLUMNS = ("input_ids", "doc_ids", "in_think", "in_answer")


def _segment_masks(text: str, offsets: list[tuple[int, int]]) -> tuple[list[bool], list[bool]]:
    """Per-token flags: inside `<think>…</think>` (inclusive), and in the final answer after it."""
    span = chat.think_span(text)
    if span is None:
        return [False] * len(offsets), [False] * len(offsets)
    think = [span[0] <= start < span[1] for start, _ in offsets]
    answer = [start >= span[1] for start, _ in offsets]
    return think, answer


def tokenize_documents(texts: list[str], tokenizer, max_tokens: int) -> dict[str, np.ndarray]:
    """Concatenated per-token streams (ids, document index, think/answer flags), up to `max_tokens`."""
    streams: dict[str, list[np.ndarray]] = {c: [] for c in COLUMNS}
    total = 0
    for doc, text in enumerate(tqdm(texts, desc="tokenize", unit="doc", mininterval=1.0)):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        think, answer = _segment_masks(text, enc["offset_mapping"])
        n = len(enc["input_ids"])
        streams["input_ids"].append(np.asarray(enc["input_ids"], dtype=np.int32))
        streams["doc_ids"].append(np.full(n, doc, dtype=np.int32))
        streams["in_think"].append(np.asarray(think, dtype=bool))
        streams["in_answer"].append(np.asarray(answer, dtype=bool))
        total += n
        if total >= max_tokens:
            break
    if not streams["input_ids"]:
        raise ArtifactError("tokens: the corpus split is empty")
    return {c: np.concatenate(parts)[:max_tokens] for c, parts in streams.items()}


def pack_rows(streams: dict[str, np.ndarray], ctx_len: int) -> dict[str, np.ndarray]:
    """Cut every per-token stream into rows of `ctx_len` (the remainder is dropped, never padded)."""
    length = len(streams["input_ids"])
    n_rows = length // ctx_len
    if n_rows == 0:
        raise ArtifactError(f"tokens: only {length} tokens, fewer than one row of tokens.ctx_len={ctx_len}")
    cut = n_rows * ctx_len
    return {c: streams[c][:cut].reshape(n_rows, ctx_len) for c in COLUMNS}


def pad_rows(streams: dict[str, np.ndarray], ctx_len: int, pad_id: int) -> tuple[dict[str, np.ndarray], int]:
    """One document per row, right-padded with `pad_id` (which sparsify is told to exclude).

    A model trained on single chat turns never saw two documents in one context; packing
    them would feed it (and the transcoders) out-of-distribution activations. Returns the
    rows and how many documents had to be truncated to `ctx_len`.
    """
    docs = streams["doc_ids"]
    starts = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1]])
    ends = np.r_[starts[1:], len(docs)]
    rows = {c: np.zeros((len(starts), ctx_len), dtype=streams[c].dtype) for c in COLUMNS}
    rows["input_ids"][:] = pad_id
    truncated = 0
    for r, (a, b) in enumerate(zip(starts, ends, strict=True)):
        n = min(b - a, ctx_len)
        truncated += int(b - a > ctx_len)
        for c in COLUMNS:
            rows[c][r, :n] = streams[c][a : a + n]
        rows["doc_ids"][r, n:] = docs[a]
    return rows, truncated


def training_rows(ds, rows: int, seed: int):
    """A seeded random subset of `rows` rows, input_ids only (what sparsify consumes).

    The shuffle's index mapping stays in memory: a cache file would land inside the
    DVC-tracked token directory and change its hash.
    """
    return ds.shuffle(seed=seed, keep_in_memory=True).select(range(rows)).select_columns(["input_ids"])


def write_token_split(path: str | Path, rows: dict[str, np.ndarray], documents: pd.DataFrame, meta: dict) -> None:
    """One split as a `datasets.Dataset` on disk (+ documents.parquet, meta.json), atomically."""
    from datasets import Dataset

    with atomic_path(path, directory=True) as tmp:
        ds = Dataset.from_dict({k: v.tolist() for k, v in rows.items()})
        ds.save_to_disk(str(tmp / "dataset"))
        documents.to_parquet(tmp / "documents.parquet", index=False)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def load_token_split(path: str | Path, vocab_size: int | None = None, hint: str | None = None):
    """Load and validate a split: columns, fixed length, ids within the vocabulary."""
    import datasets
    from datasets import load_from_disk

    # Transforms (shuffle, shard) must never write cache files into a DVC-tracked output.
    datasets.disable_caching()

    path = Path(path)
    meta_file = path / "meta.json"
    if not meta_file.is_file():
        raise ArtifactError(f"{path}: not a token split (no meta.json)", hint=hint)
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ArtifactError(f"{path}: meta.json is unreadable ({type(exc).__name__}: {exc})", hint=hint) from None
    missing = {"rows", "ctx_len", "vocab_size"} - set(meta if isinstance(meta, dict) else ())
    if missing:
        raise ArtifactError(f"{path}: meta.json lacks keys {sorted(missing)}", hint=hint)
    try:
        ds = load_from_disk(str(path / "dataset"))
    except Exception as exc:
        raise ArtifactError(f"{path}: token dataset is unreadable ({type(exc).__name__}: {exc})", hint=hint) from None
    check_token_dataset(ds, meta, str(path), vocab_size)
    return ds, meta


def check_token_dataset(ds, meta: dict, source: str, vocab_size: int | None) -> None:
    missing = set(COLUMNS) - set(ds.column_names)
    if missing:
        raise ArtifactError(f"{source}: token dataset lacks columns {sorted(missing)}")
    if len(ds) != meta.get("rows"):
        raise ArtifactError(f"{source}: {len(ds)} rows but meta.json says {meta.get('rows')} (truncated?)")
    ids = np.asarray(ds.with_format("numpy")["input_ids"])
    if ids.ndim != 2 or ids.shape[1] != meta["ctx_len"]:
        raise ArtifactError(f"{source}: rows are not all {meta['ctx_len']} tokens long")
    limit = vocab_size if vocab_size is not None else meta["vocab_size"]
    if ids.size and (ids.min() < 0 or ids.max() >= limit):
        raise ArtifactError(
            f"{source}: token ids span [{ids.min()}, {ids.max()}] but the vocabulary has {limit} entries "
            "(tokenizer/model mismatch?)"
        )
