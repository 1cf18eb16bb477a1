"""Benchmark prompt sets, one JSON file per model profile under data/prompts/.

The files are hand-written, so loading is strict: every problem is reported as one
line naming the file and the prompt id or field, before any GPU time is spent.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r1interp import paths
from r1interp.errors import ArtifactError

SCHEMA_VERSION = 1

CATEGORIES: dict[str, frozenset[str]] = {
    "r1-distill-qwen-1.5b": frozenset(
        {
            "arithmetic",
            "multihop",
            "reasoning",
            "factual_recall",
            "safety",
            "reasoning_failure",
            "baseline",
        }
    ),
    "organism": frozenset(
        {
            "arithmetic_carry",
            "arithmetic_no_carry",
            "multiplication",
            "reasoning_failure",
            "baseline",
        }
    ),
}

# The organism's only question forms; the prompt text must match them exactly,
# otherwise it is out of the organism's training distribution by accident.
TASK_OPS = {"add": "+", "mul": "*"}

_ID_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_TOP_FIELDS = {"schema_version": int, "profile": str, "description": str, "prompts": list}
_TOP_REQUIRED = ("schema_version", "profile", "prompts")
# field -> (allowed types, required)
_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "id": ((str,), True),
    "category": ((str,), True),
    "prompt": ((str,), True),
    "expected": ((str, type(None)), True),
    "task": ((str, type(None)), False),
    "operands": ((list, type(None)), False),
    "prefill": ((str,), False),
    "notes": ((str,), False),
}


@dataclass(frozen=True)
class BenchmarkPrompt:
    id: str
    category: str
    prompt: str
    expected: str | None
    task: str | None = None
    operands: tuple[int, ...] | None = None
    prefill: str = ""
    notes: str = ""


def prompts_path(profile: str, root: Path = Path(".")) -> Path:
    return Path(root) / paths.prompts_file(profile)


def _type_names(types: tuple[type, ...]) -> str:
    names = {str: "string", int: "integer", list: "list", type(None): "null"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _check_type(value: Any, types: tuple[type, ...]) -> bool:
    # bool is a subclass of int, but `true` is never a valid count or operand
    return isinstance(value, types) and not (isinstance(value, bool) and bool not in types)


def _parse_prompt(path: Path, index: int, raw: Any, allowed: frozenset[str]) -> BenchmarkPrompt:
    if not isinstance(raw, dict):
        raise ArtifactError(f"{path}: prompts[{index}] is not a JSON object")
    pid = raw.get("id")
    where = f"{path}: prompt {pid!r}" if isinstance(pid, str) else f"{path}: prompts[{index}]"

    unknown = sorted(set(raw) - set(_FIELDS))
    if unknown:
        raise ArtifactError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(_FIELDS)}")
    for name, (types, required) in _FIELDS.items():
        if name not in raw:
            if required:
                raise ArtifactError(f"{where}: missing required field '{name}'")
            continue
        if not _check_type(raw[name], types):
            raise ArtifactError(f"{where}: field '{name}' must be {_type_names(types)}, got {type(raw[name]).__name__}")

    if not _ID_RE.match(pid):
        raise ArtifactError(f"{where}: field 'id' must be a lowercase slug like 'arith-01'")
    if raw["category"] not in allowed:
        raise ArtifactError(
            f"{where}: field 'category' is {raw['category']!r}, not allowed here; allowed: {', '.join(sorted(allowed))}"
        )
    if not raw["prompt"].strip():
        raise ArtifactError(f"{where}: field 'prompt' is empty")

    task, operands = raw.get("task"), raw.get("operands")
    if (task is None) != (operands is None):
        raise ArtifactError(f"{where}: fields 'task' and 'operands' must be given together")
    if task is not None:
        _check_task(where, raw["prompt"], raw["expected"], task, operands)

    return BenchmarkPrompt(
        id=pid,
        category=raw["category"],
        prompt=raw["prompt"],
        expected=raw["expected"],
        task=task,
        operands=tuple(operands) if operands is not None else None,
        prefill=raw.get("prefill", ""),
        notes=raw.get("notes", ""),
    )


def _check_task(where: str, prompt: str, expected: str | None, task: str, operands: list) -> None:
    if task not in TASK_OPS:
        raise ArtifactError(f"{where}: field 'task' is {task!r}; allowed: {', '.join(TASK_OPS)}")
    if len(operands) != 2 or not all(_check_type(x, (int,)) for x in operands):
        raise ArtifactError(f"{where}: field 'operands' must be a list of two integers")
    a, b = operands
    op = TASK_OPS[task]
    question = f"What is {a}{op}{b}?"
    if prompt != question:
        raise ArtifactError(f"{where}: field 'prompt' is {prompt!r} but operands {operands} give {question!r}")
    result = str(a + b if task == "add" else a * b)
    if expected != result:
        raise ArtifactError(f"{where}: field 'expected' is {expected!r} but {a}{op}{b} = {result}")


def load_prompts(path: Path) -> list[BenchmarkPrompt]:
    return _load(Path(path))[1]


def load_profile_prompts(profile: str, root: Path = Path(".")) -> list[BenchmarkPrompt]:
    path = prompts_path(profile, root)
    declared, prompts = _load(path)
    # A file copied from another profile would otherwise pass with that profile's categories.
    if declared != profile:
        raise ArtifactError(f"{path}: field 'profile' is {declared!r}, expected {profile!r}")
    return prompts


def _load(path: Path) -> tuple[str, list[BenchmarkPrompt]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArtifactError(
            f"{path}: prompt file not found", hint=f"prompt sets live in {paths.PROMPTS_DIR}/<profile>.json"
        ) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None

    if not isinstance(doc, dict):
        raise ArtifactError(f"{path}: top level must be a JSON object")
    unknown = sorted(set(doc) - set(_TOP_FIELDS))
    if unknown:
        raise ArtifactError(
            f"{path}: unknown top-level field(s) {', '.join(unknown)}; allowed: {', '.join(_TOP_FIELDS)}"
        )
    for name in _TOP_REQUIRED:
        if name not in doc:
            raise ArtifactError(f"{path}: missing required top-level field '{name}'")
    for name, typ in _TOP_FIELDS.items():
        if name in doc and not _check_type(doc[name], (typ,)):
            raise ArtifactError(
                f"{path}: top-level field '{name}' must be {_type_names((typ,))}, got {type(doc[name]).__name__}"
            )
    if doc["schema_version"] != SCHEMA_VERSION:
        raise ArtifactError(f"{path}: schema_version is {doc['schema_version']}, this code reads {SCHEMA_VERSION}")
    profile = doc["profile"]
    if profile not in CATEGORIES:
        raise ArtifactError(f"{path}: profile {profile!r} is unknown; known: {', '.join(CATEGORIES)}")

    prompts: list[BenchmarkPrompt] = []
    seen: set[str] = set()
    for i, raw in enumerate(doc["prompts"]):
        p = _parse_prompt(path, i, raw, CATEGORIES[profile])
        if p.id in seen:
            raise ArtifactError(f"{path}: prompt {p.id!r}: duplicate id")
        seen.add(p.id)
        prompts.append(p)
    if not prompts:
        raise ArtifactError(f"{path}: 'prompts' is empty")
    return profile, prompts
