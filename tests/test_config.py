"""params.yaml validation: defaults, shipped files, and one clear error per mistake."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import yaml

from r1interp.cli import main
from r1interp.config import (
    PROFILES,
    CorpusParams,
    Params,
    TaskParams,
    load_params,
    parse_params,
    to_dict,
)
from r1interp.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "params-tiny.yaml"


def _tiny_data() -> dict:
    return yaml.safe_load(TINY.read_text())


def _set(data: dict, dotted: str, value) -> dict:
    data = copy.deepcopy(data)
    *parents, leaf = dotted.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return data


def _error(data) -> str:
    with pytest.raises(ConfigError) as info:
        parse_params(data)
    return str(info.value)


# ------------------------------------------------------------------ valid inputs


def test_defaults_parse():
    p = parse_params({})
    assert p == Params()
    assert parse_params(None) == p
    assert p.model.profile == "organism"
    assert p.organism.layers == 4
    assert p.organism.reasoner.steps == 1500
    assert set(p.corpus.tasks) == {"add", "mul"}
    assert p.corpus.tasks["add"] == TaskParams(2, 3)
    assert p.tokens.ctx_len <= p.organism.max_positions


def test_default_mutable_fields_are_not_shared():
    a, b = CorpusParams(), CorpusParams()
    assert a.tasks == b.tasks
    assert a.tasks is not b.tasks


def test_repo_params_yaml_loads_and_matches_file():
    path = ROOT / "params.yaml"
    p = load_params(path)
    raw = yaml.safe_load(path.read_text())
    assert p.seed == raw["seed"]
    assert p.organism.vocab_size == raw["organism"]["vocab_size"]
    assert p.organism.reasoner.lr == pytest.approx(float(raw["organism"]["reasoner"]["lr"]))
    assert p.corpus.tasks["mul"].max_digits == raw["corpus"]["tasks"]["mul"]["max_digits"]
    assert p.tokens.ctx_len == raw["tokens"]["ctx_len"]


def test_thorough_config_loads_and_differs_from_the_default_only_in_budgets():
    """configs/thorough.yaml (README "Larger settings") must stay a valid, complete params file."""
    thorough = to_dict(load_params(ROOT / "configs" / "thorough.yaml"))
    default = to_dict(load_params(ROOT / "params.yaml"))
    assert thorough["organism"]["reasoner"]["steps"] > default["organism"]["reasoner"]["steps"]
    assert thorough["train"]["max_tokens"] > default["train"]["max_tokens"]
    same = ("model", "tokens", "graphs", "compare", "critical")
    assert {s: thorough[s] for s in same} == {s: default[s] for s in same}


def test_tiny_params_load_every_value():
    p = load_params(TINY)
    raw = _tiny_data()
    # Every section round-trips exactly through the typed view.
    d = to_dict(p)
    for section in ("model", "tokens"):
        assert d[section] == raw[section]
    assert d["organism"]["layers"] == 2
    assert d["organism"]["hidden"] == 32
    assert d["organism"]["base"]["steps"] == 150
    assert d["corpus"]["tasks"] == raw["corpus"]["tasks"]
    assert isinstance(p.corpus.tasks["add"], TaskParams)
    assert isinstance(p.organism.rope_theta, float)


def test_float_written_as_int_or_exponent_string_is_accepted():
    p = parse_params({"organism": {"rope_theta": 500, "base": {"lr": "1e-3"}}})
    assert p.organism.rope_theta == 500.0 and isinstance(p.organism.rope_theta, float)
    assert p.organism.base.lr == pytest.approx(1e-3)


def test_params_are_frozen():
    p = parse_params({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.seed = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.organism.layers = 8  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.organism.reasoner.lr = 0.5  # type: ignore[misc]


# ------------------------------------------------------------------ errors


def test_unknown_top_level_key():
    msg = _error({"organsim": {}})
    assert msg.startswith("organsim: unknown key")
    for allowed in ("seed", "model", "corpus", "organism", "tokens"):
        assert allowed in msg


def test_unknown_nested_key():
    msg = _error({"organism": {"base": {"stepz": 3}}})
    assert "organism.base.stepz: unknown key" in msg
    for allowed in ("steps", "lr", "batch_size", "warmup_steps"):
        assert allowed in msg


def test_unknown_task_name():
    msg = _error({"corpus": {"tasks": {"sub": {"min_digits": 1, "max_digits": 2}}}})
    assert "corpus.tasks.sub: unknown key" in msg
    assert "add" in msg and "mul" in msg


def test_unknown_key_inside_task():
    msg = _error({"corpus": {"tasks": {"add": {"digits": 2}}}})
    assert "corpus.tasks.add.digits: unknown key" in msg
    assert "min_digits" in msg and "max_digits" in msg


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("organism.reasoner.lr", "fast", "expected a number"),
        ("organism.layers", 2.5, "expected an integer"),
        ("organism.layers", True, "expected an integer"),
        ("seed", "0", "expected an integer"),
        ("organism.rope_theta", False, "expected a number"),
        ("model.profile", 3, "expected a string"),
        ("organism.base", 5, "expected a mapping"),
        ("corpus.tasks", ["add"], "expected a mapping"),
    ],
)
def test_wrong_type(key, value, expected):
    msg = _error(_set({}, key, value))
    assert msg.startswith(f"{key}:")
    assert expected in msg
    assert repr(value) in msg


@pytest.mark.parametrize(
    "key, value, bound",
    [
        ("organism.layers", 0, ">= 1"),
        ("organism.layers", 65, "<= 64"),
        ("organism.vocab_size", 100, ">= 270"),
        ("organism.reasoner.lr", 0.0, "> 0.0"),
        ("organism.base.final_lr_fraction", 1.5, "<= 1.0"),
        ("model.threads", 0, ">= 1"),
        ("tokens.ctx_len", 4, ">= 8"),
        ("corpus.tasks.add.min_digits", 0, ">= 1"),
        ("seed", -1, ">= 0"),
    ],
)
def test_out_of_range(key, value, bound):
    msg = _error(_set({}, key, value))
    assert msg.startswith(f"{key}: {value!r} is out of range")
    assert bound in msg


@pytest.mark.parametrize(
    "key, value, allowed",
    [
        ("model.profile", "gpt2", PROFILES),
        ("model.device", "tpu", ("auto", "cpu", "cuda")),
        ("organism.reasoner_init", "random", ("base", "scratch")),
        ("tokens.tokenizer_of", "teacher", ("reasoner", "base")),
    ],
)
def test_choice_not_allowed(key, value, allowed):
    msg = _error(_set({}, key, value))
    assert msg.startswith(f"{key}: {value!r} is not allowed; allowed:")
    for a in allowed:
        assert a in msg


def test_hidden_not_divisible_by_heads():
    msg = _error({"organism": {"hidden": 30, "heads": 4}})
    assert "organism.hidden (30)" in msg
    assert "divisible by organism.heads (4)" in msg


def test_heads_not_divisible_by_kv_heads():
    msg = _error({"organism": {"heads": 4, "kv_heads": 3}})
    assert "organism.heads (4)" in msg and "organism.kv_heads (3)" in msg


def test_odd_head_dim():
    msg = _error({"organism": {"hidden": 36, "heads": 4, "kv_heads": 2}})
    assert "organism.hidden / organism.heads must be even" in msg


def test_warmup_longer_than_steps():
    msg = _error({"organism": {"reasoner": {"steps": 10, "warmup_steps": 20}}})
    assert "organism.reasoner.warmup_steps (20) must be <= organism.reasoner.steps (10)" in msg


def test_min_digits_above_max_digits():
    msg = _error({"corpus": {"tasks": {"add": {"min_digits": 4, "max_digits": 2}}}})
    assert "corpus.tasks.add.min_digits (4) must be <= corpus.tasks.add.max_digits (2)" in msg


def test_min_digits_above_default_max_digits():
    # Only min_digits given: the default max_digits (3) still applies.
    msg = _error({"corpus": {"tasks": {"mul": {"min_digits": 5}}}})
    assert "corpus.tasks.mul.min_digits (5)" in msg


def test_empty_task_mapping():
    msg = _error({"corpus": {"tasks": {}}})
    assert "corpus.tasks" in msg and "add" in msg and "mul" in msg


def test_ctx_len_beyond_max_positions():
    msg = _error({"tokens": {"ctx_len": 512}, "organism": {"max_positions": 256}})
    assert "tokens.ctx_len (512)" in msg and "organism.max_positions (256)" in msg
    # The real profile does not use the organism's positions.
    p = parse_params({"tokens": {"ctx_len": 512}, "model": {"profile": "r1-distill-qwen-1.5b"}})
    assert p.tokens.ctx_len == 512


def test_top_level_not_a_mapping():
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        parse_params([1, 2])


def test_load_invalid_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("seed: 0\nmodel:\n  profile: organism\n  device: [cpu\n")
    with pytest.raises(ConfigError) as info:
        load_params(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "not valid YAML" in msg
    assert "(line " in msg
    # The reported line is a real line of the file (1-based), at or after the error.
    line = int(msg.split("(line ")[1].split(",")[0])
    assert 4 <= line <= 5


def test_load_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="params file not found") as info:
        load_params(path)
    assert str(path) in str(info.value)


def test_load_error_names_file_and_key(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(_set(_tiny_data(), "organism.layers", 0)))
    with pytest.raises(ConfigError) as info:
        load_params(path)
    assert str(info.value).startswith(f"{path}: organism.layers: 0 is out of range")


def test_empty_file_gives_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_params(path) == Params()


# ------------------------------------------------------------------ CLI


def test_cli_params_check_ok(capsys):
    assert main(["params", "check", str(TINY)]) == 0
    out, err = capsys.readouterr()
    assert "ok" in out and "organism" in out
    assert err == ""


@pytest.mark.parametrize(
    "key, value",
    [("organism.layers", 0), ("model.profile", "gpt2"), ("organism.base.warmup_steps", 500)],  # > steps (150 in the tiny profile)
)
def test_cli_params_check_bad(tmp_path, capsys, monkeypatch, key, value):
    monkeypatch.delenv("R1INTERP_DEBUG", raising=False)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_set(_tiny_data(), key, value)))
    assert main(["params", "check", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert key in lines[0]


def test_cli_params_check_missing_file(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("R1INTERP_DEBUG", raising=False)
    assert main(["params", "check", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing.yaml" in err
