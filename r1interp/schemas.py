"""Artifact schemas (pandera) and file checks, applied when written and when read."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from r1interp.errors import ArtifactError


class CorpusSchema(pa.DataFrameModel):
    id: Series[str] = pa.Field(unique=True)
    task: Series[str]
    prompt: Series[str] = pa.Field(str_length={"min_value": 1})
    think: Series[str]
    answer: Series[str] = pa.Field(str_length={"min_value": 1})
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
        raise ArtifactError(f"{path}: not a readable parquet file ({type(exc).__name__}: {exc})", hint=rebuild_hint) from None
    return validate(df, schema, str(path))
