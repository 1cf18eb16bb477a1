"""Streaming feature statistics and example windows (r1interp.activations), checked against brute force.

Synthetic top-k encodings drive `LayerCollector.update` directly; a tiny random Qwen2 with
random sparsify transcoders drives `collect`. Every expectation is recomputed here from the
raw activations (dense maps over all rows, positions and features), never copied from a run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from r1interp import activations as act_mod
from r1interp.activations import (
    LayerCollector,
    SlotTable,
    collect,
    example_table,
    feature_table,
    logit_effects,
    place_windows,
)
from r1interp.config import ActivationsParams
from r1interp.schemas import ExampleSchema, FeatureSchema, read_parquet, validate

torch.set_num_threads(1)

FIELDS = ("activation", "row", "position", "in_think", "target", "length")


# ---------------------------------------------------------------------------- place_windows


def test_place_windows_hand_cases():
    # window 8: the window starts 6 tokens (3/4 of it) before the target when it can
    valid_len = torch.tensor([20, 5, 20])
    row = torch.tensor([0, 1, 2, 0])
    pos = torch.tensor([10, 3, 19, 2])
    w = place_windows(row, pos, valid_len, 8)
    # row 0, pos 10: [4, 12); row 1 (5 tokens): [0, 5); row 2, pos 19: pushed back to [12, 20); row 0, pos 2: [0, 8)
    assert w.start.tolist() == [4, 0, 12, 0]
    assert w.length.tolist() == [8, 5, 8, 8]
    assert w.target.tolist() == [6, 3, 7, 2]
    assert w.row.tolist() == row.tolist()


# ---------------------------------------------------------------------------- SlotTable


def test_slot_table_keeps_smallest_keys_with_their_payload():
    rng = np.random.default_rng(0)
    F, S, W = 5, 3, 4
    table = SlotTable(F, S, W)
    assert table.key.shape == (F, S)
    assert (table.key == 1.0).all() and not table.filled().any()

    offered: list[tuple[int, float, int]] = []  # (feature, key, candidate id) ever offered
    next_id = 0
    calls = [7, 0, 12, 3, 9, 15, 1, 10]
    for n in calls:
        feat = torch.as_tensor(rng.integers(0, F - 1, size=n), dtype=torch.long)  # feature F-1 is never offered
        key = torch.as_tensor(rng.random(n), dtype=torch.float32)
        ids = torch.arange(next_id, next_id + n)
        next_id += n
        before = {(f, int(table.fields["row"][f, s])) for f in range(F) for s in range(S) if table.filled()[f, s]}
        extracted: list[int] = []

        def extract(sel, ids=ids):
            chosen = ids[sel]
            extracted.extend(chosen.tolist())
            return {
                "activation": chosen.float(),
                "row": chosen,
                "position": chosen * 2 + 1,
                "in_think": chosen % 2 == 0,
                "target": chosen % W,
                "length": chosen % 3 + 1,
                "acts": chosen.float()[:, None] * torch.arange(1, W + 1),
            }

        table.offer(feat, key, extract)
        offered += [(int(f), float(k), int(i)) for f, k, i in zip(feat, key, ids, strict=True)]

        # brute force: per feature, the S smallest keys among everything ever offered
        expected = set()
        for f in range(F):
            cands = sorted((k, i) for ff, k, i in offered if ff == f)[:S]
            expected |= {(f, i) for _, i in cands}
        filled = table.filled()
        got = {(f, int(table.fields["row"][f, s])) for f in range(F) for s in range(S) if filled[f, s]}
        assert got == expected
        # extract is called for exactly the entering candidates (and not at all when none enter)
        assert len(extracted) == len(set(extracted))
        assert {(next(ff for ff, _, ii in offered if ii == i), i) for i in extracted} == got - before
        # payloads stay attached to their keys
        key_of = {i: k for _, k, i in offered}
        for f in range(F):
            for s in range(S):
                if not filled[f, s]:
                    assert table.key[f, s] == 1.0
                    continue
                i = int(table.fields["row"][f, s])
                assert table.key[f, s].item() == pytest.approx(key_of[i], abs=0)
                assert table.fields["activation"][f, s] == float(i)
                assert table.fields["position"][f, s] == 2 * i + 1
                assert bool(table.fields["in_think"][f, s]) == (i % 2 == 0)
                assert table.fields["target"][f, s] == i % W
                assert table.fields["length"][f, s] == i % 3 + 1
                assert torch.equal(table.fields["acts"][f, s], float(i) * torch.arange(1, W + 1).float())
        # thresholds: the key to beat, 1.0 while a slot is free
        for f in range(F):
            keys = sorted(k for ff, k, _ in offered if ff == f)
            expect = keys[S - 1] if len(keys) >= S else 1.0
            assert table.thresholds()[f].item() == pytest.approx(expect, abs=0)
    assert not table.filled()[F - 1].any()
    assert table.filled()[: F - 1].all()  # enough candidates were offered to every other feature


def test_slot_table_without_acts_has_no_acts_field():
    table = SlotTable(3, 2, 5, with_acts=False)
    assert "acts" not in table.fields
    table.offer(
        torch.tensor([1]),
        torch.tensor([0.5]),
        lambda sel: {name: torch.zeros(len(sel)) for name in FIELDS},
    )
    assert table.filled().sum() == 1 and bool(table.filled()[1].any())


# ---------------------------------------------------------------------------- synthetic encodings


@dataclass
class Synthetic:
    batches: list[dict]  # acts, idx, ids, valid, in_think, row_offset
    A: np.ndarray  # [R, T, F] activation where the feature fires at a valid position, else 0
    raw: np.ndarray  # [R, T, F] activation wherever the coder output it (valid or not)
    valid: np.ndarray  # [R, T]
    think: np.ndarray  # [R, T]
    ids: np.ndarray  # [R, T]
    vlen: np.ndarray  # [R] valid prefix length (padding sits at the end)
    used_rows: set
    F: int


def make_synthetic(
    seed: int = 0, n_batches: int = 3, B: int = 3, T: int = 10, F: int = 6, k: int = 2, row_base: int = 5
) -> Synthetic:
    """Random top-k encodings with distinct activations (no ties), padding at the ends of rows,
    one excluded (invalid) token inside a row, some zero entries among the top-k, a row with no
    valid token, and feature F-1 that never fires."""
    rng = np.random.default_rng(seed)
    R = row_base + n_batches * B
    A = np.zeros((R, T, F))
    raw = np.zeros((R, T, F))
    valid_g = np.zeros((R, T), dtype=bool)
    think_g = np.zeros((R, T), dtype=bool)
    ids_g = np.zeros((R, T), dtype=np.int64)
    values = rng.permutation(np.linspace(0.2, 6.0, n_batches * B * T * k))
    lengths = [[T, 7, 3], [T, 0, 8], [5, T, T]]
    batches = []
    for i in range(n_batches):
        idx = np.stack([np.stack([rng.choice(F - 1, size=k, replace=False) for _ in range(T)]) for _ in range(B)])
        acts = values[i * B * T * k : (i + 1) * B * T * k].reshape(B, T, k).copy()
        acts[rng.random((B, T, k)) < 0.3] = 0.0
        vl = np.array(lengths[i % len(lengths)])
        valid = np.arange(T)[None, :] < vl[:, None]
        valid[0, 1] = False  # an excluded token inside the first row
        think = rng.random((B, T)) < 0.5
        ids = rng.integers(2, 50, size=(B, T))
        offset = row_base + i * B
        for b in range(B):
            for t in range(T):
                for j in range(k):
                    if acts[b, t, j] > 0:
                        raw[offset + b, t, idx[b, t, j]] = acts[b, t, j]
                        if valid[b, t]:
                            A[offset + b, t, idx[b, t, j]] = acts[b, t, j]
        valid_g[offset : offset + B] = valid
        think_g[offset : offset + B] = think
        ids_g[offset : offset + B] = ids
        batches.append(
            {
                "acts": torch.tensor(acts, dtype=torch.float32),
                "idx": torch.tensor(idx, dtype=torch.long),
                "ids": torch.tensor(ids),
                "valid": torch.tensor(valid),
                "in_think": torch.tensor(think),
                "row_offset": offset,
            }
        )
    vlen = np.array([(np.flatnonzero(v).max() + 1) if v.any() else 0 for v in valid_g])
    used = set(range(row_base, R))
    return Synthetic(batches, A, raw, valid_g, think_g, ids_g, vlen, used, F)


CFG = ActivationsParams(window=6, top_n=3, quantile_bins=2, per_quantile=2, non_activating=3)


def run_collector(data: Synthetic, cfg=CFG, seed: int = 0) -> LayerCollector:
    col = LayerCollector(data.F, cfg, torch.Generator().manual_seed(seed))
    for b in data.batches:
        col.update(b["acts"], b["idx"], b["ids"], b["valid"], b["in_think"], b["row_offset"])
    return col


def entries(table: SlotTable, f: int) -> list[dict]:
    out = []
    for s in np.flatnonzero(table.filled()[f].numpy()):
        e = {name: table.fields[name][f, s] for name in table.fields}
        out.append({k: (v.numpy() if v.ndim else v.item()) for k, v in e.items()})
    return out


def check_window(e: dict, f: int, data: Synthetic, cfg, activating: bool) -> None:
    r, pos, tgt, length = e["row"], e["position"], e["target"], e["length"]
    assert r in data.used_rows  # global row: the batch's row_offset was applied
    start = pos - tgt
    assert length == min(cfg.window, data.vlen[r])
    assert 0 <= tgt < length and start >= 0
    assert start + length <= data.vlen[r]  # inside the row, never into its end padding
    assert tgt >= min(pos, (3 * cfg.window) // 4)  # context before the target is kept
    assert e["in_think"] == data.think[r, pos]
    if activating:
        assert data.valid[r, pos]
        assert e["activation"] == pytest.approx(data.A[r, pos, f], rel=1e-6) and e["activation"] > 0
        np.testing.assert_allclose(
            e["acts"][:length], data.A[r, start : start + length, f], rtol=1e-3
        )  # stored as float16
        assert (e["acts"][length:] == 0).all()
        assert e["acts"][tgt] == pytest.approx(e["activation"], rel=1e-6)
    else:
        assert e["activation"] == 0
        assert (data.raw[r, start : start + length, f] == 0).all()  # silent throughout, even on excluded tokens


@pytest.fixture(params=["dense", "sparse"])
def lookup_mode(request, monkeypatch):
    if request.param == "sparse":
        monkeypatch.setattr(act_mod, "DENSE_LOOKUP_LIMIT", 0)
    return request.param


def test_layer_collector_matches_brute_force(lookup_mode):
    data = make_synthetic(seed=1)
    col = run_collector(data)
    A = data.A
    fires = A > 0
    count = fires.sum(axis=(0, 1))
    assert col.n_tokens == int(data.valid.sum())
    assert col.count.tolist() == count.tolist()
    assert count[-1] == 0 and count[:-1].min() > CFG.quantile_bins * CFG.per_quantile
    np.testing.assert_allclose(col.act_max.numpy(), A.max(axis=(0, 1)), rtol=1e-6)
    act_sum = A.sum(axis=(0, 1))
    np.testing.assert_allclose(col.act_sum.numpy(), act_sum, rtol=1e-6)
    think = (fires & data.think[..., None]).sum(axis=(0, 1))
    assert col.think_count.tolist() == think.tolist()

    S = CFG.quantile_bins * CFG.per_quantile
    for f in range(data.F):
        occ = [(A[r, t, f], r, t) for r, t in zip(*np.nonzero(fires[..., f]), strict=True)]
        # top-N: exactly the N largest activations
        top = entries(col.top, f)
        expected_top = {(r, t) for _, r, t in sorted(occ, reverse=True)[: CFG.top_n]}
        assert {(e["row"], e["position"]) for e in top} == expected_top
        for e in top:
            check_window(e, f, data, CFG, activating=True)
        # the uniform sample: distinct activating occurrences, as many as fit
        sample = entries(col.sample, f)
        assert len(sample) == min(S, len(occ))
        assert len({(e["row"], e["position"]) for e in sample}) == len(sample)
        for e in sample:
            check_window(e, f, data, CFG, activating=True)
        # silent windows: the feature is zero throughout
        silent = entries(col.silent, f)
        for e in silent:
            check_window(e, f, data, CFG, activating=False)
    # the never-firing feature is silent in every offered window: its negatives fill up
    assert len(entries(col.silent, data.F - 1)) == CFG.non_activating
    assert not col.top.filled()[data.F - 1].any() and not col.sample.filled()[data.F - 1].any()


def test_layer_collector_statistics_in_feature_table():
    data = make_synthetic(seed=2)
    col = run_collector(data)
    V = 40

    class Vocab:
        def __len__(self):
            return V

        def decode(self, ids):
            return f"t{ids[0]}"

    logit_ids = torch.tensor([[f, V + f] for f in range(data.F)])  # one id beyond the tokenizer's vocab
    logit_values = torch.arange(2 * data.F, dtype=torch.float32).reshape(data.F, 2)
    df = feature_table(col, "m", 3, logit_values, logit_ids, Vocab())
    validate(df, FeatureSchema, "synthetic features")
    fires = data.A > 0
    count = fires.sum(axis=(0, 1))
    n = int(data.valid.sum())
    assert (df["n_tokens"] == n).all() and (df["layer"] == 3).all() and (df["model"] == "m").all()
    assert df["feature"].tolist() == list(range(data.F))
    assert df["count"].tolist() == count.tolist()
    np.testing.assert_allclose(df["density"], count / n)
    np.testing.assert_allclose(df["max_act"], data.A.max(axis=(0, 1)), rtol=1e-6)
    mean = np.array([data.A[..., f][fires[..., f]].mean() if count[f] else 0.0 for f in range(data.F)])
    np.testing.assert_allclose(df["mean_act"], mean, rtol=1e-6)
    think = np.array([data.think[fires[..., f]].mean() if count[f] else 0.0 for f in range(data.F)])
    np.testing.assert_allclose(df["think_fraction"], think)
    assert df["top_output_tokens"].tolist() == [[f"t{f}", f"<{V + f}>"] for f in range(data.F)]
    assert df["top_output_logits"].tolist() == [[2.0 * f, 2.0 * f + 1] for f in range(data.F)]


def test_batches_without_firing_or_valid_tokens():
    """A batch where nothing fires, and one with no valid token, only add to the token count."""
    data = make_synthetic(seed=4)
    col = run_collector(data)
    before = {name: t.clone() for name, t in col.top.fields.items()}
    count, n = col.count.clone(), col.n_tokens
    B, T, k = 2, 7, 2
    idx = torch.zeros(B, T, k, dtype=torch.long)
    think = torch.zeros(B, T, dtype=torch.bool)
    col.update(
        torch.zeros(B, T, k), idx, torch.zeros(B, T, dtype=torch.long), torch.ones(B, T, dtype=torch.bool), think, 100
    )
    assert col.n_tokens == n + B * T and torch.equal(col.count, count)
    col.update(
        torch.full((B, T, k), 9.0),
        idx,
        torch.zeros(B, T, dtype=torch.long),
        torch.zeros(B, T, dtype=torch.bool),
        think,
        102,
    )
    assert col.n_tokens == n + B * T and torch.equal(col.count, count)  # activations on invalid tokens are ignored
    assert all(torch.equal(before[name], t) for name, t in col.top.fields.items())


def test_uniform_sample_is_uniform_over_occurrences():
    """Bottom-k on random keys: across seeds, each occurrence is kept equally often (chi-square)."""
    cfg = ActivationsParams(window=4, top_n=1, quantile_bins=2, per_quantile=2, non_activating=0)
    S = cfg.quantile_bins * cfg.per_quantile
    B, T = 2, 4
    batches, occurrences = [], []
    rng = np.random.default_rng(0)
    for i in range(3):  # 4 occurrences of feature 0 per batch, 12 in all, spread over batches
        acts = np.zeros((B, T, 1), dtype=np.float32)
        where = rng.choice(B * T, size=4, replace=False)
        acts.reshape(-1)[where] = rng.uniform(0.5, 2.0, size=4)
        occurrences += [(i * B + w // T, w % T) for w in where]
        idx = np.zeros((B, T, 1), dtype=np.int64)
        idx[acts == 0] = 1  # the silent slots name another feature
        batches.append((torch.tensor(acts), torch.tensor(idx), torch.zeros(B, T, dtype=torch.long), i * B))
    valid = torch.ones(B, T, dtype=torch.bool)
    think = torch.zeros(B, T, dtype=torch.bool)
    runs = 600
    tally = {o: 0 for o in occurrences}
    for seed in range(runs):
        col = LayerCollector(2, cfg, torch.Generator().manual_seed(seed))
        for acts, idx, ids, offset in batches:
            col.update(acts, idx, ids, valid, think, offset)
        kept = entries(col.sample, 0)
        assert len(kept) == S
        for e in kept:
            tally[(e["row"], e["position"])] += 1
    n = len(occurrences)
    expected = runs * S / n
    chi2 = sum((c - expected) ** 2 / expected for c in tally.values())
    # 99.9% quantile of chi-square with n-1 degrees of freedom (Wilson-Hilferty); sampling
    # without replacement only shrinks the statistic, so this is conservative
    df = n - 1
    z = 3.09
    critical = df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3
    assert chi2 < critical, (chi2, tally)
    # and not degenerate: the strongest occurrences are not systematically preferred
    assert max(tally.values()) < 1.5 * expected and min(tally.values()) > 0.5 * expected


# ---------------------------------------------------------------------------- tables


def token_rows_from_parquet(path):
    table = pq.read_table(path)
    rows = np.stack(table.column("input_ids").to_numpy(zero_copy_only=False))
    width = rows.shape[1]

    def token_rows(selected):
        selected = np.asarray(selected, dtype=np.int64)
        return rows[selected] if len(selected) else np.zeros((0, width), dtype=np.int64)

    return token_rows


def write_token_rows(path, ids: np.ndarray) -> None:
    pq.write_table(pa.table({"input_ids": pa.array([list(r) for r in ids.tolist()], type=pa.list_(pa.int64()))}), path)


def test_example_table_round_trip_and_schema(tmp_path, lookup_mode):
    data = make_synthetic(seed=3)
    cfg = ActivationsParams(window=6, top_n=3, quantile_bins=3, per_quantile=2, non_activating=3)
    col = run_collector(data, cfg)
    write_token_rows(tmp_path / "tokens.parquet", data.ids)
    table = example_table(col, "m", 2, token_rows_from_parquet(tmp_path / "tokens.parquet"))
    pq.write_table(table, tmp_path / "examples.parquet")
    df = read_parquet(tmp_path / "examples.parquet", ExampleSchema)
    assert (df["layer"] == 2).all() and (df["model"] == "m").all()

    S = cfg.quantile_bins * cfg.per_quantile
    fires = data.A > 0
    for f in range(data.F):
        n_occ = int(fires[..., f].sum())
        sub = df[df["feature"] == f]
        kinds = sub["kind"].value_counts().to_dict()
        assert kinds.get("top", 0) == min(cfg.top_n, n_occ)
        assert kinds.get("quantile", 0) == min(S, n_occ)
        assert kinds.get("non_activating", 0) == int(col.silent.filled()[f].sum())
        for row in sub.itertuples():
            start = row.position - row.target
            n = len(row.tokens)
            # tokens read back through token_rows, at the window's place in its row
            assert list(row.tokens) == data.ids[row.row, start : start + n].tolist()
            assert n == min(cfg.window, data.vlen[row.row]) and start + n <= data.vlen[row.row]
            if row.kind == "non_activating":
                assert row.quantile == -1 and row.activation == 0
                assert (data.raw[row.row, start : start + n, f] == 0).all()
            else:
                np.testing.assert_allclose(
                    row.acts, data.A[row.row, start : start + n, f], rtol=1e-3
                )  # stored as float16
                assert row.activation == pytest.approx(data.A[row.row, row.position, f], rel=1e-6)
        # ranks: 0..n-1 per kind, strongest first
        for kind, g in sub.groupby("kind"):
            assert sorted(g["rank"]) == list(range(len(g)))
            if kind != "non_activating":
                by_rank = g.sort_values("rank")["activation"].to_numpy()
                assert (np.diff(by_rank) <= 0).all()
        assert (sub.loc[sub["kind"] == "top", "quantile"] == -1).all()
        # equal-count quantile bins, ordered by activation
        q = sub[sub["kind"] == "quantile"]
        if len(q) == S:
            assert q["quantile"].value_counts().sort_index().tolist() == [cfg.per_quantile] * cfg.quantile_bins
            for b in range(cfg.quantile_bins - 1):
                assert (
                    q.loc[q["quantile"] == b, "activation"].max() <= q.loc[q["quantile"] == b + 1, "activation"].min()
                )
        # top is the strongest
        if n_occ:
            assert sub.loc[sub["kind"] == "top", "activation"].max() == pytest.approx(data.A[..., f].max(), rel=1e-6)
    # some feature has a full quantile sample, so the bin checks above ran
    assert (fires.sum(axis=(0, 1)) >= S).any()
    # sorted by feature, then kind, then rank
    keys = list(zip(df["feature"], df["kind"], df["rank"], strict=True))
    assert keys == sorted(keys)


def test_quantile_bins_with_partial_sample():
    """Fewer sampled occurrences than slots: bins stay ordered and within one of equal counts."""
    cfg = ActivationsParams(window=4, top_n=1, quantile_bins=3, per_quantile=3, non_activating=0)
    B, T = 1, 7
    acts = torch.tensor([[[0.5], [1.5], [2.5], [3.5], [4.5], [5.5], [6.5]]])  # 7 occurrences < 9 slots
    idx = torch.zeros(B, T, 1, dtype=torch.long)
    col = LayerCollector(1, cfg, torch.Generator().manual_seed(0))
    col.update(
        acts, idx, torch.arange(T)[None], torch.ones(B, T, dtype=torch.bool), torch.zeros(B, T, dtype=torch.bool), 0
    )
    df = example_table(col, "m", 0, lambda rows: np.arange(T)[None].repeat(len(rows), 0)).to_pandas()
    q = df[df["kind"] == "quantile"].sort_values("activation")
    assert len(q) == 7
    assert (np.diff(q["quantile"].to_numpy()) >= 0).all()
    counts = q["quantile"].value_counts().reindex(range(3), fill_value=0).to_numpy()
    assert counts.sum() == 7 and counts.max() - counts.min() <= 1
    assert q["quantile"].iloc[0] == 0 and q["quantile"].iloc[-1] == 2
    validate(df, ExampleSchema, "partial")


# ---------------------------------------------------------------------------- collect on a real tiny model

V, D, LAYERS, K = 48, 16, 2, 4
EXCLUDE = (0, 1)  # "BOS" and "padding"


@pytest.fixture(scope="module")
def tiny_qwen():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=V,
        hidden_size=D,
        intermediate_size=32,
        num_hidden_layers=LAYERS,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
        tie_word_embeddings=False,
    )
    model = Qwen2ForCausalLM(config).eval()
    with torch.no_grad():
        for layer in model.model.layers:
            layer.post_attention_layernorm.weight.uniform_(0.5, 1.5)
        model.model.norm.weight.uniform_(0.5, 1.5)
    return model


def make_coder(seed: int, **cfg):
    from sparsify import SparseCoder, SparseCoderConfig

    torch.manual_seed(seed)
    coder = SparseCoder(
        D, SparseCoderConfig(**{"expansion_factor": 4, "k": K, "transcode": True, "skip_connection": True, **cfg})
    )
    with torch.no_grad():
        coder.encoder.bias.normal_(-0.2, 0.1)  # some tokens have fewer than k positive latents
        coder.W_dec.normal_(0, 0.1)
    return coder.eval()


def model_batches(n_batches: int, B: int = 2, T: int = 12, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_batches):
        ids = rng.integers(2, V, size=(B, T))
        ids[:, 0] = 0  # BOS
        ids[0, 5] = 0  # an excluded token inside a row
        ids[1, T - 3 - i % 2 :] = 1  # end padding
        out.append(
            {"input_ids": torch.tensor(ids), "in_think": torch.tensor(rng.random((B, T)) < 0.5), "row_offset": i * B}
        )
    return out


def brute_force_counts(model, coders, batches):
    """Re-encode the MLP inputs (taken from the post-attention norm's output) by hand:
    a latent fires at a token when it is positive and among the k largest pre-activations."""
    captured = {}
    hooks = [
        model.model.layers[layer].post_attention_layernorm.register_forward_hook(
            lambda m, i, o, layer=layer: captured.__setitem__(layer, o)
        )
        for layer in coders
    ]
    counts = {layer: torch.zeros(coder.num_latents, dtype=torch.long) for layer, coder in coders.items()}
    counts_all = {layer: torch.zeros(coder.num_latents, dtype=torch.long) for layer, coder in coders.items()}
    pre_acts = {layer: {} for layer in coders}
    try:
        with torch.no_grad():
            for batch in batches:
                ids = batch["input_ids"]
                model(ids)
                valid = ~torch.isin(ids, torch.tensor(EXCLUDE))
                for layer, coder in coders.items():
                    x = captured[layer]
                    pre = torch.relu(x @ coder.encoder.weight.T + coder.encoder.bias)  # [B, T, F]
                    larger = (pre[..., None, :] > pre[..., :, None]).sum(-1)  # how many latents beat each one
                    fire = (pre > 0) & (larger < coder.cfg.k)
                    counts[layer] += (fire & valid[..., None]).sum((0, 1))
                    counts_all[layer] += fire.sum((0, 1))
                    for b in range(ids.shape[0]):
                        pre_acts[layer][batch["row_offset"] + b] = torch.where(fire[b], pre[b], 0.0)
    finally:
        for h in hooks:
            h.remove()
    return counts, counts_all, pre_acts


def test_collect_counts_match_reencoding(tiny_qwen):
    coders = {0: make_coder(0), 1: make_coder(1)}
    batches = model_batches(3)
    cfg = ActivationsParams(window=6, top_n=3, quantile_bins=2, per_quantile=2, non_activating=2)
    cols = collect(tiny_qwen, coders, batches, cfg, exclude_token_ids=EXCLUDE, seed=0, progress=False)
    counts, counts_all, pre = brute_force_counts(tiny_qwen, coders, batches)
    all_ids = torch.cat([b["input_ids"] for b in batches])
    n_valid = int((~torch.isin(all_ids, torch.tensor(EXCLUDE))).sum())
    assert set(cols) == {0, 1}
    for layer, col in cols.items():
        assert col.n_tokens == n_valid
        assert torch.equal(col.count, counts[layer])
        assert not torch.equal(col.count, counts_all[layer])  # excluded tokens do fire: leaving them out matters
        for table in (col.top, col.sample):
            filled = table.filled()
            for f, s in filled.nonzero().tolist():
                r, p = int(table.fields["row"][f, s]), int(table.fields["position"][f, s])
                assert int(all_ids[r, p]) not in EXCLUDE  # never an example on an excluded token
                assert float(table.fields["activation"][f, s]) == pytest.approx(float(pre[layer][r][p, f]), rel=1e-4)
        # top-1 activation of each feature is its max over valid tokens
        maxes = (
            torch.stack([pre[layer][r] for r in range(len(all_ids))])
            .masked_fill(torch.isin(all_ids, torch.tensor(EXCLUDE))[..., None], 0.0)
            .amax((0, 1))
        )
        torch.testing.assert_close(col.act_max, maxes, rtol=1e-4, atol=1e-6)


def test_collect_memory_is_fixed_by_slots(tiny_qwen):
    coders = {1: make_coder(2)}
    cfg = ActivationsParams(window=5, top_n=2, quantile_bins=2, per_quantile=1, non_activating=2)

    def shapes(col):
        return {
            (kind, name): tuple(t.shape)
            for kind, table in (("top", col.top), ("sample", col.sample), ("silent", col.silent))
            for name, t in [("key", table.key), *table.fields.items()]
        }

    short = collect(tiny_qwen, coders, model_batches(1), cfg, exclude_token_ids=EXCLUDE, progress=False)[1]
    long = collect(tiny_qwen, coders, model_batches(4), cfg, exclude_token_ids=EXCLUDE, progress=False)[1]
    assert long.n_tokens > 3 * short.n_tokens
    assert shapes(short) == shapes(long)
    F = coders[1].num_latents
    assert shapes(long)[("top", "acts")] == (F, 2, 5)
    assert shapes(long)[("sample", "key")] == (F, 2)
    assert shapes(long)[("silent", "row")] == (F, 2)


def test_collect_tables_pass_schemas(tiny_qwen, tmp_path):
    coders = {0: make_coder(3)}
    batches = model_batches(2)
    cfg = ActivationsParams(window=6, top_n=2, quantile_bins=2, per_quantile=2, non_activating=2, top_output_tokens=3)
    col = collect(tiny_qwen, coders, batches, cfg, exclude_token_ids=EXCLUDE, progress=False)[0]
    ids = torch.cat([b["input_ids"] for b in batches]).numpy()
    write_token_rows(tmp_path / "tokens.parquet", ids)
    examples = example_table(col, "organism", 0, token_rows_from_parquet(tmp_path / "tokens.parquet"))
    pq.write_table(examples, tmp_path / "examples.parquet")
    df = read_parquet(tmp_path / "examples.parquet", ExampleSchema)
    for row in df.itertuples():
        start = row.position - row.target
        assert list(row.tokens) == ids[row.row, start : start + len(row.tokens)].tolist()

    class Vocab:
        def __len__(self):
            return V

        def decode(self, i):
            return f"<{i[0]}>"

    values, top_ids = logit_effects(coders[0], tiny_qwen, cfg.top_output_tokens)
    features = feature_table(col, "organism", 0, values, top_ids, Vocab())
    features.to_parquet(tmp_path / "features.parquet", index=False)
    back = read_parquet(tmp_path / "features.parquet", FeatureSchema)
    assert len(back) == coders[0].num_latents
    assert back["count"].sum() == int(col.count.sum()) > 0


# ---------------------------------------------------------------------------- logit effects


@pytest.mark.parametrize("latents", [64, 4100])  # 4100: more than one 4096-row chunk
def test_logit_effects_brute_force(tiny_qwen, latents):
    coder = make_coder(5, num_latents=latents)
    k = 5
    values, ids = logit_effects(coder, tiny_qwen, k)
    assert values.shape == ids.shape == (latents, k)
    W, g, U = coder.W_dec.detach(), tiny_qwen.model.norm.weight.detach(), tiny_qwen.lm_head.weight.detach()
    effect = torch.einsum("fd,d,vd->fv", W, g, U)
    expected = effect.sort(dim=1, descending=True).values[:, :k]
    torch.testing.assert_close(values, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(effect.gather(1, ids), values, rtol=1e-5, atol=1e-6)
    # the gain matters: without it the ranking would differ somewhere
    plain = (W @ U.T).topk(k, dim=1).indices
    assert not torch.equal(plain, ids)
