"""Token data: corpus text -> fixed-length token rows that sparsify consumes.

Documents are tokenized, concatenated (each starts with BOS and ends with EOS, as
in the chat format) and cut into rows of `ctx_len` tokens, without padding. Each
token keeps the index of its document and whether it lies inside `<think>…</think>`,
so evaluations can separate the reasoning span from the answer.
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

COLUMNS = ("input_ids", "doc_ids", "in_think")


def tokenize_documents(texts: list[str], tokenizer, max_tokens: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenated ids, document indices and think-mask, stopping once `max_tokens` are collected."""
    ids, docs, think = [], [], []
    total = 0
    for doc, text in enumerate(tqdm(texts, desc="tokenize", unit="doc", mininterval=1.0)):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        span = chat.think_span(text)
        tok_ids = enc["input_ids"]
        if span is None:
            mask = [False] * len(tok_ids)
        else:
            mask = [span[0] <= start < span[1] for start, _ in enc["offset_mapping"]]
        ids.append(np.asarray(tok_ids, dtype=np.int32))
        docs.append(np.full(len(tok_ids), doc, dtype=np.int32))
        think.append(np.asarray(mask, dtype=bool))
        total += len(tok_ids)
        if total >= max_tokens:
            break
    if not ids:
        raise ArtifactError("tokens: the corpus split is empty")
    return np.concatenate(ids)[:max_tokens], np.concatenate(docs)[:max_tokens], np.concatenate(think)[:max_tokens]


def pack_rows(ids: np.ndarray, docs: np.ndarray, think: np.ndarray, ctx_len: int) -> dict[str, np.ndarray]:
    n_rows = len(ids) // ctx_len
    if n_rows == 0:
        raise ArtifactError(f"tokens: only {len(ids)} tokens, fewer than one row of tokens.ctx_len={ctx_len}")
    cut = n_rows * ctx_len
    return {
        "input_ids": ids[:cut].reshape(n_rows, ctx_len),
        "doc_ids": docs[:cut].reshape(n_rows, ctx_len),
        "in_think": think[:cut].reshape(n_rows, ctx_len),
    }


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
    from datasets import load_from_disk

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
