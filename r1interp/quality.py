"""Data-quality report: Great Expectations suites over every pipeline artifact, as static Data Docs.

Pandera (`r1interp.schemas`) stays the gate: each stage validates what it writes and reads, and
fails on a bad artifact. This module is the report layer on top: one GX ExpectationSuite per
artifact, with expectations derived from params.yaml (row counts, value ranges, uniqueness, null
rates, distributions, cross-artifact references), run on pandas frames and rendered as Data Docs.

Suites (one `*_suite` builder and one frame per artifact; `build_checks` pairs them):

- `corpus`: data/corpus/corpus.parquet
- `tokens`: data/tokens/{train,heldout}/meta.json, one row per split
- `tokens_train`, `tokens_heldout`: per-row statistics of a seeded sample of token rows (length,
  id range, padding, masks), never one row per token
- `features_<model>`, `examples_<model>`: data/activations/<model>/
- `labels`, `scores`: data/labels/

Great Expectations costs ~4 CPU-seconds to import: it is imported inside the functions that need it,
and nothing else in the package imports this module.
"""

from __future__ import annotations

import datetime
import html
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from r1interp import paths
from r1interp.config import Params

SAMPLE_ROWS = 4096  # token rows per split turned into per-row statistics
RUN_NAME = "r1interp-quality"
FIXED_RUN_TIME = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)  # see run_quality
SITE = "quality"
SPLITS = ("train", "heldout")
KINDS = ("top", "quantile", "non_activating")
STATUSES = ("ok", "no_rule", "unparsed")
LABEL_SCORE_COLUMNS = tuple(
    f"{method}_{metric}"
    for method in ("detection", "fuzzing")
    for metric in ("balanced_accuracy", "precision", "recall", "f1")
)
LIST_COLUMNS = ("top_output_tokens", "top_output_logits", "tokens", "acts")  # summarised, not passed to GX
# scores.parquet has no pandera schema
SCORE_TABLE_COLUMNS = ("model", "layer", "feature", "method", "sample", "truth", "prediction", "text")


# ---------------------------------------------------------------------------- facts from params and models


@dataclass(frozen=True)
class ModelFacts:
    """What the suites need to know about one model's transcoders, from its config.json and params."""

    layers: tuple[int, ...]  # layers that carry transcoders (train.layer_groups)
    latents: int  # features per layer
    vocab_size: int | None
    bos_id: int | None
    pad_id: int | None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _special_id(model_dir: Path, name: str, config: dict) -> int | None:
    """Id of the tokenizer's `name` token (bos/pad) from tokenizer_config.json, else config.json."""
    tok = _read_json(model_dir / "tokenizer_config.json")
    token = tok.get(f"{name}_token")
    if isinstance(token, dict):
        token = token.get("content")
    for key, entry in (tok.get("added_tokens_decoder") or {}).items():
        if token is not None and entry.get("content") == token:
            return int(key)
    value = config.get(f"{name}_token_id")
    return int(value) if isinstance(value, int) else None


def layer_set(groups: list[str], n_layers: int) -> tuple[int, ...]:
    """Layers named by train.layer_groups ('all', 'N', 'A-B')."""
    if "all" in groups:
        return tuple(range(n_layers))
    layers: set[int] = set()
    for group in groups:
        start, _, end = group.partition("-")
        layers.update(range(int(start), int(end or start) + 1))
    return tuple(sorted(layers))


def model_facts(params: Params, role: str, root: Path) -> ModelFacts:
    from r1interp.models import model_spec

    model_dir = root / model_spec(params.model.profile, role).local_dir
    config = _read_json(model_dir / "config.json")
    if params.model.profile == "organism":
        n_layers, d_model = params.organism.layers, params.organism.hidden
    else:
        n_layers, d_model = int(config.get("num_hidden_layers", 0)), int(config.get("hidden_size", 0))
        if not (n_layers and d_model):
            from r1interp.errors import ArtifactError

            raise ArtifactError(
                f"{model_dir}/config.json: unreadable or without num_hidden_layers/hidden_size",
                hint=model_spec(params.model.profile, role).rebuild_hint,
            )
    latents = params.train.num_latents or d_model * params.train.expansion_factor
    vocab = config.get("vocab_size")
    return ModelFacts(
        layers=layer_set(params.train.layer_groups, n_layers),
        latents=latents,
        vocab_size=int(vocab) if isinstance(vocab, int) else None,
        bos_id=_special_id(model_dir, "bos", config),
        pad_id=_special_id(model_dir, "pad", config),
    )


def problem_space(task: str, min_digits: int, max_digits: int) -> int:
    """Distinct problems of a task: `r1interp.corpus._problem_space`, restated here because importing
    r1interp.corpus pulls in torch and transformers (~8 s) through r1interp.organism."""
    numbers = 10**max_digits - (10 ** (min_digits - 1) if min_digits > 1 else 0)
    return numbers * numbers if task == "add" else numbers * 8


def corpus_task_counts(params: Params) -> dict[str, tuple[int, int]] | None:
    """Organism profile: (train, heldout) rows per task; the train count is capped by the problem space."""
    if params.model.profile != "organism":
        return None
    c = params.corpus
    counts = {}
    for task, tp in sorted(c.tasks.items()):
        space = problem_space(task, tp.min_digits, tp.max_digits)
        counts[task] = (min(c.train_per_task, space - c.heldout_per_task), c.heldout_per_task)
    return counts


# ---------------------------------------------------------------------------- suite helpers


def _gx():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    return gx


def _suite(name: str, expectations: list) -> Any:
    # Built through the constructor: `add_expectation` would need an active data context.
    return _gx().ExpectationSuite(name=name, expectations=expectations)


def _note(text: str) -> dict:
    return {"notes": {"format": "markdown", "content": [text]}}


def _when(column: str, op: str, value: Any):
    """A row condition (GX Condition object; string conditions are deprecated since GX 1.9)."""
    from great_expectations.expectations.row_conditions import Column

    if op == "==":
        return Column(column) == value
    if op == "!=":
        return Column(column) != value
    raise ValueError(f"unsupported operator {op!r}")


def _between(column: str, lo: Any = None, hi: Any = None, **kw) -> Any:
    import great_expectations.expectations as gxe

    return gxe.ExpectColumnValuesToBeBetween(column=column, min_value=lo, max_value=hi, **kw)


def _columns(columns) -> Any:
    import great_expectations.expectations as gxe

    return gxe.ExpectTableColumnsToMatchSet(column_set=list(columns), exact_match=True)


def schema_columns(name: str, *, derived: tuple[str, ...] = ()) -> list[str]:
    """The columns of a pandera schema in r1interp.schemas (list columns replaced by `derived` ones)."""
    from r1interp import schemas

    columns = [c for c in getattr(schemas, name).to_schema().columns if c not in LIST_COLUMNS]
    return columns + list(derived)


def _kl(column: str, weights: dict[Any, float], threshold: float, **kw) -> Any:
    import great_expectations.expectations as gxe

    total = sum(weights.values())
    return gxe.ExpectColumnKLDivergenceToBeLessThan(
        column=column,
        partition_object={"values": list(weights), "weights": [w / total for w in weights.values()]},
        threshold=threshold,
        **kw,
    )


# ---------------------------------------------------------------------------- corpus


def corpus_suite(params: Params) -> Any:
    import great_expectations.expectations as gxe

    counts = corpus_task_counts(params)
    exps = [
        _columns(schema_columns("CorpusSchema")),
        gxe.ExpectColumnValuesToNotBeNull(column="id"),
        gxe.ExpectColumnValuesToBeUnique(column="id"),
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLITS)),
        gxe.ExpectColumnDistinctValuesToEqualSet(column="split", value_set=list(SPLITS)),
        *[gxe.ExpectColumnValueLengthsToBeBetween(column=c, min_value=1) for c in ("prompt", "answer", "gold", "text")],
        gxe.ExpectColumnValuesToMatchRegex(
            column="text",
            regex=r"<think>[\s\S]*</think>",
            meta=_note("every document carries a complete reasoning span"),
        ),
        gxe.ExpectColumnValuesToBeOfType(column="has_carry", type_="bool"),
    ]
    if counts is None:  # real profile: OpenR1-Math, ~10% held out
        exps += [
            gxe.ExpectTableRowCountToBeBetween(min_value=2, max_value=params.corpus.hub.max_examples),
            gxe.ExpectColumnValuesToBeInSet(
                column="split", value_set=["train"], mostly=0.8, meta=_note("about 10% of the problems are held out")
            ),
        ]
        return _suite("corpus", exps)
    tasks = sorted(counts)
    total = sum(a + b for a, b in counts.values())
    heldout = sum(b for _, b in counts.values())
    exps += [
        gxe.ExpectTableRowCountToBeBetween(
            min_value=heldout + len(tasks),
            max_value=total,
            meta=_note("heldout_per_task per task, plus at most train_per_task (capped by the problem space)"),
        ),
        *[
            gxe.ExpectTableRowCountToEqual(
                value=counts[t][1], row_condition=(_when("task", "==", t) & _when("split", "==", "heldout"))
            )
            for t in tasks
        ],
        gxe.ExpectColumnValuesToBeInSet(column="task", value_set=tasks),
        gxe.ExpectColumnDistinctValuesToEqualSet(column="task", value_set=tasks),
        _kl("task", {t: sum(counts[t]) for t in tasks}, 0.01, meta=_note("task balance as params.corpus implies")),
        _kl("split", {"train": total - heldout, "heldout": heldout}, 0.01),
        gxe.ExpectColumnValuesToMatchRegex(column="id", regex=rf"^({'|'.join(tasks)})-\d+-\d+$"),
        gxe.ExpectColumnValuesToMatchRegex(column="answer", regex=r"^The answer is -?\d+\.$"),
        gxe.ExpectColumnValueLengthsToBeBetween(
            column="step_types", min_value=1, meta=_note("synthetic problems know their ground-truth steps")
        ),
        gxe.ExpectColumnMeanToBeBetween(
            column="has_carry", min_value=0.05, max_value=0.99, meta=_note("a mix of problems with and without carries")
        ),
    ]
    return _suite("corpus", exps)


# ---------------------------------------------------------------------------- tokens


def token_meta_frame(root: Path, params: Params) -> pd.DataFrame:
    """One row per split: meta.json next to the dataset's real row count and the budget."""
    budgets = {"train": params.tokens.max_train_tokens, "heldout": params.tokens.max_heldout_tokens}
    rows = []
    for split in SPLITS:
        path = root / paths.token_split(split)
        meta = json.loads((path / "meta.json").read_text())
        dataset_rows = _dataset_rows(path / "dataset")
        tokens, padding = meta.get("tokens"), meta.get("padding_fraction")
        rows.append(
            {
                "split": split,
                "rows_meta": meta.get("rows"),
                "rows_dataset": dataset_rows,
                "ctx_len": meta.get("ctx_len"),
                "tokens": tokens,
                "rows_x_ctx_len": (meta.get("rows") or 0) * (meta.get("ctx_len") or 0),
                "vocab_size": meta.get("vocab_size"),
                "packing": meta.get("packing"),
                "padding_fraction": padding,
                "think_fraction": meta.get("think_fraction"),
                "answer_fraction": meta.get("answer_fraction"),
                "think_plus_answer": (meta.get("think_fraction") or 0) + (meta.get("answer_fraction") or 0),
                "truncated_fraction": (meta.get("truncated_documents") or 0) / max(meta.get("rows") or 1, 1),
                # meta rounds padding_fraction to 4 decimals: allow that much slack on the budget
                "real_tokens": round(tokens * (1 - padding)) if tokens is not None and padding is not None else None,
                "budget": budgets[split] + (int(np.ceil(tokens * 1e-4)) if tokens else 0),
            }
        )
    return pd.DataFrame(rows)


def _dataset_rows(path: Path) -> int | None:
    from datasets import load_from_disk

    try:
        return len(load_from_disk(str(path)))
    except Exception:
        return None


def tokens_suite(params: Params, vocab_size: int | None) -> Any:
    import great_expectations.expectations as gxe

    t = params.tokens
    exps = [
        gxe.ExpectTableRowCountToEqual(value=len(SPLITS)),
        gxe.ExpectColumnDistinctValuesToEqualSet(column="split", value_set=list(SPLITS)),
        gxe.ExpectColumnPairValuesToBeEqual(
            column_A="rows_meta",
            column_B="rows_dataset",
            meta=_note("meta.json describes the dataset on disk (not truncated)"),
        ),
        _between("rows_meta", 1),
        _between("ctx_len", t.ctx_len, t.ctx_len),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="tokens", column_B="rows_x_ctx_len"),
        gxe.ExpectColumnValuesToBeInSet(column="packing", value_set=[t.packing]),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="budget",
            column_B="real_tokens",
            or_equal=True,
            meta=_note("non-padding tokens stay within tokens.max_*_tokens"),
        ),
        _between("padding_fraction", 0, 0.9 if t.packing == "pad" else 0),
        _between("think_fraction", 0, 1, strict_min=True),
        _between("answer_fraction", 0, 1),
        _between("think_plus_answer", 0, 1),
        _between("truncated_fraction", 0, 0.1, meta=_note("truncated documents lose their answer")),
    ]
    if vocab_size is not None:
        exps.append(
            _between(
                "vocab_size",
                vocab_size,
                vocab_size,
                meta=_note(f"the {t.tokenizer_of} model's embedding has {vocab_size} rows"),
            )
        )
    return _suite("tokens", exps)


TOKEN_FRAME_COLUMNS = (
    "row",
    "length",
    "mask_length_mismatch",
    "min_id",
    "max_id",
    "first_id",
    "real_length",
    "pad_fraction",
    "pad_before_text",
    "n_docs",
    "think_fraction",
    "answer_fraction",
    "think_answer_overlap",
)


def token_frame(ds, pad_id: int | None, sample_rows: int = SAMPLE_ROWS, seed: int = 0) -> pd.DataFrame:
    """Per-row statistics of a seeded sample of token rows (one frame row per token row, not per token)."""
    n = len(ds)
    idx = (
        np.sort(np.random.default_rng(seed).choice(n, size=min(n, sample_rows), replace=False))
        if n
        else np.zeros(0, int)
    )
    # keep_in_memory: an indices cache file would land inside the DVC-tracked token directory.
    # One read of the whole sample: per-row access through `datasets` is ~50x slower.
    batch = ds.select(idx, keep_in_memory=True).with_format("numpy")[:]
    missing = [None] * len(idx)
    rows = zip(idx, *(batch.get(c, missing) for c in ("input_ids", "doc_ids", "in_think", "in_answer")), strict=True)
    return pd.DataFrame(
        [_row_stats(int(r), *cols, pad_id=pad_id) for r, *cols in rows], columns=list(TOKEN_FRAME_COLUMNS)
    )


def _row_stats(row: int, ids, docs, think, answer, *, pad_id: int | None) -> dict:
    ids = np.asarray(ids, dtype=np.int64)
    n = len(ids)
    masks = {name: np.asarray(m) for name, m in (("docs", docs), ("think", think), ("answer", answer)) if m is not None}
    aligned = len(masks) == 3 and all(len(m) == n for m in masks.values())
    pad = ids == pad_id if pad_id is not None else np.zeros(n, bool)
    real = np.flatnonzero(~pad)
    think = masks["think"].astype(bool) if aligned else np.zeros(n, bool)
    answer = masks["answer"].astype(bool) if aligned else np.zeros(n, bool)
    return {
        "row": row,
        "length": n,
        "mask_length_mismatch": max((abs(len(m) - n) for m in masks.values()), default=n) if len(masks) == 3 else n,
        "min_id": int(ids.min()) if n else None,
        "max_id": int(ids.max()) if n else None,
        "first_id": int(ids[0]) if n else None,
        "real_length": len(real),
        "pad_fraction": float(pad.mean()) if n else None,
        "pad_before_text": int(pad[: real[-1]].sum()) if len(real) else 0,
        "n_docs": len(np.unique(masks["docs"])) if "docs" in masks else 0,
        "think_fraction": float(think.mean()) if n else None,
        "answer_fraction": float(answer.mean()) if n else None,
        "think_answer_overlap": int((think & answer).sum()) if aligned else n,
    }


def token_split_suite(params: Params, split: str, meta: dict, facts: ModelFacts) -> Any:
    import great_expectations.expectations as gxe

    t = params.tokens
    ctx = t.ctx_len
    vocabs = [v for v in (meta.get("vocab_size"), facts.vocab_size) if v]
    vocab = min(vocabs) if vocabs else None
    exps = [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToBeUnique(column="row"),
        _between("length", ctx, ctx, meta=_note("every row holds tokens.ctx_len tokens")),
        _between("mask_length_mismatch", 0, 0, meta=_note("doc_ids/in_think/in_answer align with input_ids")),
        _between("min_id", 0),
        _between("think_answer_overlap", 0, 0, meta=_note("no token is both reasoning and final answer")),
        _between("think_fraction", 0, 1),
        _between("answer_fraction", 0, 1),
    ]
    if vocab is not None:
        exps.append(_between("max_id", 0, vocab - 1, meta=_note(f"token ids < vocabulary size {vocab}")))
    for column in ("think_fraction", "pad_fraction"):
        target = meta.get("padding_fraction" if column == "pad_fraction" else column)
        if target is not None and (column != "pad_fraction" or facts.pad_id is not None):
            exps.append(
                gxe.ExpectColumnMeanToBeBetween(
                    column=column,
                    min_value=max(0.0, target - 0.05),
                    max_value=min(1.0, target + 0.05),
                    meta=_note(f"the sample agrees with meta.json ({column.replace('pad_', 'padding_')} {target})"),
                )
            )
    if t.packing == "pad":
        exps += [
            _between("n_docs", 1, 1, meta=_note("pad packing: one document per row")),
            _between("real_length", 1, ctx),
            _between(
                "real_length", 1, ctx - 1, mostly=0.9, meta=_note("at most 10% of the documents are cut at ctx_len")
            ),
            _between("pad_fraction", 0, 1, strict_max=True),
            _between("pad_before_text", 0, 0, meta=_note("padding only at the end of a row")),
            _between(
                "think_fraction",
                0,
                1,
                strict_min=True,
                mostly=0.95,
                meta=_note("rows start at a document, so they contain its <think> span"),
            ),
        ]
        if facts.bos_id is not None:
            exps.append(
                gxe.ExpectColumnValuesToBeInSet(
                    column="first_id", value_set=[facts.bos_id], meta=_note("every row starts with BOS")
                )
            )
    else:
        exps += [_between("pad_fraction", 0, 0), _between("n_docs", 1)]
    return _suite(f"tokens_{split}", exps)


# ---------------------------------------------------------------------------- activations


def _list_stats(column) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lengths, offsets and flat float64 values of an Arrow list column (no per-row Python objects)."""
    import pyarrow.compute as pc

    lengths = _lengths(column)
    flat = pc.list_flatten(column).to_numpy(zero_copy_only=False).astype(np.float64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return lengths, offsets, flat


def _scalars(table) -> pd.DataFrame:
    """The table's non-list columns as pandas. List columns stay out of GX's frames: GX fingerprints
    every batch and falls back to pickling the whole frame when a column is unhashable (~25 s here)."""
    return table.drop_columns([c for c in LIST_COLUMNS if c in table.column_names]).to_pandas()


def feature_frame(table) -> pd.DataFrame:
    """features.parquet (an Arrow table) -> scalar columns, list lengths, and |density x n_tokens - count|."""
    out = _scalars(table)
    for col in ("top_output_tokens", "top_output_logits"):
        if col in table.column_names:
            out[f"n_{col}"] = _lengths(table[col])
    if {"density", "n_tokens", "count"} <= set(out):
        out["count_error"] = (out["density"] * out["n_tokens"] - out["count"]).abs()
    return out


def _lengths(column) -> np.ndarray:
    import pyarrow.compute as pc

    return pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False).astype(np.int64)


def features_suite(params: Params, role: str, facts: ModelFacts) -> Any:
    import great_expectations.expectations as gxe

    a, k, latents = params.activations, params.train.k, facts.latents
    mean_density = min(k, latents) / latents
    exps = [
        _columns(
            schema_columns("FeatureSchema", derived=("n_top_output_tokens", "n_top_output_logits", "count_error"))
        ),
        gxe.ExpectTableRowCountToEqual(
            value=len(facts.layers) * latents, meta=_note(f"{len(facts.layers)} layers x {latents} latents")
        ),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["model", "layer", "feature"]),
        gxe.ExpectColumnValuesToBeInSet(column="model", value_set=[role]),
        gxe.ExpectColumnDistinctValuesToEqualSet(column="layer", value_set=list(facts.layers)),
        _between("feature", 0, latents - 1),
        _between("n_tokens", 1, a.max_tokens),
        gxe.ExpectColumnUniqueValueCountToBeBetween(
            column="n_tokens", min_value=1, max_value=1, meta=_note("every feature was scanned over the same tokens")
        ),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="n_tokens", column_B="count", or_equal=True),
        _between("count_error", 0, 0.5, meta=_note("density = count / n_tokens")),
        _between("density", 0, 1),
        gxe.ExpectColumnMeanToBeBetween(
            column="density",
            min_value=0.5 * mean_density,
            max_value=mean_density * (1 + 1e-6),
            meta=_note(
                f"TopK: at most k={k} of {latents} latents fire per token, so mean density <= {mean_density:.4g}"
            ),
        ),
        _between("density", 0, 1, strict_min=True, mostly=0.5, meta=_note("at least half of the features are alive")),
        gxe.ExpectColumnQuantileValuesToBeBetween(
            column="density",
            quantile_ranges={"quantiles": [0.5, 0.99], "value_ranges": [[0.0, min(1.0, 4 * mean_density)], [0.0, 0.5]]},
            allow_relative_error=False,
            meta=_note("features are sparse: median density near k/latents, dense features rare"),
        ),
        _between("max_act", 0),
        _between("mean_act", 0),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="max_act", column_B="mean_act", or_equal=True),
        _between("max_act", 0, 0, row_condition=_when("count", "==", 0), meta=_note("dead features never activate")),
        _between("think_fraction", 0, 1),
        _between("n_top_output_tokens", a.top_output_tokens, a.top_output_tokens),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="n_top_output_tokens", column_B="n_top_output_logits"),
    ]
    return _suite(f"features_{role}", exps)


def example_frame(table) -> pd.DataFrame:
    """examples.parquet (an Arrow table) -> scalar columns plus window statistics: window and acts
    lengths, max |act| over the window, and how far the act at `target` is from `activation`."""
    out = _scalars(table)
    if "tokens" in table.column_names:
        out["window_len"] = _lengths(table["tokens"])
    if "acts" in table.column_names:
        lengths, offsets, flat = _list_stats(table["acts"])
        out["acts_len"] = lengths
        nonempty = lengths > 0
        peak = np.zeros(len(out))
        if flat.size:
            peak[nonempty] = np.maximum.reduceat(np.abs(flat), offsets[:-1][nonempty])
        out["acts_abs_max"] = peak
        if {"target", "activation"} <= set(out):
            target = out["target"].to_numpy()
            ok = nonempty & (target >= 0) & (target < lengths)
            at = np.full(len(out), np.nan)
            at[ok] = flat[offsets[:-1][ok] + target[ok]]
            act = out["activation"].to_numpy(dtype=np.float64)
            out["target_act_rel_error"] = np.abs(at - act) / np.maximum(np.abs(act), 1e-3)
    return out


def examples_suite(params: Params, role: str, facts: ModelFacts, heldout_rows: int | None) -> Any:
    import great_expectations.expectations as gxe

    a = params.activations
    sampled = a.quantile_bins * a.per_quantile
    per_feature = a.top_n + sampled + a.non_activating
    exps = [
        _columns(
            schema_columns("ExampleSchema", derived=("window_len", "acts_len", "acts_abs_max", "target_act_rel_error"))
        ),
        gxe.ExpectTableRowCountToBeBetween(min_value=1, max_value=len(facts.layers) * facts.latents * per_feature),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["model", "layer", "feature", "kind", "rank"]),
        gxe.ExpectColumnValuesToBeInSet(column="model", value_set=[role]),
        gxe.ExpectColumnValuesToBeInSet(column="layer", value_set=list(facts.layers)),
        _between("feature", 0, facts.latents - 1),
        gxe.ExpectColumnValuesToBeInSet(column="kind", value_set=list(KINDS)),
        _between("rank", 0, max(a.top_n, sampled, a.non_activating) - 1),
        _between("rank", 0, a.top_n - 1, row_condition=_when("kind", "==", "top")),
        _between("quantile", -1, a.quantile_bins - 1),
        _between("quantile", 0, a.quantile_bins - 1, row_condition=_when("kind", "==", "quantile")),
        _between("quantile", -1, -1, row_condition=_when("kind", "!=", "quantile")),
        _kl(
            "quantile",
            {b: 1.0 for b in range(a.quantile_bins)},
            0.02,
            row_condition=_when("kind", "==", "quantile"),
            meta=_note("equal-count activation bins: examples spread evenly over the bins"),
        ),
        _between("position", 0, params.tokens.ctx_len - 1),
        _between("activation", 0),
        _between("activation", 0, strict_min=True, row_condition=_when("kind", "!=", "non_activating")),
        _between("activation", 0, 0, row_condition=_when("kind", "==", "non_activating")),
        _between(
            "acts_abs_max",
            0,
            0,
            row_condition=_when("kind", "==", "non_activating"),
            meta=_note("negative examples are silent over the whole window"),
        ),
        _between("window_len", 1, a.window),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="window_len", column_B="acts_len"),
        _between("target", 0),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="window_len", column_B="target"),
        _between(
            "target_act_rel_error",
            0,
            0.01,
            row_condition=_when("kind", "!=", "non_activating"),
            meta=_note("the window's activation at the target token is the example's activation"),
        ),
    ]
    if heldout_rows:
        exps.append(
            _between("row", 0, heldout_rows - 1, meta=_note(f"rows of {paths.TOKENS_HELDOUT} ({heldout_rows})"))
        )
    else:
        exps.append(_between("row", 0))
    return _suite(f"examples_{role}", exps)


# ---------------------------------------------------------------------------- labels


def labels_suite(params: Params, facts: dict[str, ModelFacts]) -> Any:
    import great_expectations.expectations as gxe

    lab = params.labels
    models = list(params.train.models)
    max_rows = sum(len(f.layers) * (lab.max_features_per_layer or f.latents) for f in facts.values())
    layers = sorted({layer for f in facts.values() for layer in f.layers})
    latents = max(f.latents for f in facts.values())
    ok = _when("status", "==", "ok")
    exps = [
        _columns(schema_columns("LabelSchema")),
        gxe.ExpectTableRowCountToBeBetween(min_value=1, max_value=max_rows),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["model", "layer", "feature"]),
        gxe.ExpectColumnValuesToBeInSet(column="model", value_set=models),
        gxe.ExpectColumnValuesToBeInSet(column="layer", value_set=layers),
        _between("feature", 0, latents - 1),
        gxe.ExpectColumnValuesToBeInSet(column="status", value_set=list(STATUSES)),
        gxe.ExpectColumnValuesToBeInSet(
            column="status", value_set=["ok"], mostly=0.5, meta=_note("most features with enough examples get a label")
        ),
        gxe.ExpectColumnValuesToBeInSet(column="labeler", value_set=[lab.labeler]),
        gxe.ExpectColumnValuesToNotBeNull(
            column="label", row_condition=ok, meta=_note("a label is missing only when status != ok")
        ),
        gxe.ExpectColumnValuesToNotBeNull(column="label", mostly=0.5),
        gxe.ExpectColumnValuesToNotBeNull(column="explainer_model"),
        gxe.ExpectColumnValuesToNotBeNull(column="scorer_model"),
        gxe.ExpectColumnValuesToMatchRegex(column="prompt_hash", regex=r"^[0-9a-f]{64}$"),
        _between("n_explain", 1, lab.explain_examples),
        _between("n_test_activating", 0, lab.test_activating),
        _between("n_test_negative", 0, lab.test_non_activating),
        _between("density", 0, 1, strict_min=True, meta=_note("only features that fire are labeled")),
        _between("think_fraction", 0, 1),
    ]
    for col in LABEL_SCORE_COLUMNS:
        exps.append(_between(col, 0, 1))
    for method in ("detection", "fuzzing"):
        col = f"{method}_balanced_accuracy"
        exps += [
            gxe.ExpectColumnValuesToNotBeNull(
                column=col, row_condition=ok, meta=_note("every labeled feature is scored")
            ),
            gxe.ExpectColumnMeanToBeBetween(
                column=col, min_value=0.5, max_value=1.0, meta=_note("labels beat chance (0.5) on average")
            ),
            gxe.ExpectColumnQuantileValuesToBeBetween(
                column=col,
                quantile_ranges={"quantiles": [0.25, 0.5], "value_ranges": [[0.4, 1.0], [0.5, 1.0]]},
                allow_relative_error=False,
                row_condition=ok,
                meta=_note("at least half of the labels beat chance; few are far below it"),
            ),
        ]
    return _suite("labels", exps)


def score_frame(scores: pd.DataFrame, labels: pd.DataFrame | None) -> pd.DataFrame:
    out = scores.copy()
    keys = ["model", "layer", "feature"]
    if labels is not None and set(keys) <= set(labels) and set(keys) <= set(out) and "status" in labels:
        ok = labels.loc[labels["status"] == "ok", keys].drop_duplicates()
        out["labeled_ok"] = pd.MultiIndex.from_frame(out[keys]).isin(pd.MultiIndex.from_frame(ok))
    else:
        out["labeled_ok"] = False
    return out


def scores_suite(params: Params, n_ok_labels: int | None) -> Any:
    import great_expectations.expectations as gxe

    lab = params.labels
    per_method = lab.test_activating + lab.test_non_activating
    positive = lab.test_activating / per_method
    exps = [
        _columns((*SCORE_TABLE_COLUMNS, "labeled_ok")),
        gxe.ExpectTableRowCountToBeBetween(
            min_value=1, max_value=2 * per_method * n_ok_labels if n_ok_labels else None
        ),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["model", "layer", "feature", "method", "sample"]),
        gxe.ExpectColumnValuesToBeInSet(column="model", value_set=list(params.train.models)),
        gxe.ExpectColumnDistinctValuesToEqualSet(column="method", value_set=["detection", "fuzzing"]),
        _between("sample", 0, per_method - 1),
        gxe.ExpectColumnValuesToBeOfType(column="truth", type_="bool"),
        gxe.ExpectColumnValuesToBeOfType(column="prediction", type_="bool"),
        gxe.ExpectColumnMeanToBeBetween(
            column="truth",
            min_value=max(0.0, positive - 0.15),
            max_value=min(1.0, positive + 0.15),
            meta=_note(f"test sets are ~{positive:.0%} activating examples"),
        ),
        gxe.ExpectColumnMeanToBeBetween(
            column="prediction",
            min_value=0.05,
            max_value=0.95,
            meta=_note("the scorer does not answer the same way every time"),
        ),
        gxe.ExpectColumnValueLengthsToBeBetween(column="text", min_value=1),
        gxe.ExpectColumnValuesToBeInSet(
            column="labeled_ok",
            value_set=[True],
            meta=_note("scores exist only for features labeled ok in labels.parquet"),
        ),
    ]
    return _suite("scores", exps)


# ---------------------------------------------------------------------------- checks


@dataclass
class Check:
    """One suite and how to load the frame it validates (loaded only when it runs, one at a time)."""

    name: str
    artifact: str  # relative to the repository root
    suite: Any
    load: Callable[[], pd.DataFrame]  # raises `Unreadable` when the artifact cannot be read


class Unreadable(Exception):
    """An artifact is missing or unreadable: its suite fails without running."""


def _read(path: Path):
    """The parquet file as an Arrow table."""
    import pyarrow.parquet as pq

    if not path.is_file():
        raise Unreadable(f"{path}: file not found")
    try:
        return pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for truncated/corrupt files
        raise Unreadable(f"{path}: not a readable parquet file ({type(exc).__name__}: {exc})") from None


def _load_tokens(path: Path, pad_id: int | None, sample_rows: int, seed: int) -> pd.DataFrame:
    from datasets import load_from_disk

    try:
        ds = load_from_disk(str(path / "dataset"))
    except Exception as exc:
        raise Unreadable(f"{path}: token dataset is unreadable ({type(exc).__name__}: {exc})") from None
    return token_frame(ds, pad_id, sample_rows, seed)


def _load_token_meta(root: Path, params: Params) -> pd.DataFrame:
    try:
        return token_meta_frame(root, params)
    except (OSError, ValueError) as exc:
        raise Unreadable(f"{root / paths.TOKENS_DIR}: unreadable meta.json ({type(exc).__name__}: {exc})") from None


def _load_scores(scores_path: Path, labels_path: Path) -> pd.DataFrame:
    scores = _read(scores_path).to_pandas()
    try:
        labels = _read(labels_path).select(["model", "layer", "feature", "status"]).to_pandas()
    except Exception:  # scored against no labels: the labeled_ok check fails
        labels = None
    return score_frame(scores, labels)


def _ok_labels(labels_path: Path) -> int | None:
    try:
        status = _read(labels_path).column("status").to_pylist()
    except Exception:  # the labels suite reports it
        return None
    return sum(s == "ok" for s in status)


def build_checks(root: Path, params: Params, sample_rows: int = SAMPLE_ROWS) -> list[Check]:
    """Every suite with the loader of its frame, for the artifacts under `root`."""
    root = Path(root)
    tokens = root / paths.TOKENS_DIR
    tok_facts = model_facts(params, params.tokens.tokenizer_of, root)
    heldout_rows = _read_json(tokens / "heldout" / "meta.json").get("rows")
    checks = [
        Check(
            "corpus",
            paths.CORPUS_PARQUET.as_posix(),
            corpus_suite(params),
            lambda: _read(root / paths.CORPUS_PARQUET).to_pandas(),
        ),
        Check(
            "tokens",
            paths.TOKENS_DIR.as_posix(),
            tokens_suite(params, tok_facts.vocab_size),
            lambda: _load_token_meta(root, params),
        ),
    ]
    for split in SPLITS:
        meta = _read_json(tokens / split / "meta.json")
        checks.append(
            Check(
                f"tokens_{split}",
                paths.token_split(split).as_posix(),
                token_split_suite(params, split, meta, tok_facts),
                lambda split=split: _load_tokens(tokens / split, tok_facts.pad_id, sample_rows, params.seed),
            )
        )
    facts = {role: model_facts(params, role, root) for role in params.train.models}
    for role in params.train.models:
        features, examples = paths.features_parquet(role).as_posix(), paths.examples_parquet(role).as_posix()
        checks += [
            Check(
                f"features_{role}",
                features,
                features_suite(params, role, facts[role]),
                lambda path=root / features: feature_frame(_read(path)),
            ),
            Check(
                f"examples_{role}",
                examples,
                examples_suite(params, role, facts[role], heldout_rows),
                lambda path=root / examples: example_frame(_read(path)),
            ),
        ]
    labels, scores = paths.LABELS_PARQUET.as_posix(), paths.SCORES_PARQUET.as_posix()
    checks += [
        Check("labels", labels, labels_suite(params, facts), lambda: _read(root / labels).to_pandas()),
        Check(
            "scores",
            scores,
            scores_suite(params, _ok_labels(root / labels)),
            lambda: _load_scores(root / scores, root / labels),
        ),
    ]
    return checks


# ---------------------------------------------------------------------------- running


def expectation_name(config: Any) -> str:
    """`type(column[, ...])[ where condition]`: names a failed expectation in the summary."""
    kwargs = dict(config.kwargs)
    cols = [kwargs[k] for k in ("column", "column_A", "column_B") if kwargs.get(k) is not None]
    cols += list(kwargs.get("column_list") or [])
    name = f"{config.type}({', '.join(map(str, cols))})"
    condition = kwargs.get("row_condition")
    if condition:
        name += f" where {_condition_text(condition)}"
    return name


def _condition_text(condition: Any) -> str:
    if isinstance(condition, dict):
        if "conditions" in condition:
            joiner = " and " if condition.get("type") == "and" else " or "
            return joiner.join(_condition_text(c) for c in condition["conditions"])
        column = condition.get("column", {})
        column = column.get("name") if isinstance(column, dict) else column
        if "operator" in condition:
            return f"{column} {condition['operator']} {condition.get('parameter')!r}"
        if "is_null" in condition:
            return f"{column} is {'' if condition['is_null'] else 'not '}null"
    if hasattr(condition, "dict"):
        return _condition_text(condition.dict())
    return str(condition)


def _context(out_dir: Path):
    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    context.add_data_docs_site(
        SITE,
        {
            "class_name": "SiteBuilder",
            # GX insists on an absolute path here
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(out_dir.resolve())},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder", "show_cta_footer": False},
            "show_how_to_buttons": False,
        },
    )
    return context


def run_quality(root: Path, params: Params, out_dir: Path, *, sample_rows: int = SAMPLE_ROWS) -> dict:
    """Run every suite, build offline Data Docs into `out_dir`, return the summary for the metrics file."""
    root, out_dir = Path(root), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gx = _gx()
    from great_expectations.core.run_identifier import RunIdentifier

    summary: dict[str, Any] = {}
    checks = build_checks(root, params, sample_rows)
    context = _context(out_dir)
    source = context.data_sources.add_pandas("artifacts")
    # A fixed run time: GX names result folders and pages by it, and the Data Docs are a hashed DVC output
    # (the same artifacts must give the same bytes). The real time is in reports/timings/quality.json.
    run_id = RunIdentifier(run_name=RUN_NAME, run_time=FIXED_RUN_TIME)
    for check in checks:
        suite = context.suites.add(check.suite)
        entry: dict[str, Any] = {"artifact": check.artifact, "expectations": len(suite.expectations)}
        summary[check.name] = entry
        try:
            frame = check.load()
        except Unreadable as exc:
            entry.update(success=False, rows=0, evaluated=0, successful=0, failed=["artifact_readable"], error=str(exc))
            continue
        batch = source.add_dataframe_asset(check.name).add_batch_definition_whole_dataframe("all")
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=check.name, data=batch, suite=suite)
        )
        result = definition.run(batch_parameters={"dataframe": frame}, run_id=run_id, result_format="SUMMARY")
        entry.update(_entry(result), rows=len(frame))
        del frame
    context.build_data_docs(site_names=[SITE])
    make_offline(out_dir, summary)
    entries = list(summary.values())
    checks_run = sum(s["evaluated"] for s in entries) + sum("error" in s for s in entries)  # unreadable: 1 failed check
    passed = sum(s["successful"] for s in entries)
    summary["overall"] = {
        "success": all(s["success"] for s in entries),
        "checks": checks_run,
        "passed": passed,
        "failed": checks_run - passed,
        "suites": len(entries),
        "failed_suites": sorted(name for name, s in summary.items() if not s["success"]),
    }
    return summary


def _entry(result) -> dict:
    stats = result.statistics
    entry = {
        "success": bool(result.success),
        "evaluated": int(stats["evaluated_expectations"]),
        "successful": int(stats["successful_expectations"]),
        "failed": [expectation_name(r.expectation_config) for r in result.results if not r.success],
    }
    errors = [
        f"{expectation_name(r.expectation_config)}: {r.exception_info.get('exception_message')}"
        for r in result.results
        if (r.exception_info or {}).get("raised_exception")
    ]
    if errors:  # an expectation that could not run (e.g. its column is missing) counts as failed
        entry["errors"] = errors
    return entry


# ---------------------------------------------------------------------------- offline Data Docs

EXTERNAL_TAG = re.compile(
    r"<script\b[^>]*\bsrc=\"https?://[^\"]*\"[^>]*>\s*</script>|<link\b[^>]*\bhref=\"https?://[^\"]*\"[^>]*/?>",
    re.IGNORECASE,
)
EXTERNAL_IMG = re.compile(r"src=\"https://great-expectations-web-assets[^\"]*?/([\w.-]+\.png)(?:\?[^\"]*)?\"")
EXTERNAL_CSS_URL = re.compile(r"url\(['\"]?https?://[^)]*\)")
FOOTER = re.compile(r"<footer>.*?</footer>", re.DOTALL)
KEEP_IMAGES = {"logo-long.png", "favicon.ico"}
EXTERNAL_RESOURCE = re.compile(
    r"(?:<script\b[^>]*\bsrc|<link\b[^>]*\bhref|<img\b[^>]*\bsrc)=\"https?://", re.IGNORECASE
)

OFFLINE_CSS = """
/* r1interp: offline stand-in for the CDN stylesheets (bootstrap, font-awesome) GX Data Docs expect */
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 2rem 2rem; color: #212529; }
table { border-collapse: collapse; margin: .5rem 0; }
td, th { border: 1px solid #dee2e6; padding: .25rem .5rem; vertical-align: top; text-align: left; }
.modal, .ge-walkthrough-modal, .fixed-bottom, .invisible, button, .btn { display: none !important; }
.navbar { display: block; padding: .5rem 0; border-bottom: 1px solid #dee2e6; }
.ge-navigation-sidebar-container { float: left; width: 14rem; margin-right: 1rem; }
.nav { list-style: none; padding: 0; } .nav-link { display: block; padding: .1rem 0; }
.badge { display: inline-block; padding: .1em .4em; border-radius: .25rem; background: #e9ecef; font-size: 90%; }
.alert { padding: .5rem; border: 1px solid #ced4da; border-radius: .25rem; background: #f8f9fa; }
.text-success { color: #198754; } .text-danger { color: #dc3545; }
.fas { font-style: normal; font-weight: bold; }
.fa-check-circle::before { content: "\\2714"; } .fa-times::before, .fa-times-circle::before { content: "\\2716"; }
.fa-question-circle::before { content: "?"; }
.card { border: 1px solid #dee2e6; padding: .5rem; margin: .5rem 0; }
"""

INDEX_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem; color: #212529; }
table { border-collapse: collapse; } td, th { border: 1px solid #dee2e6; padding: .3rem .6rem; text-align: left; vertical-align: top; }
.ok { color: #198754; font-weight: bold; } .fail { color: #dc3545; font-weight: bold; } code { font-size: 90%; }
"""


def make_offline(site: Path, summary: dict) -> None:
    """Strip CDN scripts/stylesheets and remote images from GX's pages, add a local stylesheet, and
    replace GX's index (a bootstrap-table filled by JavaScript from CDNs) with a static one."""
    images = site / "static" / "images"
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        text = EXTERNAL_TAG.sub("", text)
        rel = Path(os.path.relpath(images, page.parent)).as_posix()
        text = EXTERNAL_IMG.sub(lambda m: f'src="{rel}/{m.group(1)}"', text)
        text = FOOTER.sub("", text)  # a newsletter link
        text = text.replace("</head>", f"<style>{OFFLINE_CSS}</style>\n</head>", 1)
        page.write_text(deterministic(text), encoding="utf-8")
    for css in site.rglob("*.css"):
        css.write_text(EXTERNAL_CSS_URL.sub("none", css.read_text(encoding="utf-8")), encoding="utf-8")
    if images.is_dir():  # 3.4 MB of GIFs for GX's onboarding walkthrough (hidden here); keep logo and favicon
        for image in images.iterdir():
            if image.name not in KEEP_IMAGES:
                image.unlink()
    (site / "index.html").write_text(index_html(site, summary), encoding="utf-8")


RANDOM_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
VALIDATION_TIME = re.compile(r"(?<![\w.])\d{8}T\d{6}\.\d{6}Z(?![\w.])")


def deterministic(text: str) -> str:
    """GX pages hold random element ids (uuid4) and the validation's wall-clock time: number the ids in
    order of appearance and drop the time (run times are fixed: see run_quality), so the same artifacts
    give the same bytes."""
    ids: dict[str, str] = {}
    text = RANDOM_UUID.sub(lambda m: ids.setdefault(m.group(0), f"id{len(ids)}"), text)
    fixed = FIXED_RUN_TIME.strftime("%Y%m%dT%H%M%S.%fZ")
    return VALIDATION_TIME.sub(lambda m: m.group(0) if m.group(0) == fixed else "(time not recorded)", text)


def external_resources(site: Path) -> list[str]:
    """Pages under `site` that still load something from the network (scripts, stylesheets, images)."""
    return sorted(
        str(p.relative_to(site))
        for p in site.rglob("*.html")
        if EXTERNAL_RESOURCE.search(p.read_text(encoding="utf-8"))
    )


def index_html(site: Path, summary: dict) -> str:
    rows = []
    for name, s in summary.items():
        if name == "overall":
            continue
        pages = sorted((site / "validations" / name).rglob("*.html")) if (site / "validations" / name).is_dir() else []
        links = [f'<a href="{html.escape(p.relative_to(site).as_posix())}">results</a>' for p in pages[-1:]]
        if (site / "expectations" / f"{name}.html").is_file():
            links.append(f'<a href="expectations/{html.escape(name)}.html">suite</a>')
        failed = "".join(f"<li><code>{html.escape(f)}</code></li>" for f in s["failed"])
        detail = f"<ul>{failed}</ul>" if failed else ""
        if s.get("error"):
            detail += f"<p>{html.escape(s['error'])}</p>"
        status = '<span class="ok">passed</span>' if s["success"] else '<span class="fail">failed</span>'
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td><code>{html.escape(s['artifact'])}</code></td><td>{status}</td>"
            f"<td>{s['successful']}/{s['evaluated']}</td><td>{' '.join(links)}</td><td>{detail}</td></tr>"
        )
    total = sum(s["evaluated"] for n, s in summary.items() if n != "overall")
    passed = sum(s["successful"] for n, s in summary.items() if n != "overall")
    ok = all(s["success"] for n, s in summary.items() if n != "overall")
    verdict = '<span class="ok">all suites pass</span>' if ok else '<span class="fail">some suites fail</span>'
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>r1interp data quality</title>'
        f"<style>{INDEX_CSS}</style></head><body>\n<h1>Data quality</h1>\n"
        f"<p>{verdict}: "
        f"{passed}/{total} expectations met over {len(rows)} suites (Great Expectations; static, no network).</p>\n"
        "<table><tr><th>suite</th><th>artifact</th><th>status</th><th>met</th><th>pages</th><th>failed expectations</th></tr>\n"
        + "\n".join(rows)
        + "\n</table></body></html>\n"
    )
