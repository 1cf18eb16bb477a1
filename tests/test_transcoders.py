"""Transcoder layouts, checks, splicing and the spliced evaluation, on tiny real coders."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from r1interp.errors import ArtifactError, ConfigError
from r1interp.transcoders import group_layers, load_coders
from r1interp.transcoders.evaluate import evaluate
from r1interp.transcoders.layout import (
    check_sparsify_coder,
    read_circuit_tracer_config,
    write_circuit_tracer_config,
    write_circuit_tracer_layer,
)
from r1interp.transcoders.splice import coder_forward, mlp_modules, splice


@pytest.fixture(scope="module")
def tiny_model(tokenizer, tiny_model_kwargs):
    from r1interp.organism.train import build_model

    torch.manual_seed(0)
    return build_model(len(tokenizer), **tiny_model_kwargs).eval()


def _coder(d: int, latents: int, k: int, seed: int = 0):
    from sparsify import SparseCoder, SparseCoderConfig

    torch.manual_seed(seed)
    coder = SparseCoder(d, SparseCoderConfig(num_latents=latents, k=k, transcode=True, skip_connection=True))
    with torch.no_grad():
        for p in coder.parameters():
            p.normal_(0, 0.1)
    return coder.eval()


@pytest.fixture()
def saved_coders(tmp_path, tiny_model):
    d = tiny_model.config.hidden_size
    root = tmp_path / "sparsify"
    coders = {}
    for layer in range(tiny_model.config.num_hidden_layers):
        coders[layer] = _coder(d, 64, 4, seed=layer)
        coders[layer].save_to_disk(root / f"layers.{layer}.mlp")
    return root, coders


def test_group_layers():
    assert group_layers("all", 4) == [0, 1, 2, 3]
    assert group_layers("2", 4) == [2]
    assert group_layers("1-3", 4) == [1, 2, 3]
    with pytest.raises(ConfigError, match=r"layers \[4, 5\] outside the model \(layers 0..3\)"):
        group_layers("3-5", 4)


def test_check_sparsify_coder_accepts_and_describes(saved_coders, tiny_model):
    root, _ = saved_coders
    info = check_sparsify_coder(root / "layers.1.mlp", d_model=tiny_model.config.hidden_size)
    assert (info.layer, info.num_latents, info.k, info.skip) == (1, 64, 4, True)


def test_check_rejects_width_mismatch(saved_coders):
    root, _ = saved_coders
    with pytest.raises(ArtifactError, match="d_in is 32 but the model's hidden size is 48"):
        check_sparsify_coder(root / "layers.0.mlp", d_model=48)


def test_check_rejects_truncated_weights(saved_coders):
    root, _ = saved_coders
    f = root / "layers.0.mlp" / "sae.safetensors"
    f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    with pytest.raises(ArtifactError, match=r"sae.safetensors: unreadable safetensors file"):
        check_sparsify_coder(root / "layers.0.mlp")


def test_check_rejects_wrong_shape_nan_and_k(saved_coders):
    root, _ = saved_coders
    f = root / "layers.0.mlp" / "sae.safetensors"
    tensors = load_file(f)
    bad = dict(tensors, W_skip=torch.zeros(3, 3))
    save_file(bad, f)
    with pytest.raises(ArtifactError, match=r"W_skip has shape \(3, 3\), expected \(32, 32\)"):
        check_sparsify_coder(root / "layers.0.mlp")
    tensors["W_dec"][0, 0] = float("nan")
    save_file(tensors, f)
    with pytest.raises(ArtifactError, match="W_dec contains NaN"):
        check_sparsify_coder(root / "layers.0.mlp")
    tensors["W_dec"][0, 0] = 0.0
    save_file(tensors, f)
    cfg = json.loads((root / "layers.0.mlp" / "cfg.json").read_text())
    (root / "layers.0.mlp" / "cfg.json").write_text(json.dumps({**cfg, "k": 65}))
    with pytest.raises(ArtifactError, match=r"k=65 must be within 1..64"):
        check_sparsify_coder(root / "layers.0.mlp")
    # a cfg that would make sparsify build a different width than the tensors have (num_latents 0 means
    # expansion_factor x d_in, default 32 x 32 = 1024 here) fails here, not inside load_state_dict
    (root / "layers.0.mlp" / "cfg.json").write_text(json.dumps({**cfg, "num_latents": 0, "expansion_factor": 32}))
    with pytest.raises(ArtifactError, match="sizes the coder at 1024 latents .* the encoder has 64 rows"):
        check_sparsify_coder(root / "layers.0.mlp")
    (root / "layers.0.mlp" / "cfg.json").write_text(json.dumps({**cfg, "num_latents": 0, "expansion_factor": 2}))
    assert check_sparsify_coder(root / "layers.0.mlp").num_latents == 64


def test_circuit_tracer_layout_is_a_rename(saved_coders, tmp_path):
    root, _ = saved_coders
    out = tmp_path / "ct"
    write_circuit_tracer_layer(root / "layers.0.mlp", out / "layer_0.safetensors")
    write_circuit_tracer_layer(root / "layers.1.mlp", out / "layer_1.safetensors")
    write_circuit_tracer_config(out, {0: "layer_0.safetensors", 1: "layer_1.safetensors"}, scan="test", k=4)
    src = load_file(root / "layers.0.mlp" / "sae.safetensors")
    dst = load_file(out / "layer_0.safetensors")
    assert set(dst) == {"W_enc", "b_enc", "W_dec", "b_dec", "W_skip"}
    assert torch.equal(dst["W_enc"], src["encoder.weight"]) and torch.equal(dst["b_enc"], src["encoder.bias"])
    config = read_circuit_tracer_config(out)
    assert config["model_kind"] == "transcoder_set"
    assert (config["feature_input_hook"], config["feature_output_hook"]) == ("mlp.hook_in", "mlp.hook_out")
    assert config["transcoders"] == [str((out / f"layer_{i}.safetensors").resolve()) for i in (0, 1)]
    assert yaml.safe_load((out / "config.yaml").read_text())["transcoders"][0] == "layer_0.safetensors"


def test_load_coders_from_disk_matches_saved(saved_coders):
    root, coders = saved_coders
    loaded = load_coders(root)
    x = torch.randn(5, coders[0].d_in)
    for layer, coder in coders.items():
        torch.testing.assert_close(coder_forward(loaded[layer], x)[0], coder_forward(coder, x)[0])
    with pytest.raises(ArtifactError, match=r"no transcoder for layers \[7\]"):
        load_coders(root, layers=[7])


def test_splice_replaces_mlp_output_and_restores(tiny_model, saved_coders):
    _, coders = saved_coders
    ids = torch.randint(0, tiny_model.config.vocab_size, (2, 12))
    clean = tiny_model(ids).logits
    record = {}
    with splice(tiny_model, {0: coders[0]}, record):
        spliced = tiny_model(ids).logits
    x, y, y_hat, acts, idx = record[0]
    torch.testing.assert_close(y_hat, coder_forward(coders[0], x)[0])
    assert acts.shape[-1] == 4 and not torch.allclose(clean, spliced)
    torch.testing.assert_close(tiny_model(ids).logits, clean)  # hooks removed
    with splice(tiny_model, {0: "zero", 1: "zero"}, record):
        tiny_model(ids)
    assert torch.count_nonzero(record[1][2]) == 0


def test_evaluate_identity_coder_has_no_ce_increase(tiny_model):
    """A 'coder' that reproduces the MLP exactly must score CE increase 0, KL 0, FVU 0."""

    class Exact:
        num_latents = 8

        class cfg:  # noqa: N801 - mimics sparsify's coder.cfg
            k = 1

        def __init__(self, mlp):
            self.mlp = mlp
            self.W_skip = None
            self.dtype = torch.float32

        def encode(self, x):
            n = x.shape[0]
            self._x = x
            return torch.ones(n, 1), torch.zeros(n, 1, dtype=torch.long), None

        def decode(self, acts, idx):
            return self.mlp.forward(self._x)  # forward(), not __call__: no hooks, no recursion

    mlps = mlp_modules(tiny_model)
    exact = {i: Exact(m) for i, m in enumerate(mlps)}
    ids = torch.randint(0, tiny_model.config.vocab_size, (4, 16))
    batch = {"input_ids": ids, "in_think": torch.rand(4, 16) > 0.5, "in_answer": torch.rand(4, 16) > 0.7}
    result = evaluate(tiny_model, exact, [batch])
    for entry in result["layers"].values():
        assert abs(entry["all"]["ce_increase"]) < 1e-5 and entry["all"]["kl"] < 1e-6
        assert entry["fvu"] < 1e-6 and entry["l0"] == 1.0
        assert entry["all"]["frac_recovered_zero"] == pytest.approx(1.0, abs=1e-4)
    assert abs(result["all_layers"]["all"]["ce_increase"]) < 1e-5


def test_evaluate_random_coders_hurt(tiny_model, saved_coders):
    _, coders = saved_coders
    ids = torch.randint(0, tiny_model.config.vocab_size, (4, 16))
    batch = {
        "input_ids": ids,
        "in_think": torch.zeros(4, 16, dtype=torch.bool),
        "in_answer": torch.ones(4, 16, dtype=torch.bool),
    }
    result = evaluate(tiny_model, coders, [batch])
    assert result["layers"]["0"]["fvu"] > 0.1
    assert result["layers"]["0"]["all"]["kl"] > 0
    assert result["layers"]["0"]["think"]["tokens"] == 0 and result["layers"]["0"]["answer"]["tokens"] == 4 * 15
    assert 0 <= result["layers"]["0"]["dead_pct"] <= 100
    assert result["summary"]["max_dead_pct"] >= result["layers"]["0"]["dead_pct"]
