"""Artifact schemas (pandera) and file checks, applied when written and when read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from r1interp import paths
from r1interp.errors import ArtifactError


class CorpusSchema(pa.DataFrameModel):
    id: Series[str] = pa.Field(unique=True)
    task: Series[str]
    prompt: Series[str] = pa.Field(str_length={"min_value": 1})
    think: Series[str]
    answer: Series[str] = pa.Field(str_length={"min_value": 1})
    gold: Series[str] = pa.Field(str_length={"min_value": 1}, description="the gold final answer (graded against)")
    text: Series[str] = pa.Field(str_length={"min_value": 1})
    split: Series[str] = pa.Field(isin=["train", "heldout"])
    step_types: Series[str] = pa.Field(description="'|'-joined ground-truth step types ('' when unknown)")
    has_carry: Series[bool]

    class Config:
        strict = True
        coerce = False


def validate(df: pd.DataFrame, schema: type[pa.DataFrameModel], source: str) -> pd.DataFrame:
    """Validate lazily and raise one line naming the source and the first failures."""
    try:
        return schema.validate(df, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        head = "; ".join(
            f"column {row.column!r}: {row.check} (e.g. {row.failure_case!r})" for row in cases.head(3).itertuples()
        )
        raise ArtifactError(f"{source}: fails the {schema.__name__} schema: {head}") from None


def read_parquet(path: str | Path, schema: type[pa.DataFrameModel], rebuild_hint: str | None = None) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: file not found", hint=rebuild_hint)
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for truncated/corrupt files
        raise ArtifactError(
            f"{path}: not a readable parquet file ({type(exc).__name__}: {exc})", hint=rebuild_hint
        ) from None
    return validate(df, schema, str(path))


class FeatureSchema(pa.DataFrameModel):
    """data/activations/<model>/features.parquet: one row per transcoder feature."""

    model: Series[str]
    layer: Series[int] = pa.Field(ge=0)
    feature: Series[int] = pa.Field(ge=0)
    n_tokens: Series[int] = pa.Field(ge=0, description="valid tokens scanned")
    count: Series[int] = pa.Field(ge=0, description="tokens where the feature fired")
    density: Series[float] = pa.Field(ge=0, le=1)
    max_act: Series[float] = pa.Field(ge=0)
    mean_act: Series[float] = pa.Field(ge=0)
    think_fraction: Series[float] = pa.Field(ge=0, le=1)
    top_output_tokens: Series[object]
    top_output_logits: Series[object]

    @pa.dataframe_check
    def unique_features(cls, df: pd.DataFrame) -> bool:
        return not df.duplicated(["model", "layer", "feature"]).any()

    @pa.dataframe_check
    def density_is_count_over_tokens(cls, df: pd.DataFrame) -> pd.Series:
        return (df["density"] * df["n_tokens"] - df["count"]).abs() < 0.5

    class Config:
        strict = True
        coerce = False


class ExampleSchema(pa.DataFrameModel):
    """data/activations/<model>/examples.parquet: sampled example windows."""

    model: Series[str]
    layer: Series[int] = pa.Field(ge=0)
    kind: Series[str] = pa.Field(isin=["top", "quantile", "non_activating"])
    feature: Series[int] = pa.Field(ge=0)
    rank: Series[int] = pa.Field(ge=0)
    quantile: Series[int] = pa.Field(ge=-1, description="-1 outside the quantile sample; 0 = weakest bin")
    row: Series[int] = pa.Field(ge=0, description=f"row of {paths.TOKENS_HELDOUT}")
    position: Series[int] = pa.Field(ge=0)
    activation: Series[float] = pa.Field(ge=0)
    in_think: Series[bool]
    target: Series[int] = pa.Field(ge=0, description="index of the sampled token inside the window")
    tokens: Series[object]
    acts: Series[object]

    @pa.dataframe_check
    def windows_are_consistent(cls, df: pd.DataFrame) -> pd.Series:
        lengths = df["tokens"].map(len)
        return (lengths == df["acts"].map(len)) & (df["target"] < lengths)

    @pa.dataframe_check
    def activating_kinds_fire(cls, df: pd.DataFrame) -> pd.Series:
        fires = df["activation"] > 0
        return fires.where(df["kind"] != "non_activating", df["acts"].map(lambda a: float(np.abs(a).sum()) == 0.0))

    class Config:
        strict = True
        coerce = False


class LabelSchema(pa.DataFrameModel):
    """data/labels/labels.parquet: one row per labeled feature, with its scores."""

    model: Series[str]
    layer: Series[int] = pa.Field(ge=0)
    feature: Series[int] = pa.Field(ge=0)
    label: Series[str] = pa.Field(nullable=True, description="null when no label could be made or parsed")
    status: Series[str] = pa.Field(isin=["ok", "no_rule", "unparsed"])
    labeler: Series[str] = pa.Field(isin=["offline", "claude"])
    explainer_model: Series[str]
    scorer_model: Series[str]
    prompt_hash: Series[str] = pa.Field(str_length={"min_value": 64, "max_value": 64})
    n_explain: Series[int] = pa.Field(ge=0)
    n_test_activating: Series[int] = pa.Field(ge=0)
    n_test_negative: Series[int] = pa.Field(ge=0)
    density: Series[float] = pa.Field(ge=0, le=1)
    think_fraction: Series[float] = pa.Field(ge=0, le=1)
    detection_balanced_accuracy: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    detection_precision: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    detection_recall: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    detection_f1: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    fuzzing_balanced_accuracy: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    fuzzing_precision: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    fuzzing_recall: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    fuzzing_f1: Series[float] = pa.Field(ge=0, le=1, nullable=True)

    @pa.dataframe_check
    def unique_features(cls, df: pd.DataFrame) -> bool:
        return not df.duplicated(["model", "layer", "feature"]).any()

    @pa.dataframe_check
    def labeled_rows_have_text(cls, df: pd.DataFrame) -> pd.Series:
        return (df["status"] != "ok") | df["label"].notna()

    class Config:
        strict = True
        coerce = False


class GraphIndexSchema(pa.DataFrameModel):
    """data/graphs/index.parquet: one row per attribution graph, or per target that has none (and why)."""

    model: Series[str] = pa.Field(isin=["reasoner", "base"])
    prompt_id: Series[str]
    category: Series[str]
    kind: Series[str] = pa.Field(isin=["think", "answer"])
    status: Series[str] = pa.Field(isin=["ok", "skipped"])
    slug: Series[str] = pa.Field(nullable=True)
    reason: Series[str] = pa.Field(nullable=True)
    path: Series[str] = pa.Field(nullable=True)
    correct: Series[pd.BooleanDtype] = pa.Field(nullable=True, description="graded answer; null when nothing to grade")
    replacement_score: Series[float] = pa.Field(ge=0, le=1.0001, nullable=True)
    completeness_score: Series[float] = pa.Field(ge=0, le=1.0001, nullable=True)

    @pa.dataframe_check
    def unique_graphs(cls, df: pd.DataFrame) -> bool:
        return not df.duplicated(["model", "prompt_id", "kind"]).any()

    @pa.dataframe_check
    def ok_rows_have_files(cls, df: pd.DataFrame) -> pd.Series:
        return (df["status"] != "ok") | (df["path"].notna() & df["slug"].notna() & df["replacement_score"].notna())

    class Config:
        strict = False  # counts and timings ride along
        coerce = False
