"""Reading the pipeline's artifacts for the site: absent is normal, malformed is an error.

The site must build on a partial pipeline (a fresh clone, a run stopped half way), so any input may be
absent: readers then return a `Missing`, which pages render as a "not built yet" box naming the stage to
run. An input that exists but cannot be parsed, or fails its schema, is different: a report built on it
would mislead, so it raises `ArtifactError` naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from r1interp.errors import ArtifactError


@dataclass(frozen=True)
class Missing:
    """An input that has not been built: where it would be and which stage builds it."""

    path: str
    stage: str

    @property
    def command(self) -> str:
        return f"dvc repro {self.stage}"


def missing(value: Any) -> bool:
    return isinstance(value, Missing)


class Inputs:
    """Reads files relative to the repository root, once each (several pages share them)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._cache: dict[tuple, Any] = {}

    def path(self, rel: str) -> Path:
        return self.root / rel

    def exists(self, rel: str) -> bool:
        return self.path(rel).exists()

    def _memo(self, key: tuple, read):
        if key not in self._cache:
            self._cache[key] = read()
        return self._cache[key]

    def json(self, rel: str, stage: str) -> Any:
        def read():
            path = self.path(rel)
            if not path.is_file():
                return Missing(rel, stage)
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ArtifactError(
                    f"{rel}: not valid JSON ({exc})", hint=f"rebuild it with `dvc repro {stage}`"
                ) from None

        return self._memo(("json", rel), read)

    def text(self, rel: str, stage: str) -> str | Missing:
        path = self.path(rel)
        if not path.is_file():
            return Missing(rel, stage)
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ArtifactError(f"{rel}: not UTF-8 text ({exc})") from None

    def csv(self, rel: str, stage: str, columns: tuple[str, ...] = ()) -> pd.DataFrame | Missing:
        """A CSV table; `columns` must all be present (a missing column is a malformed file)."""

        def read():
            path = self.path(rel)
            if not path.is_file():
                return Missing(rel, stage)
            try:
                df = pd.read_csv(path)
            except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
                raise ArtifactError(
                    f"{rel}: not a readable CSV table ({exc})", hint=f"rebuild it with `dvc repro {stage}`"
                ) from None
            _require_columns(df, columns, rel, stage)
            return df

        return self._memo(("csv", rel, columns), read)

    def parquet(
        self,
        rel: str,
        stage: str,
        *,
        schema=None,
        columns: tuple[str, ...] = (),
        filters: list | None = None,
        read_columns: list[str] | None = None,
    ) -> pd.DataFrame | Missing:
        """A parquet table, validated with its pandera `schema` when it has one, else checked for `columns`.

        `read_columns` / `filters` are pushed into the reader (the activation tables are large); a schema
        is then applied to what was read, so only a full read should pass a strict schema.
        """

        def read():
            path = self.path(rel)
            if not path.exists():
                return Missing(rel, stage)
            try:
                df = pd.read_parquet(path, columns=read_columns, filters=filters)
            except Exception as exc:  # pyarrow raises several types for truncated or corrupt files
                raise ArtifactError(
                    f"{rel}: not a readable parquet file ({type(exc).__name__}: {exc})",
                    hint=f"rebuild it with `dvc repro {stage}`",
                ) from None
            if schema is not None:
                from r1interp.schemas import validate

                df = validate(df, schema, rel)
            _require_columns(df, columns, rel, stage)
            return df

        key = ("parquet", rel, columns, repr(filters), tuple(read_columns or ()), getattr(schema, "__name__", None))
        return self._memo(key, read)


def _require_columns(df: pd.DataFrame, columns: tuple[str, ...], rel: str, stage: str) -> None:
    absent = [c for c in columns if c not in df.columns]
    if absent:
        raise ArtifactError(
            f"{rel}: missing column(s) {', '.join(absent)}", hint=f"rebuild it with `dvc repro {stage}`"
        )


def require_keys(doc: Any, keys: tuple[str, ...], rel: str, stage: str, kind: type = dict) -> None:
    """A JSON document must be a `kind` with these keys; anything else names the file."""
    if not isinstance(doc, kind):
        raise ArtifactError(
            f"{rel}: expected a JSON {kind.__name__}, found {type(doc).__name__}",
            hint=f"rebuild it with `dvc repro {stage}`",
        )
    absent = [k for k in keys if k not in doc]
    if absent:
        raise ArtifactError(f"{rel}: missing field(s) {', '.join(absent)}", hint=f"rebuild it with `dvc repro {stage}`")
