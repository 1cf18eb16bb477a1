"""Reasoning steps: segmentation against token offsets, profiles, clustering on planted structure,
k selection, enrichment and transitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from r1interp.corpus import full_text
from r1interp.organism import tasks
from r1interp.reasoning import clustering, taxonomy
from r1interp.reasoning.steps import split_steps, step_profiles, step_spans


def test_split_steps_lines_and_sentences():
    body = "\nones: 7+5=12, write 2, carry 1.\ntens: 4+8+1=13. Then write 3!\n\n"
    lines = [body[a:b] for a, b in split_steps(body, "line")]
    assert lines == ["ones: 7+5=12, write 2, carry 1.", "tens: 4+8+1=13. Then write 3!"]
    sentences = [body[a:b] for a, b in split_steps(body, "sentence")]
    assert sentences == ["ones: 7+5=12, write 2, carry 1.", "tens: 4+8+1=13.", "Then write 3!"]


def test_step_spans_cover_each_line_of_the_trace(tokenizer):
    p = tasks.make_problem("add", 47, 85)
    text = full_text(p.prompt, p.think, p.answer_text)
    ids, steps = step_spans(tokenizer, "x", text)
    lines = p.think.split("\n")
    assert [s.text for s in steps] == lines and len(steps) == len(p.step_types)
    for step, line in zip(steps, lines, strict=True):
        decoded = tokenizer.decode(ids[step.token_start : step.token_end]).strip()
        assert decoded.startswith(line.rstrip(".")), (decoded, line)
    assert steps[0].token_start > ids.index(tokenizer.convert_tokens_to_ids("<think>"))
    assert step_spans(tokenizer, "y", "no think here")[1] == []


def test_step_profiles_are_mean_activations(tokenizer, tiny_model_kwargs):
    from sparsify import SparseCoder, SparseCoderConfig

    from r1interp.organism.train import build_model
    from r1interp.transcoders.splice import coder_forward, mlp_modules

    torch.manual_seed(0)
    model = build_model(len(tokenizer), **tiny_model_kwargs).eval()
    coders = {
        layer: SparseCoder(32, SparseCoderConfig(num_latents=16, k=4, transcode=True, skip_connection=True)).eval()
        for layer in range(2)
    }
    p = tasks.make_problem("mul", 23, 4)
    text = full_text(p.prompt, p.think, p.answer_text)
    steps, prof = step_profiles(model, coders, tokenizer, [("a", text)])
    assert prof.shape == (len(steps), 32)
    ids, _ = step_spans(tokenizer, "a", text)
    seen = {}
    mlp = mlp_modules(model)[1]
    h = mlp.register_forward_pre_hook(lambda _m, args: seen.__setitem__("x", args[0]))
    with torch.no_grad():
        model(torch.tensor([ids]))
    h.remove()
    with torch.no_grad():
        _, acts, idx = coder_forward(coders[1], seen["x"][0])
    dense = torch.zeros(len(ids), 16).scatter_(-1, idx, acts)
    s = steps[1]
    assert np.allclose(prof[1, 16:], dense[s.token_start : s.token_end].mean(0).numpy(), atol=1e-6)


def _planted(n_per: int = 60, k: int = 4, dims: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 4, (k, dims))
    x = np.concatenate([c + rng.normal(0, 1, (n_per, dims)) for c in centers])
    return np.abs(x).astype(np.float32), np.repeat(np.arange(k), n_per)


def test_planted_clusters_are_recovered_and_k_is_chosen():
    x, truth = _planted()
    z = clustering.embed(x, 8, seed=0)
    sel = clustering.choose_k(z, (2, 7), seeds=3, min_stability=0.9, seed=0, truth=truth)
    assert sel.k == 4 and "silhouette" in sel.criterion
    assert {r["k"] for r in sel.by_k} == set(range(2, 8))
    for algorithm in clustering.ALGORITHMS:
        labels = clustering.fit(z, 4, algorithm, seed=0)
        from sklearn.metrics import adjusted_rand_score

        assert adjusted_rand_score(truth, labels) > 0.95
        boot = clustering.bootstrap_stability(z, labels, 4, algorithm, resamples=3, seed=0)
        assert min(boot) > 0.9
    with pytest.raises(ValueError, match="unknown algorithm"):
        clustering.fit(z, 2, "dbscan", 0)


def test_enrichment_finds_the_planted_feature():
    rng = np.random.default_rng(1)
    prof = rng.random((100, 6)).astype(np.float32)
    groups = np.array(["a"] * 50 + ["b"] * 50)
    prof[:50, 3] += 2.0  # feature (1, 1) fires more in group a
    features = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (1, 3)]
    table = taxonomy.enrichment(prof, groups, features, top=2)
    top_a = table[table["group"] == "a"].iloc[0]
    assert (top_a["layer"], top_a["feature"]) == (1, 1) and top_a["q_value"] < 1e-6 and top_a["effect"] > 2
    assert table[table["group"] == "b"].iloc[0]["feature"] != 1 or table[table["group"] == "b"].iloc[0]["layer"] != 1


def test_transitions_follow_steps_inside_each_trace():
    steps = pd.DataFrame({"problem_id": ["p", "p", "p", "q", "q"], "index": [0, 1, 2, 0, 1], "c": [0, 1, 1, 0, 2]})
    t = taxonomy.transitions(steps, "c").set_index(["from", "to"])
    assert t.loc[(0, 1), "count"] == 1 and t.loc[(1, 1), "count"] == 1 and t.loc[(0, 2), "count"] == 1
    assert t.loc[(0, 1), "probability"] == 0.5 and (2, 0) not in t.index  # no transition across traces


def test_node_influence_matches_hand_computation():
    from r1interp.reasoning.critical import node_influence

    # nodes: 0 embedding -> 1 feature -> 2 logit, and 0 -> 2 directly; rows are targets
    adj = np.zeros((3, 3))
    adj[1, 0] = 2.0
    adj[2, 1] = 3.0
    adj[2, 0] = -1.0
    infl = node_influence(adj, np.array([0.0, 0.0, 1.0]))
    # logit's inputs normalised: 0.75 from node 1, 0.25 from node 0; node 1 gets all from node 0
    assert np.allclose(infl, [0.25 + 0.75, 0.75, 0.0])


def test_weight_diff_and_feature_alignment(tmp_path, tokenizer, tiny_model_kwargs):
    from sparsify import SparseCoder, SparseCoderConfig

    from r1interp.organism.train import build_model
    from r1interp.reasoning.critical import aligned_features, weight_diff

    torch.manual_seed(0)
    base = build_model(len(tokenizer), **tiny_model_kwargs)
    tuned = build_model(len(tokenizer), **tiny_model_kwargs)
    tuned.load_state_dict(base.state_dict())
    direction = torch.zeros(32)
    direction[5] = 1.0
    with torch.no_grad():  # the fine-tune writes along one residual direction in layer 1's MLP output
        tuned.model.layers[1].mlp.down_proj.weight += 0.5 * direction[:, None] * torch.randn(1, 64)
    base.save_pretrained(tmp_path / "base")
    tuned.save_pretrained(tmp_path / "tuned")
    diff = weight_diff(tmp_path / "tuned", tmp_path / "base").set_index("tensor")
    changed = diff[diff["norm_change"] > 0]
    assert list(changed.index) == ["model.layers.1.mlp.down_proj.weight"]
    coder = SparseCoder(32, SparseCoderConfig(num_latents=8, k=2, transcode=True, skip_connection=True))
    with torch.no_grad():
        coder.W_dec.zero_()
        coder.W_dec[0, 5] = 1.0  # feature 0 writes exactly that direction
        coder.W_dec[1, 7] = 1.0  # feature 1 writes an unchanged one
        coder.W_dec[2:] = torch.randn(6, 32)
    table = aligned_features(tmp_path / "tuned", tmp_path / "base", {1: coder}, rank=1).set_index("feature")
    assert table.loc[0, "decoder_alignment"] == pytest.approx(1.0, abs=1e-5)
    assert table.loc[1, "decoder_alignment"] == pytest.approx(0.0, abs=1e-5)
    assert table.loc[0, "chance"] == pytest.approx(1 / 32)
