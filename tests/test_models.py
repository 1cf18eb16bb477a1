"""Model profiles, architecture description and safe local loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from r1interp.errors import ArtifactError, ConfigError
from r1interp.models import (
    PROFILES,
    ROLES,
    Architecture,
    describe,
    load_model,
    load_role,
    model_spec,
    read_architecture,
    resolve_device,
)
from r1interp.organism.train import build_model


def _arch(n_layers: int) -> Architecture:
    return Architecture("qwen2", n_layers, 64, 256, 4, 2, 384, 256)


# ------------------------------------------------------------------ Architecture


@pytest.mark.parametrize(
    "n_layers, expected",
    [(28, [2, 14, 26]), (4, [0, 2, 3]), (1, [0, 0, 0]), (2, [0, 1, 1])],
)
def test_layer_at_fraction(n_layers, expected):
    arch = _arch(n_layers)
    assert [arch.layer_at_fraction(f) for f in (0.07, 0.5, 0.93)] == expected
    assert arch.layer_at_fraction(0.0) == 0
    assert arch.layer_at_fraction(1.0) == n_layers - 1
    assert arch.layers_at_fractions([0.93, 0.07, 0.5, 0.5]) == sorted(set(expected))


@pytest.mark.parametrize("fraction", [-0.01, 1.01, 2.0])
def test_layer_fraction_out_of_range(fraction):
    with pytest.raises(ConfigError, match="within \\[0, 1\\]"):
        _arch(4).layer_at_fraction(fraction)


def test_mlp_hookpoints():
    arch = _arch(3)
    assert arch.mlp_hookpoints == ["layers.0.mlp", "layers.1.mlp", "layers.2.mlp"]
    assert arch.mlp_hookpoint(2) == "layers.2.mlp"
    for bad in (-1, 3, 10):
        with pytest.raises(ConfigError, match=r"layers 0\.\.2"):
            arch.mlp_hookpoint(bad)
        with pytest.raises(ConfigError):
            arch.check_layer(bad)


# ------------------------------------------------------------------ profiles


def test_model_spec_profiles():
    for profile in PROFILES:
        for role in ROLES:
            spec = model_spec(profile, role)
            assert spec.role == role
            assert role in str(spec.local_dir)
    org = model_spec("organism", "reasoner")
    assert org.repo_id is None
    assert org.rebuild_hint == "run `dvc repro organism@reasoner`"
    real = model_spec("r1-distill-qwen-1.5b", "reasoner")
    assert real.repo_id == "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
    assert len(real.revision) == 40
    assert real.repo_id in real.rebuild_hint and real.revision in real.rebuild_hint
    assert model_spec("r1-distill-qwen-1.5b", "base").repo_id.startswith("Qwen/")
    # Both profiles of the config are known here.
    from r1interp.config import PROFILES as CONFIG_PROFILES

    assert set(CONFIG_PROFILES) == set(PROFILES)


def test_model_spec_unknown():
    with pytest.raises(ConfigError, match="model.profile: 'gpt2' is not allowed") as info:
        model_spec("gpt2", "reasoner")
    assert "organism" in str(info.value) and "r1-distill-qwen-1.5b" in str(info.value)
    with pytest.raises(ConfigError, match="role 'teacher'"):
        model_spec("organism", "teacher")


def test_resolve_device():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="model.device"):
            resolve_device("cuda")


# ------------------------------------------------------------------ loading


def _save(model, tokenizer, path: Path, **kw) -> Path:
    model.save_pretrained(path, **kw)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def model_dir(tokenizer, tiny_model_kwargs, tmp_path_factory):
    model = build_model(len(tokenizer), **tiny_model_kwargs)
    return _save(model, tokenizer, tmp_path_factory.mktemp("models") / "organism", safe_serialization=True)


def test_load_model(model_dir, tokenizer):
    loaded = load_model(model_dir)
    arch = loaded.arch
    assert (arch.model_type, arch.n_layers, arch.d_model, arch.d_mlp) == ("qwen2", 2, 32, 64)
    assert (arch.n_heads, arch.n_kv_heads, arch.vocab_size, arch.max_positions) == (4, 2, len(tokenizer), 64)
    assert arch.mlp_hookpoints == ["layers.0.mlp", "layers.1.mlp"]
    assert loaded.path == model_dir
    assert not loaded.model.training
    assert next(loaded.model.parameters()).dtype == torch.float32
    text = "What is 12+34?"
    assert loaded.tokenizer(text)["input_ids"] == tokenizer(text)["input_ids"]
    with torch.no_grad():
        ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
        logits = loaded.model(input_ids=ids).logits
    assert logits.shape == (1, ids.shape[1], len(tokenizer))
    # The model module really has the hookpoints the architecture names.
    names = {n for n, _ in loaded.model.model.named_modules()}
    assert set(arch.mlp_hookpoints) <= names


def test_read_architecture_and_describe(model_dir):
    arch = read_architecture(model_dir)
    assert arch == load_model(model_dir).arch
    d = describe(model_dir)
    assert d["path"] == str(model_dir) and d["n_layers"] == 2 and d["d_model"] == 32
    json.dumps(d)


def test_load_role(model_dir, tmp_path):
    target = tmp_path / "models" / "lm" / "reasoner"
    target.parent.mkdir(parents=True)
    target.symlink_to(model_dir, target_is_directory=True)
    assert load_role("organism", "reasoner", root=tmp_path).arch.n_layers == 2
    with pytest.raises(ArtifactError) as info:
        load_role("organism", "base", root=tmp_path)
    assert "models/lm/base" in str(info.value)
    assert info.value.hint == "run `dvc repro organism@base`"


def test_missing_model_dir(tmp_path):
    path = tmp_path / "nope"
    with pytest.raises(ArtifactError, match="does not exist") as info:
        load_model(path, hint="rebuild it")
    assert str(path) in str(info.value)
    assert info.value.hint == "rebuild it"


def test_dir_without_config(tmp_path, tokenizer):
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(ArtifactError, match="no config.json") as info:
        load_model(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_dir_without_safetensors(tmp_path, tokenizer, tiny_model_kwargs):
    model = build_model(len(tokenizer), **tiny_model_kwargs)
    path = _save(model, tokenizer, tmp_path / "bin", safe_serialization=False)
    assert not list(path.glob("*.safetensors"))
    with pytest.raises(ArtifactError, match="safetensors") as info:
        load_model(path)
    assert str(path) in str(info.value)
    with pytest.raises(ArtifactError):
        read_architecture(path)


def test_dir_without_tokenizer(tmp_path, tokenizer, tiny_model_kwargs):
    model = build_model(len(tokenizer), **tiny_model_kwargs)
    model.save_pretrained(tmp_path)
    with pytest.raises(ArtifactError, match="tokenizer_config.json") as info:
        load_model(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_model_vocab_smaller_than_tokenizer(tmp_path, tokenizer, tiny_model_kwargs):
    model = build_model(len(tokenizer) - 10, **tiny_model_kwargs)
    path = _save(model, tokenizer, tmp_path / "small-vocab")
    with pytest.raises(ArtifactError) as info:
        load_model(path)
    msg = str(info.value)
    assert str(path) in msg
    assert str(len(tokenizer)) in msg and str(len(tokenizer) - 10) in msg
