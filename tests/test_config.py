"""params.yaml validation: defaults, shipped files, and one clear error per mistake."""

from __future__ import annotations

import copy
import dataclasses
import os
from pathlib import Path

import pytest
import yaml

from helpers import TINY, tiny_params_dict, write_tiny_params
from r1interp.cli import main
from r1interp.config import (
    PROFILES,
    CorpusParams,
    Params,
    TaskParams,
    load_params,
    merge_override,
    parse_params,
    to_dict,
    write_params,
)
from r1interp.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
THOROUGH = ROOT / "configs" / "thorough.yaml"

# Keys of the defaults that params.yaml may leave out: none (every default is written out).
ABSENT_FROM_PARAMS_YAML: tuple[str, ...] = ()

# The values of the full configs/thorough.yaml before it became an override (the first full run):
# every other key has its default.
THOROUGH_VS_DEFAULTS = {
    "corpus.train_per_task": 20000,
    "organism.reasoner.steps": 1500,
    "organism.reasoner.batch_size": 64,
    "organism.eval.problems_per_task": 200,
    "train.max_tokens": 4000000,
    "evaluate.max_tokens": 100000,
    "activations.max_tokens": 200000,
    "motifs.samples": 100,
    "clusters.problems": 0,
    "clusters.bootstrap": 20,
    "interventions.problems_per_group": 100,
    "interventions.batch_size": 100,
    "interventions.ablation_sizes": [25, 50, 100, 150, 300],
    "interventions.random_controls": 3,
    "interventions.steering.alphas": [1.0, 2.0, 4.0, 8.0, 16.0],
    "interventions.edit.sizes": [2, 4, 8],
    "interventions.edit.scales": [0.0, 2.0],
    "interventions.finetune.problems": 256,
    "interventions.finetune.steps": 300,
}


def _tiny_data() -> dict:
    """The full tiny params (defaults + tests/data/params-tiny.yaml) as plain data."""
    return tiny_params_dict()


def _flat(data: dict, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}; an empty mapping is a value."""
    out = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(_flat(value, dotted))
        else:
            out[dotted] = value
    return out


def _same(a, b) -> bool:
    """Equal values of the same type (1 and 1.0, or 1 and True, differ), lists item by item."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _differences(expected: dict, actual: dict, *, may_lack: tuple[str, ...] = ()) -> list[str]:
    """One readable line per key where `actual` differs from `expected` (nested plain data)."""
    exp, act = _flat(expected), _flat(actual)
    lines = []
    for key in exp:
        if key not in act:
            if not any(key == k or key.startswith(k + ".") for k in may_lack):
                lines.append(f"{key}: missing (default {exp[key]!r})")
        elif not _same(exp[key], act[key]):
            lines.append(
                f"{key}: {act[key]!r} ({type(act[key]).__name__}), default {exp[key]!r} ({type(exp[key]).__name__})"
            )
    lines += [f"{key}: {act[key]!r} is not a key of the defaults" for key in act if key not in exp]
    return lines


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
    assert p.organism.reasoner.steps == 1200
    assert p.organism.reasoner.lr == pytest.approx(1e-2)
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


def test_params_yaml_equals_the_defaults():
    """params.yaml (what DVC tracks) and the dataclass defaults of r1interp/config.py are one set of values:
    change both or neither (`r1interp params write` rewrites params.yaml from the defaults)."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    diffs = _differences(to_dict(Params()), raw, may_lack=ABSENT_FROM_PARAMS_YAML)
    assert not diffs, "params.yaml differs from the defaults in r1interp/config.py:\n  " + "\n  ".join(diffs)
    assert load_params(ROOT / "params.yaml") == Params()


def test_differences_name_the_keys():
    defaults = to_dict(Params())
    changed = copy.deepcopy(defaults)
    changed["train"]["lr"] = 0.0
    changed["interventions"]["steering"]["alphas"] = [2.0]
    changed["seed"] = 0.0
    del changed["organism"]["reasoner"]["steps"]
    changed["train"]["lrr"] = 1
    diffs = _differences(defaults, changed)
    assert [d.split(":")[0] for d in diffs] == [
        "seed",
        "organism.reasoner.steps",
        "train.lr",
        "interventions.steering.alphas",
        "train.lrr",
    ]
    assert _differences(defaults, copy.deepcopy(defaults)) == []


def test_thorough_config_loads_and_differs_from_the_default_only_in_budgets():
    """configs/thorough.yaml (README "Larger settings") is an override: defaults + it = the first full run."""
    thorough = merge_override(THOROUGH)
    default = to_dict(Params())
    assert thorough["organism"]["reasoner"]["steps"] > default["organism"]["reasoner"]["steps"]
    assert thorough["train"]["max_tokens"] > default["train"]["max_tokens"]
    same = ("model", "tokens", "graphs", "compare", "critical")
    assert {s: thorough[s] for s in same} == {s: default[s] for s in same}
    expected = _flat(default) | THOROUGH_VS_DEFAULTS
    assert _flat(thorough) == expected


@pytest.mark.parametrize("override", [THOROUGH, TINY], ids=["thorough", "tiny"])
def test_overrides_hold_only_keys_that_differ(override):
    """An override lists only keys that differ from the defaults, and means the same merged or loaded directly."""
    raw = _flat(yaml.safe_load(override.read_text()))
    default = _flat(to_dict(Params()))
    same = [key for key, value in raw.items() if key in default and _same(default[key], value)]
    assert not same, f"{override.name}: keys equal to the defaults: {same}"
    assert merge_override(override) == to_dict(load_params(override))


def test_tiny_params_load_every_value(tmp_path):
    path = write_tiny_params(tmp_path / "params.yaml")
    p = load_params(path)
    raw = yaml.safe_load(path.read_text())
    # The written file is complete and round-trips exactly through the typed view.
    d = to_dict(p)
    assert d == raw == _tiny_data()
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
    p = parse_params(merge_override(REAL_CONFIG) | {"tokens": {"ctx_len": 512}})
    assert p.tokens.ctx_len == 512


REAL_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "r1-distill-qwen-1.5b.yaml"


def test_real_profile_config_is_valid_and_step_types_follow_the_profile():
    real = parse_params(merge_override(REAL_CONFIG))
    assert real.model.profile == "r1-distill-qwen-1.5b" and real.interventions.target_step_type == "backtracking"
    # the organism's step types mean nothing on real traces, and line steps have no behaviour annotation
    msg = _error({"model": {"profile": "r1-distill-qwen-1.5b"}})
    assert "interventions.target_step_type: 'column_sum_carry'" in msg and "backtracking" in msg
    msg = _error({**merge_override(REAL_CONFIG), "clusters": {"segment": "line"}})
    assert msg.startswith("clusters.segment: 'line' is not allowed") and "sentence" in msg
    msg = _error({"interventions": {"finetune": {"step_type": "backtracking"}}})
    assert "interventions.finetune.step_type: 'backtracking'" in msg and "column_sum_carry" in msg


def test_behaviour_step_types_are_the_annotator_categories():
    from r1interp.config import BEHAVIOURS
    from r1interp.reasoning.behaviours import CATEGORIES

    assert BEHAVIOURS == CATEGORIES


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


def test_cli_params_check_ok(tmp_path, capsys):
    assert main(["params", "check", str(write_tiny_params(tmp_path / "params.yaml"))]) == 0
    out, err = capsys.readouterr()
    assert "ok" in out and "organism" in out
    assert err == ""


@pytest.mark.parametrize(
    "key, value",
    [
        ("organism.layers", 0),
        ("model.profile", "gpt2"),
        ("organism.base.warmup_steps", 500),
    ],  # > steps (150 in the tiny profile)
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


# ------------------------------------------------------------------ overrides and `params write`


def test_merge_override_without_a_file_is_the_defaults():
    assert merge_override() == to_dict(Params())


def test_merge_override_merges_sections_key_by_key(tmp_path):
    path = tmp_path / "o.yaml"
    path.write_text("organism:\n  reasoner: {steps: 1000}\ntrain: {lr: 1.0e-3}\n")
    merged = merge_override(path)
    default = to_dict(Params())
    assert merged["organism"]["reasoner"] == {**default["organism"]["reasoner"], "steps": 1000}
    assert merged["train"] == {**default["train"], "lr": 1e-3}
    assert {k: v for k, v in merged.items() if k not in ("organism", "train")} == {
        k: v for k, v in default.items() if k not in ("organism", "train")
    }


def test_empty_override_is_the_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing differs\n")
    assert merge_override(path) == to_dict(Params())


def test_override_unknown_key_is_one_line_naming_file_and_key(tmp_path):
    path = tmp_path / "override.yaml"
    path.write_text("train: {lrr: 1}\n")
    with pytest.raises(ConfigError) as info:
        merge_override(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: train.lrr: unknown key; allowed: ")
    for allowed in ("source", "lr", "max_tokens", "pull"):
        assert allowed in msg


@pytest.mark.parametrize(
    "text, key, expected",
    [
        ("train: {lr: fast}", "train.lr", "expected a number"),
        ("organism: {reasoner: {steps: 2.5}}", "organism.reasoner.steps", "expected an integer"),
        ("interventions: {ablation_sizes: 50}", "interventions.ablation_sizes", "expected a list"),
        ("corpus: 3", "corpus", "expected a mapping"),
        ("model: {profile: gpt2}", "model.profile", "is not allowed"),
    ],
)
def test_override_wrong_value_names_file_and_key(tmp_path, text, key, expected):
    path = tmp_path / "override.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as info:
        merge_override(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: {key}: ")
    assert expected in msg


def test_override_not_a_mapping_or_missing(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n")
    with pytest.raises(ConfigError, match="top level must be a mapping") as info:
        merge_override(path)
    assert str(info.value).startswith(str(path))
    with pytest.raises(ConfigError, match="override file not found"):
        merge_override(tmp_path / "missing.yaml")


def test_write_params_is_complete_ordered_and_stable(tmp_path):
    path = tmp_path / "params.yaml"
    data = merge_override(THOROUGH)
    write_params(data, path)
    first = path.read_bytes()
    raw = yaml.safe_load(first)
    assert raw == data  # every key, as plain YAML values
    assert list(raw) == [f.name for f in dataclasses.fields(Params)]  # sections in the dataclass order
    assert list(raw["train"]) == list(to_dict(Params())["train"])
    assert first.startswith(b"# ")
    write_params(data, path)
    assert path.read_bytes() == first  # the same data gives the same bytes
    assert sorted(os.listdir(tmp_path)) == ["params.yaml"]  # no temp file left behind


def test_write_params_rejects_invalid_data_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("seed: 0\n")
    bad = _set(to_dict(Params()), "organism.layers", 0)
    with pytest.raises(ConfigError, match="organism.layers: 0 is out of range") as info:
        write_params(bad, path)
    assert str(info.value).startswith(str(path))
    assert path.read_text() == "seed: 0\n"
    assert sorted(os.listdir(tmp_path)) == ["params.yaml"]


def test_cli_params_write_thorough(tmp_path, capsys):
    out = tmp_path / "params.yaml"
    assert main(["params", "write", "--override", str(THOROUGH), "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert str(out) in stdout and "written" in stdout
    raw = yaml.safe_load(out.read_text())
    # Equal in values to the full configs/thorough.yaml of before: the defaults with the first run's budgets.
    assert _flat(raw) == _flat(to_dict(Params())) | THOROUGH_VS_DEFAULTS
    assert to_dict(load_params(out)) == raw
    first = out.read_bytes()
    assert main(["params", "write", "--override", str(THOROUGH), "--out", str(out)]) == 0
    assert out.read_bytes() == first


def test_cli_params_write_defaults(tmp_path, capsys):
    out = tmp_path / "params.yaml"
    assert main(["params", "write", "--out", str(out)]) == 0
    assert yaml.safe_load(out.read_text()) == to_dict(Params())
    assert load_params(out) == load_params(ROOT / "params.yaml")


def test_cli_params_write_unknown_key_is_one_error_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("R1INTERP_DEBUG", raising=False)
    override = tmp_path / "override.yaml"
    override.write_text("train: {lrr: 1}\n")
    out = tmp_path / "params.yaml"
    assert main(["params", "write", "--override", str(override), "--out", str(out)]) == 2
    stdout, err = capsys.readouterr()
    assert stdout == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {override}: train.lrr: unknown key; allowed: ")
    assert not out.exists()


@pytest.mark.parametrize("key", ["interventions.ablation_sizes", "interventions.steering.alphas",
                                 "interventions.edit.sizes", "interventions.edit.scales"])  # fmt: skip
def test_a_list_an_experiment_loops_over_must_not_be_empty(key):
    assert _error(_set({}, key, [])) == f"{key}: needs at least 1 value(s), got an empty list"


@pytest.mark.parametrize(("groups", "message"), [
    (["0-1", "1-3"], "'0-1' and '1-3' both hold layer 1; groups must be disjoint"),
    (["2", "0-3"], "'2' and '0-3' both hold layer 2"),
    (["1", "1"], "'1' and '1' both hold layer 1"),
])  # fmt: skip
def test_overlapping_layer_groups_are_refused(groups, message):
    assert message in _error(_set({}, "train.layer_groups", groups))
    assert parse_params(_set({}, "train.layer_groups", ["0-1", "2-3"])).train.layer_groups == ["0-1", "2-3"]


def test_a_model_listed_twice_is_refused():
    assert "train.models: ['reasoner', 'reasoner'] lists a model twice" in _error(
        _set({}, "train.models", ["reasoner", "reasoner"])
    )


@pytest.mark.parametrize("key", ["seed", "interventions.seed", "train.seed"])
def test_seeds_fit_numpy_and_torch(key):
    assert "<= 4294967295" in _error(_set({}, key, 2**32))
    assert "<= 4294967295" in _error(_set({}, key, 10**30))
    parse_params(_set({}, key, 2**32 - 1))


@pytest.mark.parametrize(("groups", "layers", "bad"), [(["0-99"], 4, "'0-99'"), (["0-1", "4"], 4, "'4'"),
                                                       (["0-2"], 2, "'0-2'")])  # fmt: skip
def test_layer_groups_beyond_the_organism_are_refused(groups, layers, bad):
    data = _set(_set({}, "organism.layers", layers), "train.layer_groups", groups)
    message = _error(data)
    assert (
        f"train.layer_groups[{groups.index(bad.strip(chr(39)))}]: {bad} names layers beyond the organism's {layers}"
        in message
    )
    assert parse_params(_set(_set({}, "organism.layers", layers), "train.layer_groups", [f"0-{layers - 1}"]))


def test_the_real_corpus_needs_a_pinned_revision():
    real = _set(merge_override(REAL_CONFIG), "corpus.hub.allow_unpinned", False)
    assert _error(real).startswith("corpus.hub.revision: pin a commit sha or tag of open-r1/OpenR1-Math-220k")
    assert _error(_set(real, "corpus.hub.revision", "main")).startswith("corpus.hub.revision: pin a commit sha or tag")
    assert parse_params(_set(real, "corpus.hub.revision", "v1.0"))
    assert parse_params(_set(real, "corpus.hub.allow_unpinned", True))
    assert parse_params(_set(real, "corpus.hub.data_files", "local.parquet"))  # a local file has no revision
    assert parse_params({}).corpus.hub.revision == ""  # the organism profile never reads the Hub corpus


def test_a_pull_from_a_branch_is_refused_unless_allowed():
    pulling = _set(_set({}, "train.source", "pull"), "train.pull.repos", {"reasoner": "a/r", "base": "a/b"})
    assert _error(_set(pulling, "train.pull.revision", "main")) == (
        "train.pull.revision: 'main' is a branch, not a pin; give a commit sha or tag "
        "(or set train.pull.allow_unpinned: true)"
    )
    allowed = _set(_set(pulling, "train.pull.revision", "main"), "train.pull.allow_unpinned", True)
    assert parse_params(allowed).train.pull.allow_unpinned
    assert parse_params(_set(pulling, "train.pull.revision", "v0.1")).train.pull.require_manifest  # on by default


# ------------------------------------------------------------------ every bound, and every cross-check, at its edge


def _bounded_keys(cls=Params, prefix: str = ""):
    """(dotted key, field metadata, type) of every field with a ge/gt/le/lt bound, nested sections included."""
    import typing

    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key, tp = f"{prefix}{f.name}", hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from _bounded_keys(tp, key + ".")
        elif typing.get_origin(tp) is dict and dataclasses.is_dataclass(typing.get_args(tp)[1]):
            name = next(iter(getattr(Params(), key.split(".")[0]).tasks)) if key == "corpus.tasks" else None
            if name:
                yield from _bounded_keys(typing.get_args(tp)[1], f"{key}.{name}.")
        elif any(b in f.metadata for b in ("ge", "gt", "le", "lt")):
            yield key, dict(f.metadata), tp


BOUNDED = list(_bounded_keys())


def test_the_bound_walk_finds_the_bounded_keys():
    keys = [k for k, _, _ in BOUNDED]
    assert len(keys) > 60 and len(set(keys)) == len(keys)
    for key in (
        "organism.layers",
        "seed",
        "graphs.desired_logit_prob",
        "corpus.tasks.add.min_digits",
        "interventions.ablation_sizes",
        "train.lr",
    ):
        assert key in keys


def _range_error(data) -> str | None:
    """The out-of-range message parse_params gives for `data`, None when it passes the scalar checks
    (a cross-check of the section may still refuse the whole; that is not a range error)."""
    try:
        parse_params(data)
    except ConfigError as exc:
        return str(exc) if "is out of range" in str(exc) else None
    return None


@pytest.mark.parametrize("key, meta, tp", BOUNDED, ids=[k for k, _, _ in BOUNDED])
def test_scalar_bounds_are_inclusive_or_exclusive_as_declared(key, meta, tp):
    """`ge`/`le` accept the bound itself and refuse the next value beyond it; `gt`/`lt` refuse the bound."""
    import typing

    is_list = typing.get_origin(tp) in (list, tuple)
    item_tp = typing.get_args(tp)[0] if is_list else tp
    integer = item_tp is int
    step = 1 if integer else 1e-6
    for bound_key, word, outward in (("ge", ">=", -1), ("gt", ">", -1), ("le", "<=", +1), ("lt", "<", +1)):
        if bound_key not in meta:
            continue
        bound = meta[bound_key]
        at = int(bound) if integer else float(bound)
        beyond = at + outward * step
        wrap = (lambda v: [v]) if is_list else (lambda v: v)
        where = f"{key}[0]" if is_list else key
        expected_beyond = f"{where}: {beyond!r} is out of range; must be {word} {bound}"
        assert _range_error(_set({}, key, wrap(beyond))) == expected_beyond
        if bound_key in ("ge", "le"):
            assert _range_error(_set({}, key, wrap(at))) is None, f"{key} = {at!r} must be allowed ({word} {bound})"
        else:
            assert _range_error(_set({}, key, wrap(at))) == f"{where}: {at!r} is out of range; must be {word} {bound}"


def test_bounds_refuse_non_numbers_before_comparing():
    assert _error(_set({}, "organism.layers", "4")).startswith("organism.layers: expected an integer")


@pytest.mark.parametrize(
    "ok, bad, message",
    [
        # train.k <= organism.hidden x train.expansion_factor when num_latents is 0 (64 x 1 = 64)
        (
            {"train": {"expansion_factor": 1, "k": 64}},
            {"train": {"expansion_factor": 1, "k": 65}},
            "train.k (65) must be <= the number of latents (organism.hidden x train.expansion_factor = 64)",
        ),
        # explain_examples + test_activating <= top_n + quantile_bins x per_quantile (20 + 10 x 5 = 70)
        (
            {"labels": {"explain_examples": 50, "test_activating": 20}},
            {"labels": {"explain_examples": 51, "test_activating": 20}},
            "labels.explain_examples + labels.test_activating (71) must be <= the activating examples collected per "
            "feature (activations.top_n + quantile_bins x per_quantile = 70)",
        ),
        # test_activating <= quantile_bins x per_quantile (50)
        (
            {"labels": {"explain_examples": 20, "test_activating": 50}},
            {"labels": {"explain_examples": 19, "test_activating": 51}},
            "labels.test_activating (51) must be <= activations.quantile_bins x per_quantile (50): test examples come "
            "from the quantile sample",
        ),
        # test_non_activating <= activations.non_activating (60)
        (
            {"labels": {"test_non_activating": 60}},
            {"labels": {"test_non_activating": 61}},
            "labels.test_non_activating (61) must be <= activations.non_activating (60)",
        ),
        # min_activating <= examples collected per feature (70)
        (
            {"labels": {"min_activating": 70}},
            {"labels": {"min_activating": 71}},
            "labels.min_activating (71) must be <= 70 (examples collected per feature)",
        ),
        # tokens.ctx_len <= organism.max_positions
        (
            {"tokens": {"ctx_len": 256}},
            {"tokens": {"ctx_len": 257}},
            "tokens.ctx_len (257) exceeds organism.max_positions (256)",
        ),
        # graphs.models must have transcoders (be in train.models)
        (
            {"train": {"models": ["reasoner"]}, "graphs": {"models": ["reasoner"]}},
            {"train": {"models": ["reasoner"]}, "graphs": {"models": ["reasoner", "base"]}},
            "graphs.models: base has no transcoders; add it to train.models (now ['reasoner']) or remove it from "
            "graphs.models",
        ),
        # clusters.model must have transcoders
        (
            {"train": {"models": ["reasoner"]}, "graphs": {"models": ["reasoner"]}},
            {"train": {"models": ["base"]}, "graphs": {"models": ["base"]}},
            "clusters.model: 'reasoner' has no transcoders; allowed: train.models = ['base']",
        ),
        # interventions.model must be clusters.model
        (
            {"clusters": {"model": "reasoner"}},
            {"clusters": {"model": "base"}},
            "interventions.model: 'reasoner' must be clusters.model ('base'): the features are ranked on the "
            "clusters' step profiles",
        ),
        # compare.null_model must be one of motifs.nulls
        (
            {"motifs": {"nulls": ["configuration"]}, "compare": {"null_model": "configuration"}},
            {"motifs": {"nulls": ["configuration"]}},
            "compare.null_model: 'layer_configuration' is not computed; allowed: motifs.nulls = ['configuration']",
        ),
        # layer groups end inside the organism (layers 0..3)
        (
            {"train": {"layer_groups": ["0-1", "3"]}},
            {"train": {"layer_groups": ["0-1", "4"]}},
            "train.layer_groups[1]: '4' names layers beyond the organism's 4 (organism.layers; layers 0..3)",
        ),
        # train.k <= train.num_latents when given
        (
            {"train": {"num_latents": 16, "k": 16}},
            {"train": {"num_latents": 16, "k": 17}},
            "train.k (17) must be <= train.num_latents (16)",
        ),
    ],
)
def test_cross_checks_allow_the_edge_and_refuse_one_beyond(ok, bad, message):
    parse_params(ok)
    assert _error(bad) == message


def test_cross_checks_apply_to_the_organism_only_where_they_say():
    # the latents bound uses the organism's width only when num_latents is 0 and the profile is the organism
    parse_params({"train": {"expansion_factor": 1, "k": 65, "num_latents": 128}})
    real = merge_override(REAL_CONFIG)
    parse_params(_set(_set(real, "train.k", 65), "train.expansion_factor", 1))
    parse_params(_set(real, "tokens.ctx_len", 4096))
    parse_params(_set(real, "train.layer_groups", ["0-1", "9"]))


@pytest.mark.parametrize(
    "data, message",
    [
        ({"train": {"models": []}}, "train.models: at least one of reasoner, base is required"),
        ({"train": {"layer_groups": []}}, "train.layer_groups: at least one group is required (e.g. 'all')"),
        ({"train": {"layer_groups": ["0", "x1"]}}, "train.layer_groups[1]: 'x1' is not 'all', 'N' or 'A-B'"),
        ({"train": {"layer_groups": ["3-1"]}}, "train.layer_groups[0]: '3-1' has start > end"),
        ({"train": {"layer_groups": ["all", "1"]}}, "train.layer_groups: 'all' cannot be combined with other groups"),
        ({"train": {"source": "pull"}}, "train.pull.repos: no repo for reasoner, base (train.source is pull)"),
        (
            {"train": {"source": "pull", "pull": {"repos": {"reasoner": "o/r", "base": "o/b"}}}},
            "train.pull.revision: pin a commit sha or tag when train.source is pull",
        ),
        ({"graphs": {"models": []}}, "graphs.models: at least one of reasoner, base is required"),
        ({"graphs": {"models": ["base", "base"]}}, "graphs.models: ['base', 'base'] lists a model twice"),
        ({"graphs": {"think_anchor": ""}}, "graphs.think_anchor: must not be empty"),
        ({"graphs": {"answer_anchor": ""}}, "graphs.answer_anchor: must not be empty"),
        ({"clusters": {"k_min": 5, "k_max": 4}}, "clusters.k_min (5) must be <= clusters.k_max (4)"),
        (
            {"interventions": {"contrast_step_type": "column_sum_carry"}},
            "interventions.contrast_step_type must differ from interventions.target_step_type ('column_sum_carry')",
        ),
        (
            {"train": {"models": ["reasoner"]}},
            "graphs.models: base has no transcoders; add it to train.models (now ['reasoner']) or remove it from "
            "graphs.models",
        ),
        ({"model": {"device": "tpu"}}, "model.device: 'tpu' is not allowed; allowed: auto, cpu, cuda"),
    ],
)
def test_each_check_says_exactly_what_is_wrong(data, message):
    assert _error(data) == message


@pytest.mark.parametrize("ref", ["graphs/x.yaml", "/abs/x.json", "../x.json", "data/../../x.json", "data\\x.json"])
def test_reference_graphs_must_be_relative_json_inside_the_project(ref):
    assert _error({"motifs": {"reference_graphs": ["data/ok.json", ref]}}) == (
        f"motifs.reference_graphs[1]: {ref!r} must be a relative path to a .json file inside the project "
        "(no '..', not absolute)"
    )


def test_equal_bounds_of_cross_field_checks_are_allowed():
    parse_params({"corpus": {"tasks": {"add": {"min_digits": 3, "max_digits": 3}}}})
    parse_params({"organism": {"reasoner": {"steps": 20, "warmup_steps": 20}}})
    parse_params({"clusters": {"k_min": 4, "k_max": 4}})
    parse_params({"train": {"layer_groups": ["2-2", "0-1"]}})
    parse_params({"organism": {"layers": 1}, "train": {"layer_groups": ["all"]}})  # 'all' names no layer number


def test_step_types_name_the_key_and_the_profile():
    msg = _error(_set(merge_override(REAL_CONFIG), "interventions.contrast_step_type", "column_sum"))
    assert msg.startswith(
        "interventions.contrast_step_type: 'column_sum' is not a step type of profile 'r1-distill-qwen-1.5b'; allowed: "
    )
    assert ", " in msg


def test_checks_reach_sections_given_as_objects():
    """Sections passed as parameter objects (not mappings) are still checked, with their full key path."""
    with pytest.raises(
        ConfigError, match=r"^corpus\.tasks\.add\.min_digits \(4\) must be <= corpus\.tasks\.add\.max_digits \(2\)$"
    ):
        parse_params({"corpus": {"tasks": {"add": TaskParams(min_digits=4, max_digits=2)}}})
