"""Intervention primitives on a tiny real Qwen2 with real sparsify coders: ablation removes exactly the chosen
features' decoded output, steering adds a vector, weight edits project a span out and are undone, the
subspace fine-tune moves only its span; plus Wilson intervals, feature ranking and random controls."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from r1interp.organism import tasks
from r1interp.reasoning import benchmark, feature_sets, finetune
from r1interp.reasoning.interventions import (
    ablate,
    decoder_rows,
    edit_down_proj,
    feature_vector,
    orthonormal_basis,
    steer,
)
from r1interp.transcoders.splice import coder_forward, mlp_modules


@pytest.fixture()
def model_and_coders(tokenizer, tiny_model_kwargs):
    from sparsify import SparseCoder, SparseCoderConfig

    from r1interp.organism.train import build_model

    torch.manual_seed(0)
    model = build_model(len(tokenizer), **tiny_model_kwargs).eval()
    d = model.config.hidden_size
    coders = {
        layer: SparseCoder(d, SparseCoderConfig(num_latents=16, k=4, transcode=True, skip_connection=True)).eval()
        for layer in range(model.config.num_hidden_layers)
    }
    for coder in coders.values():  # sparsify starts a transcoder's decoder at zero: give it real directions
        torch.nn.init.normal_(coder.W_dec.data, std=0.2)
    return model, coders


def _ids(tokenizer, text="What is 47+85?"):
    return torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])


def _mlp_io(model, layer, ids):
    seen = {}
    mlp = mlp_modules(model)[layer]
    h = mlp.register_forward_hook(lambda _m, args, out: seen.update(x=args[0], y=out))
    with torch.no_grad():
        logits = model(ids).logits
    h.remove()
    return seen["x"], seen["y"], logits


def test_ablation_removes_exactly_the_chosen_features(model_and_coders, tokenizer):
    model, coders = model_and_coders
    ids = _ids(tokenizer)
    x, y, clean = _mlp_io(model, 1, ids)
    with torch.no_grad():
        _, acts, idx = coder_forward(coders[1], x[0])
    fired = sorted({int(i) for i in idx.flatten()})[:2]
    expected_removed = torch.zeros_like(y[0])
    for f in fired:
        a = (acts * (idx == f)).sum(-1)  # activation where the feature made the TopK
        expected_removed += a[:, None] * coders[1].W_dec[f]
    with ablate(model, coders, {1: fired}):
        _, y_abl, ablated = _mlp_io(model, 1, ids)
    assert torch.allclose(y[0] - y_abl[0], expected_removed, atol=1e-5)
    assert expected_removed.abs().max() > 1e-4  # the test would pass vacuously on silent features
    assert not torch.allclose(clean, ablated)
    # hooks are gone afterwards: same logits as before
    assert torch.allclose(_mlp_io(model, 1, ids)[2], clean)
    # an empty set changes nothing
    with ablate(model, coders, {1: []}):
        assert torch.allclose(_mlp_io(model, 1, ids)[2], clean)


def test_steering_adds_alpha_times_the_vector_at_every_position(model_and_coders, tokenizer):
    model, coders = model_and_coders
    ids = _ids(tokenizer)
    _, y, _ = _mlp_io(model, 0, ids)
    vec = feature_vector(coders, {0: {3: 2.0, 5: -1.0}})[0]
    assert torch.allclose(vec, 2 * coders[0].W_dec[3] - coders[0].W_dec[5])
    with steer(model, {0: vec}, 1.5):
        _, y_s, _ = _mlp_io(model, 0, ids)
    assert torch.allclose(y_s - y, (1.5 * vec).expand_as(y), atol=1e-5)


def test_weight_edit_projects_the_span_out_and_restores(model_and_coders, tokenizer):
    model, coders = model_and_coders
    ids = _ids(tokenizer)
    weight = mlp_modules(model)[1].down_proj.weight
    before = weight.detach().clone()
    dirs = decoder_rows(coders, {1: [0, 1, 2]})
    q = orthonormal_basis(dirs[1])
    assert q.shape == (model.config.hidden_size, 3) and torch.allclose(q.T @ q, torch.eye(3), atol=1e-5)
    with edit_down_proj(model, dirs, 0.0):
        _, y, _ = _mlp_io(model, 1, ids)
        # the MLP can no longer write anything along the features' decoder directions
        assert (y[0] @ dirs[1].T).abs().max() < 1e-4
    with edit_down_proj(model, dirs, 2.0):
        assert torch.allclose(q.T @ weight, 2 * q.T @ before, atol=1e-5)
    assert torch.equal(weight, before)


def test_subspace_finetune_moves_only_its_span_and_lowers_the_loss(model_and_coders, tokenizer):
    model, coders = model_and_coders
    items = [benchmark._item(tasks.make_problem("add", a, b)) for a, b in ((12, 34), (56, 78), (91, 23), (45, 67))]
    before = benchmark.gold_nll(model, tokenizer, items, batch_size=4)
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    dirs = decoder_rows(coders, {1: [0, 1, 2, 3]})
    deltas, losses = finetune.subspace_finetune(model, tokenizer, dirs, items, steps=30, lr=5e-2, batch_size=4, seed=0)
    assert all(torch.equal(p, weights[n]) for n, p in model.named_parameters())  # training never touched the model
    assert set(deltas) == {1} and np.linalg.matrix_rank(deltas[1].numpy(), tol=1e-6) <= 4
    q = orthonormal_basis(dirs[1])
    assert torch.allclose(q @ (q.T @ deltas[1]), deltas[1], atol=1e-5)  # inside the span
    assert losses[-1] < losses[0]
    with finetune.applied(model, deltas):
        after = benchmark.gold_nll(model, tokenizer, items, batch_size=4)
    assert after < before
    assert all(torch.equal(p, weights[n]) for n, p in model.named_parameters())
    assert all(p.requires_grad for p in model.parameters())


def test_wilson_interval():
    lo, hi = benchmark.wilson(0, 100)
    assert lo == 0 and 0.03 < hi < 0.04  # the normal approximation would give [0, 0]
    lo, hi = benchmark.wilson(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    assert benchmark.wilson(100, 100)[1] == 1.0 and np.isnan(benchmark.wilson(0, 0)[0])


def test_organism_groups_split_carry_and_generate_ood():
    rows = []
    for task, pairs in (("add", [(47, 85), (12, 34), (99, 1)]), ("mul", [(23, 4), (11, 2)])):
        for a, b in pairs:
            p = tasks.make_problem(task, a, b)
            rows.append({"id": f"{task}-{a}-{b}", "task": task, "split": "heldout", "has_carry": p.has_carry})
    groups = benchmark.organism_groups(pd.DataFrame(rows), per_group=10, ood_digits=4, seed=0)
    assert {i.answer for i in groups["add_carry"]} == {132, 100} and [i.answer for i in groups["add_no_carry"]] == [46]
    assert [i.answer for i in groups["mul_carry"]] == [92] and [i.answer for i in groups["mul_no_carry"]] == [22]
    ood = groups["ood_add"]
    assert len(ood) == 10 and all(i.question.startswith("What is ") for i in ood)
    a, b = ood[0].question[len("What is ") : -1].split("+")
    assert len(a) == len(b) == 4 and int(a) + int(b) == ood[0].answer
    assert groups["ood_add"] == benchmark.organism_groups(pd.DataFrame(rows), 10, 4, 0)["ood_add"]  # deterministic
    assert "</think>" in ood[0].completion and ood[0].completion.endswith("<｜end▁of▁sentence｜>")


def test_ranked_features_pick_the_planted_carry_feature_and_controls_match_layers():
    rng = np.random.default_rng(0)
    types = ["column_sum"] * 40 + ["column_sum_carry"] * 40 + ["final_carry"] * 20
    steps = pd.DataFrame({"true_type": types, "cluster_kmeans": [0] * 40 + [1] * 20 + [2] * 20 + [3] * 20})
    index = [(layer, f) for layer in range(2) for f in range(10)]
    profiles = rng.random((100, 20)) * 0.1
    profiles[40:80, 13] += 2.0  # layer 1, feature 3 fires on carry steps
    profiles[:, 7] = 0.0  # dead
    ranked, info = feature_sets.ranked_features(steps, profiles, index, "column_sum_carry", "column_sum")
    assert info["target_clusters"] == [1, 2] and info["contrast_clusters"] == [0]
    assert tuple(ranked.iloc[0][["layer", "feature"]]) == (1, 3)
    chosen = feature_sets.as_sets(ranked.head(5))
    alive = feature_sets.alive_features(profiles, index)
    assert 7 not in alive[0]
    control = feature_sets.random_matched(chosen, alive, np.random.default_rng(1))
    assert {l: len(f) for l, f in control.items()} == {l: len(f) for l, f in chosen.items()}
    assert all(not set(control[l]) & set(chosen[l]) for l in chosen)
    with pytest.raises(Exception, match="no step has the true type 'column_product'"):
        feature_sets.ranked_features(steps, profiles, index, "column_product", "column_sum")
    # no cluster is mostly carry steps: the one with the largest share of them stands in (and clashes with sums)
    merged = steps.assign(cluster_kmeans=[0] * 70 + [1] * 30)
    assert feature_sets.clusters_of_type(merged, "column_sum_carry") == [0]
    with pytest.raises(Exception, match="fall into the same clusters"):
        feature_sets.ranked_features(steps.assign(cluster_kmeans=0), profiles, index, "column_sum_carry", "column_sum")
