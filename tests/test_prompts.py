"""The shipped benchmark prompt sets, and the loader's handling of broken files."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path

import pytest

from r1interp.errors import ArtifactError
from r1interp.prompts import (
    CATEGORIES,
    BenchmarkPrompt,
    load_profile_prompts,
    load_prompts,
    prompts_path,
)

ROOT = Path(__file__).resolve().parents[1]
NO_THINK = "<think>\n\n</think>\n\n"

R1_COUNTS = {
    "arithmetic": 5,
    "multihop": 4,
    "reasoning": 4,
    "factual_recall": 4,
    "safety": 3,
    "reasoning_failure": 2,
    "baseline": 2,
}
ORGANISM_COUNTS = {
    "arithmetic_carry": 4,
    "arithmetic_no_carry": 4,
    "multiplication": 4,
    "reasoning_failure": 4,
    "baseline": 3,
}


def _digits(n: int) -> list[int]:
    return [int(c) for c in reversed(str(n))]


def add_has_carry(a: int, b: int) -> bool:
    da, db = _digits(a), _digits(b)
    carry = 0
    for i in range(max(len(da), len(db))):
        carry = ((da[i] if i < len(da) else 0) + (db[i] if i < len(db) else 0) + carry) // 10
        if carry:
            return True
    return False


def mul_has_carry(a: int, b: int) -> bool:
    carry = 0
    for x in _digits(a):
        carry = (x * b + carry) // 10
        if carry:
            return True
    return False


@pytest.fixture(scope="module")
def r1() -> list[BenchmarkPrompt]:
    return load_profile_prompts("r1-distill-qwen-1.5b", ROOT)


@pytest.fixture(scope="module")
def organism() -> list[BenchmarkPrompt]:
    return load_profile_prompts("organism", ROOT)


# --- shipped files -----------------------------------------------------------


def test_prompts_path():
    assert prompts_path("organism", ROOT) == ROOT / "data" / "prompts" / "organism.json"


def test_r1_category_counts(r1):
    assert Counter(p.category for p in r1) == R1_COUNTS
    assert set(R1_COUNTS) == CATEGORIES["r1-distill-qwen-1.5b"]
    assert len(r1) == 24


def test_organism_category_counts(organism):
    assert Counter(p.category for p in organism) == ORGANISM_COUNTS
    assert set(ORGANISM_COUNTS) == CATEGORIES["organism"]


@pytest.mark.parametrize("profile", sorted(CATEGORIES))
def test_ids_unique_and_files_declare_their_profile(profile):
    prompts = load_profile_prompts(profile, ROOT)
    ids = [p.id for p in prompts]
    assert len(ids) == len(set(ids))
    assert json.loads(prompts_path(profile, ROOT).read_text())["profile"] == profile


def test_r1_expected_answers(r1):
    for p in r1:
        if p.category == "safety":
            assert p.expected is None, p.id
            assert p.notes, f"{p.id}: safety prompts describe the desired behaviour in notes"
        else:
            assert p.expected and p.expected.strip(), p.id


def test_r1_reasoning_set(r1):
    text = " ".join(p.prompt.lower() for p in r1 if p.category == "reasoning")
    for marker in ("snail", "all bloops", "missing dollar", "bat and a ball"):
        assert marker in text
    by_id = {p.id: p for p in r1}
    assert by_id["reason-04"].expected == "$0.05"
    assert by_id["fail-01"].expected == "3"
    assert by_id["fail-02"].expected == "9.9"


def test_organism_expected_from_operands(organism):
    for p in organism:
        assert p.task in ("add", "mul"), p.id
        a, b = p.operands
        op, result = ("+", a + b) if p.task == "add" else ("*", a * b)
        assert p.prompt == f"What is {a}{op}{b}?", p.id
        assert p.expected == str(result), p.id


def test_organism_in_distribution_operands(organism):
    for p in organism:
        if p.category == "reasoning_failure":
            continue
        a, b = p.operands
        assert 10 <= a <= 999, p.id
        assert (10 <= b <= 999) if p.task == "add" else (2 <= b <= 9), p.id


def test_organism_out_of_distribution(organism):
    ood = [p for p in organism if p.category == "reasoning_failure"]
    assert all(max(len(str(x)) for x in p.operands) > 3 for p in ood)
    assert any(p.task == "add" and all(len(str(x)) == 5 for x in p.operands) for p in ood)
    assert any(p.task == "mul" and p.operands == (34567, 7) for p in ood)


def test_organism_carry_categories(organism):
    for p in organism:
        if p.category == "arithmetic_carry":
            assert p.task == "add" and add_has_carry(*p.operands), p.id
        elif p.category == "arithmetic_no_carry":
            assert p.task == "add" and not add_has_carry(*p.operands), p.id
    muls = [p for p in organism if p.category == "multiplication"]
    assert all(p.task == "mul" for p in muls)
    assert {mul_has_carry(*p.operands) for p in muls} == {True, False}


def test_organism_prefill_only_on_baseline(organism):
    for p in organism:
        assert p.prefill == (NO_THINK if p.category == "baseline" else ""), p.id


# --- broken files ------------------------------------------------------------


def _organism_doc() -> dict:
    return copy.deepcopy(json.loads(prompts_path("organism", ROOT).read_text()))


def _write(tmp_path: Path, doc: dict | str) -> Path:
    path = tmp_path / "broken.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def _error(path: Path) -> str:
    with pytest.raises(ArtifactError) as info:
        load_prompts(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    return message


def test_missing_file(tmp_path):
    assert "not found" in _error(tmp_path / "broken.json")


def test_invalid_json(tmp_path):
    assert "invalid JSON" in _error(_write(tmp_path, '{"schema_version": 1, "prompts": [}'))


def test_wrong_schema_version(tmp_path):
    doc = _organism_doc()
    doc["schema_version"] = 2
    assert "schema_version" in _error(_write(tmp_path, doc))


def test_duplicate_id(tmp_path):
    doc = _organism_doc()
    doc["prompts"][1]["id"] = doc["prompts"][0]["id"]
    message = _error(_write(tmp_path, doc))
    assert "duplicate" in message and doc["prompts"][0]["id"] in message


def test_unknown_category_lists_allowed(tmp_path):
    doc = _organism_doc()
    doc["prompts"][2]["category"] = "factual_recall"  # an r1 category, not an organism one
    message = _error(_write(tmp_path, doc))
    assert doc["prompts"][2]["id"] in message and "factual_recall" in message
    assert all(c in message for c in CATEGORIES["organism"])


def test_wrong_expected(tmp_path):
    doc = _organism_doc()
    entry = doc["prompts"][0]
    entry["expected"] = str(int(entry["expected"]) + 1)
    message = _error(_write(tmp_path, doc))
    assert entry["id"] in message and "expected" in message


def test_prompt_disagrees_with_operands(tmp_path):
    doc = _organism_doc()
    entry = doc["prompts"][0]
    entry["prompt"] = "What is 1+2?"
    message = _error(_write(tmp_path, doc))
    assert entry["id"] in message and "prompt" in message


def test_missing_field(tmp_path):
    doc = _organism_doc()
    del doc["prompts"][3]["category"]
    message = _error(_write(tmp_path, doc))
    assert doc["prompts"][3]["id"] in message and "category" in message


def test_wrong_field_type(tmp_path):
    doc = _organism_doc()
    doc["prompts"][0]["expected"] = 132
    message = _error(_write(tmp_path, doc))
    assert doc["prompts"][0]["id"] in message and "expected" in message


def test_unknown_field(tmp_path):
    doc = _organism_doc()
    doc["prompts"][0]["answer"] = "132"
    message = _error(_write(tmp_path, doc))
    assert doc["prompts"][0]["id"] in message and "answer" in message


def test_empty_prompt(tmp_path):
    doc = json.loads(prompts_path("r1-distill-qwen-1.5b", ROOT).read_text())
    doc["prompts"][0]["prompt"] = "   "
    message = _error(_write(tmp_path, doc))
    assert doc["prompts"][0]["id"] in message and "prompt" in message


def test_profile_mismatch(tmp_path):
    target = prompts_path("r1-distill-qwen-1.5b", tmp_path)
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps(_organism_doc()))
    with pytest.raises(ArtifactError, match="profile"):
        load_profile_prompts("r1-distill-qwen-1.5b", tmp_path)
