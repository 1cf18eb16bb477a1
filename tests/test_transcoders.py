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
from r1interp.transcoders.splice import coder_forward, dense_features, mlp_modules, splice


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


def test_dense_features_hold_exactly_the_topk_and_decode_to_the_coder_output():
    coder = _coder(8, 32, 3)
    x = torch.randn(2, 5, 8)
    dense = dense_features(coder, x)
    assert dense.shape == (2, 5, 32)
    assert ((dense != 0).sum(-1) <= 3).all() and ((dense != 0).sum(-1) >= 1).all()
    acts, top, _ = coder.encode(x.reshape(-1, 8))
    flat = dense.reshape(-1, 32)
    assert torch.equal(flat.gather(1, top), acts)  # each TopK feature at its own activation
    out, _, _ = coder_forward(coder, x)
    decoded = dense @ coder.W_dec + coder.b_dec + x @ coder.W_skip.mT  # the dense form of the coder's output
    torch.testing.assert_close(decoded, out, rtol=1e-5, atol=1e-5)


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


def _reference_evaluate(model, coders, batches, keep_ids):
    """The spliced evaluation recomputed from its definition, one condition at a time, with plain hooks."""
    import torch.nn.functional as F

    mlps = mlp_modules(model)
    layers = sorted(coders)
    outs = {}
    hooks = [
        m.register_forward_hook(lambda mod, i, o, layer=layer: outs.__setitem__(layer, o))
        for layer, m in enumerate(mlps)
    ]
    with torch.no_grad():
        total = {layer: 0 for layer in layers}
        count = 0
        for b in batches:
            model(b["input_ids"])
            for layer in layers:
                total[layer] = total[layer] + outs[layer].reshape(-1, outs[layer].shape[-1]).sum(0)
            count += b["input_ids"].numel()
    for h in hooks:
        h.remove()
    means = {layer: total[layer] / count for layer in layers}

    def run(ids, replace: dict, keep):
        def make(layer, how):
            def hook(mod, inputs, output):
                if how == "zero":
                    new = torch.zeros_like(output)
                elif how == "mean":
                    new = means[layer].expand_as(output)
                else:
                    new = coder_forward(coders[layer], inputs[0])[0]
                return torch.where(keep[..., None], output, new) if how == "coder" else new

            return hook

        hs = [mlps[layer].register_forward_hook(make(layer, how)) for layer, how in replace.items()]
        try:
            with torch.no_grad():
                return model(ids).logits
        finally:
            for h in hs:
                h.remove()

    def ce_kl(logits, ids, clean):
        logp = F.log_softmax(logits[:, :-1].float(), -1)
        ce = -logp.gather(-1, ids[:, 1:, None])[..., 0]
        kl = None if clean is None else (clean.exp() * (clean - logp)).sum(-1)
        return logp, ce, kl

    tags = [*layers, "all"]
    sums = {
        (kind, tag, span): [0.0, 0.0, 0]
        for kind in ("clean", "coder", "zero", "mean")
        for tag in tags
        for span in ("all", "completion", "think", "answer")
    }
    for b in batches:
        ids = b["input_ids"]
        keep = torch.isin(ids, torch.tensor(keep_ids))
        masks = {
            "all": ~keep[:, 1:],
            "think": b["in_think"][:, 1:],
            "answer": b["in_answer"][:, 1:],
            "completion": b["in_think"][:, 1:] | b["in_answer"][:, 1:],
        }
        clean_logp, clean_ce, _ = ce_kl(run(ids, {}, keep), ids, None)
        for tag in tags:
            for kind in ("clean", "coder", "zero", "mean"):
                if kind == "clean":
                    ce, kl = clean_ce, torch.zeros_like(clean_ce)
                else:
                    _, ce, kl = ce_kl(
                        run(ids, {layer: kind for layer in (layers if tag == "all" else [tag])}, keep), ids, clean_logp
                    )
                for span, mask in masks.items():
                    acc = sums[(kind, tag, span)]
                    acc[0] += float(ce[mask].sum())
                    acc[1] += float(kl[mask].sum())
                    acc[2] += int(mask.sum())
    return sums


def test_evaluate_matches_its_definition_per_span_with_kept_tokens(tiny_model, saved_coders):
    """Every CE / KL / recovered fraction and token count of every span, layer by layer and for all layers,
    against a recomputation from the definition: positions holding a kept token id keep the model's MLP output
    (coders only; the ablations replace everything), the 'all' span leaves out predictions of kept tokens,
    and ce_increase = spliced - clean (positive when the coder hurts)."""
    _, coders = saved_coders
    keep_ids = [0, 3]
    torch.manual_seed(1)
    batches = []
    for b in range(2):  # two batches: every statistic is a sum over batches
        ids = torch.randint(4, tiny_model.config.vocab_size, (3, 10))  # kept ids only where placed
        ids[:, 0] = 0
        ids[0, 4] = 3
        ids[1, 6] = 3
        think = torch.zeros(3, 10, dtype=torch.bool)
        if b == 0:
            think[0, 3] = True  # a span of one token: its mean is its own value
        answer = torch.zeros(3, 10, dtype=torch.bool)
        answer[:, 6:9] = True
        batches.append({"input_ids": ids, "in_think": think, "in_answer": answer})
    result = evaluate(tiny_model, coders, batches, keep_token_ids=keep_ids + [3])  # duplicates are harmless
    ref = _reference_evaluate(tiny_model, coders, batches, keep_ids)

    n_keep = sum(int(torch.isin(b["input_ids"], torch.tensor(keep_ids)).sum()) for b in batches)
    assert result["tokens"] == 60 and result["replaced_tokens"] == 60 - n_keep == 60 - 10
    for tag, entry in [
        *((str(layer), result["layers"][str(layer)]) for layer in coders),
        ("all", result["all_layers"]),
    ]:
        key = int(tag) if tag != "all" else "all"
        for span in ("all", "completion", "think", "answer"):
            clean_ce, _, n = ref[("clean", key, span)]
            coder_ce, coder_kl, _ = ref[("coder", key, span)]
            zero_ce = ref[("zero", key, span)][0]
            mean_ce = ref[("mean", key, span)][0]
            e = entry[span]
            assert (
                e["tokens"]
                == n
                == {"all": 2 * 3 * 9 - 2 * 2, "completion": 1 + 2 * 3 * 3, "think": 1, "answer": 2 * 3 * 3}[span]
            )
            assert e["ce_clean"] == pytest.approx(clean_ce / n, abs=2e-6)
            assert e["ce_spliced"] == pytest.approx(coder_ce / n, abs=2e-6)
            assert e["ce_increase"] == pytest.approx((coder_ce - clean_ce) / n, abs=4e-6)
            assert e["ce_increase"] == pytest.approx(e["ce_spliced"] - e["ce_clean"], abs=2e-6)
            assert e["kl"] == pytest.approx(coder_kl / n, abs=2e-6) and e["kl"] > 0
            assert e["ce_zero_ablation"] == pytest.approx(zero_ce / n, abs=2e-6)
            assert e["ce_mean_ablation"] == pytest.approx(mean_ce / n, abs=2e-6)
            assert e["frac_recovered_zero"] == pytest.approx((zero_ce - coder_ce) / (zero_ce - clean_ce), abs=1e-4)
            assert e["frac_recovered_mean"] == pytest.approx((mean_ce - coder_ce) / (mean_ce - clean_ce), abs=1e-4)
            for value in e.values():  # reported to 6 decimals, as floats
                assert isinstance(value, int) or (isinstance(value, float) and value == round(value, 6))
            assert all(isinstance(e[k], float) for k in e if k != "tokens")
    summary = result["summary"]
    per_layer = [result["layers"][str(layer)] for layer in sorted(coders)]
    assert summary["max_ce_increase_single"] == max(e["completion"]["ce_increase"] for e in per_layer)
    assert summary["ce_increase_all_layers"] == result["all_layers"]["completion"]["ce_increase"]
    assert summary["kl_all_layers"] == result["all_layers"]["completion"]["kl"]
    assert summary["mean_fvu"] == pytest.approx(sum(e["fvu"] for e in per_layer) / len(per_layer), abs=1e-6)
    assert summary["mean_l0"] == pytest.approx(sum(e["l0"] for e in per_layer) / len(per_layer), abs=1e-3)
    assert summary["max_dead_pct"] == max(e["dead_pct"] for e in per_layer)


def test_evaluate_coder_statistics_cover_the_replaced_positions(tiny_model, saved_coders):
    """FVU, L0 and dead % over the positions not holding a kept token, summed over batches."""
    _, coders = saved_coders
    keep_ids = [5]
    torch.manual_seed(2)
    batches = []
    for _ in range(2):
        ids = torch.randint(6, tiny_model.config.vocab_size, (2, 8))
        ids[:, 0] = 5
        batches.append(
            {
                "input_ids": ids,
                "in_think": torch.zeros(2, 8, dtype=torch.bool),
                "in_answer": torch.ones(2, 8, dtype=torch.bool),
            }
        )
    result = evaluate(tiny_model, coders, batches, keep_token_ids=keep_ids)
    mlps = mlp_modules(tiny_model)
    for layer, coder in coders.items():
        xs, ys = [], []

        def grab(mod, inputs, output, xs=xs, ys=ys):
            xs.append(inputs[0])
            ys.append(output)

        h = mlps[layer].register_forward_hook(grab)
        with torch.no_grad():
            for b in batches:
                tiny_model(b["input_ids"])
        h.remove()
        sel = torch.cat([~torch.isin(b["input_ids"], torch.tensor(keep_ids)).reshape(-1) for b in batches])
        x = torch.cat([t.reshape(-1, t.shape[-1]) for t in xs])[sel]
        y = torch.cat([t.reshape(-1, t.shape[-1]) for t in ys])[sel].double()
        with torch.no_grad():
            y_hat, acts, idx = coder_forward(coder, x)
        fvu = float((y - y_hat.double()).pow(2).sum() / (y - y.mean(0)).pow(2).sum())
        fired = torch.zeros(coder.num_latents, dtype=torch.bool)
        fired[idx[acts > 0]] = True
        e = result["layers"][str(layer)]
        assert len(y) == 2 * 2 * 7 == result["replaced_tokens"]
        assert e["fvu"] == pytest.approx(fvu, rel=1e-4)
        assert e["l0"] == pytest.approx(float((acts > 0).sum()) / len(y), abs=1e-3)
        assert e["dead_pct"] == pytest.approx(100.0 * float((~fired).float().mean()), abs=1e-3)
        assert (e["num_latents"], e["k"]) == (64, 4)
        assert e["all"]["tokens"] == 2 * 2 * 7  # predictions of the kept token are left out (none here after 0)
