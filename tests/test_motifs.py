"""Motif analysis: census against brute force, MAN labels, FFL roles/signs, nulls, statistics, loader, CLI."""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import pickle
import re
import subprocess
import sys
import warnings
from pathlib import Path

import igraph as ig
import numpy as np
import pytest

import r1interp.motifs.analyze as analyze_mod
from r1interp.errors import ArtifactError, R1InterpError
from r1interp.motifs import census, nulls, signed, stats
from r1interp.motifs.cli import add_parser
from r1interp.motifs.graph import AttributionGraph, load_neuronpedia
from r1interp.motifs.synthetic import layered_graph

ROOT = Path(__file__).resolve().parents[1]
HAIKU = ROOT / "data" / "reference" / "neuronpedia" / "opposite_of_small.json"

# ---------------------------------------------------------------- brute-force references (independent)


def brute_triad_label(adj: np.ndarray, a: int, b: int, c: int) -> str:
    """MAN label of the triad {a, b, c} straight from the definitions (Holland & Leinhardt)."""
    vs = (a, b, c)
    dyads = [(x, y) for x, y in itertools.combinations(vs, 2)]
    mutual = [(x, y) for x, y in dyads if adj[x, y] and adj[y, x]]
    asym = [(x, y) if adj[x, y] else (y, x) for x, y in dyads if adj[x, y] != adj[y, x]]  # as (from, to)
    m, a_, n = len(mutual), len(asym), 3 - len(mutual) - len(asym)
    code = f"{m}{a_}{n}"
    if code == "021":
        (s1, t1), (s2, t2) = asym
        if s1 == s2:
            return "021D"  # both edges leave the shared vertex: A<-B->C
        if t1 == t2:
            return "021U"  # both edges enter it: A->B<-C
        return "021C"
    if code == "111":
        (x, y), (_s, t) = mutual[0], asym[0]
        return "111D" if t in (x, y) else "111U"  # asym edge into the mutual pair: A<->B<-C is 111D
    if code == "030":
        outdeg = collections.Counter(s for s, _ in asym)
        return "030C" if all(outdeg[v] == 1 for v in vs) else "030T"
    if code == "120":
        (x, y) = mutual[0]
        z = next(v for v in vs if v not in (x, y))
        outs = sum(1 for s, _ in asym if s == z)
        return {2: "120D", 0: "120U", 1: "120C"}[outs]  # z sends both (down) / receives both (up)
    return code


def brute_triad_census(adj: np.ndarray) -> dict[str, int]:
    out = dict.fromkeys(census.TRIAD_LABELS, 0)
    for a, b, c in itertools.combinations(range(len(adj)), 3):
        out[brute_triad_label(adj, a, b, c)] += 1
    return out


def canon4(adj4: np.ndarray) -> int:
    """Largest 12-bit code over the 24 orderings (same convention as the census names)."""
    best = 0
    for perm in itertools.permutations(range(4)):
        code = 0
        for i in range(4):
            for j in range(4):
                if i != j:
                    code = (code << 1) | int(adj4[perm[i], perm[j]])
        best = max(best, code)
    return best


def random_digraph(rng, n: int, p: float, p_mutual: float = 0.3) -> np.ndarray:
    adj = rng.random((n, n)) < p
    np.fill_diagonal(adj, False)
    mutual = np.triu(rng.random((n, n)) < p_mutual, 1) & (adj | adj.T)
    adj |= mutual | mutual.T
    return adj


def graph_of(adj: np.ndarray, signs: np.ndarray | None = None) -> AttributionGraph:
    s, t = np.nonzero(adj)
    w = np.ones(len(s)) if signs is None else signs[s, t].astype(float)
    return AttributionGraph.from_edges(np.column_stack([s, t]), n=len(adj), weights=w)


# ---------------------------------------------------------------- triad census


def test_triad_census_matches_brute_force_and_igraph_on_random_digraphs():
    rng = np.random.default_rng(1)
    seen = collections.Counter()
    for trial in range(60):
        n = int(rng.integers(3, 13))
        adj = random_digraph(rng, n, float(rng.uniform(0.05, 0.7)), float(rng.uniform(0, 0.6)))
        ref = brute_triad_census(adj)
        g = graph_of(adj)
        assert census.triad_census(g, method="igraph") == ref, trial
        assert census.triad_census(g, method="bits") == ref, trial
        assert census.triad_census(g, method="sparse") == ref, trial
        seen.update(k for k, v in ref.items() if v)
    assert set(seen) == set(census.TRIAD_LABELS)  # every class was exercised


@pytest.mark.parametrize(
    "label,edges",
    [
        # A=0, B=1, C=2, written from the standard definitions (not from census.TRIAD_EXAMPLES)
        ("003", []),
        ("012", [(0, 1)]),
        ("102", [(0, 1), (1, 0)]),
        ("021D", [(1, 0), (1, 2)]),  # A<-B->C: out-star, "down"
        ("021U", [(0, 1), (2, 1)]),  # A->B<-C: in-star, "up"
        ("021C", [(0, 1), (1, 2)]),  # A->B->C
        ("111D", [(0, 1), (1, 0), (2, 1)]),  # A<->B<-C: asymmetric edge INTO the mutual pair
        ("111U", [(0, 1), (1, 0), (1, 2)]),  # A<->B->C: asymmetric edge OUT of the mutual pair
        ("030T", [(0, 1), (1, 2), (0, 2)]),
        ("030C", [(0, 1), (1, 2), (2, 0)]),
        ("201", [(0, 1), (1, 0), (0, 2), (2, 0)]),
        ("120D", [(1, 0), (1, 2), (0, 2), (2, 0)]),  # A<-B->C, A<->C: B sends both
        ("120U", [(0, 1), (2, 1), (0, 2), (2, 0)]),  # A->B<-C, A<->C: B receives both
        ("120C", [(0, 1), (1, 2), (0, 2), (2, 0)]),  # A->B->C, A<->C
        ("210", [(0, 1), (1, 2), (2, 1), (0, 2), (2, 0)]),
        ("300", [(0, 1), (1, 0), (1, 2), (2, 1), (0, 2), (2, 0)]),
    ],
)
def test_each_man_label_on_a_hand_graph(label, edges):
    g = ig.Graph(3, edges, directed=True)
    expected = {k: int(k == label) for k in census.TRIAD_LABELS}
    assert census.triad_census(g, method="igraph") == expected
    assert census.triad_census(g) == expected
    adj = np.zeros((3, 3), dtype=bool)
    for a, b in edges:
        adj[a, b] = True
    assert brute_triad_label(adj, 0, 1, 2) == label
    ex = census.TRIAD_EXAMPLES[label]
    assert census.triad_census(ig.Graph(3, list(ex), directed=True)) == expected


def test_direction_letters_are_not_swapped():
    """111D/111U and 120D/120U (swapped in circuit-motifs) on a graph holding one of each."""
    # 0<->1<-2 (111D) and 3<->4->5 (111U), far apart; plus 6<-7->8, 6<->8 (120D) and 9->10<-11, 9<->11 (120U)
    edges = [(0, 1), (1, 0), (2, 1), (3, 4), (4, 3), (4, 5),
             (7, 6), (7, 8), (6, 8), (8, 6), (9, 10), (11, 10), (9, 11), (11, 9)]  # fmt: skip
    c = census.triad_census(ig.Graph(12, edges, directed=True))
    assert (c["111D"], c["111U"], c["120D"], c["120U"]) == (1, 1, 1, 1)
    c = census.triad_census(ig.Graph(3, [(0, 1), (1, 0), (2, 1)], directed=True))
    assert c["111D"] == 1 and c["111U"] == 0


def test_haiku_triad_census_equals_igraph():
    for kwargs in ({}, {"drop_errors": False}, {"keep_embeddings": False, "keep_logits": False}):
        g = load_neuronpedia(HAIKU, **kwargs)
        ref = census.triad_census(g, method="igraph")
        assert census.triad_census(g) == ref
        assert census.triad_census(g, method="sparse") == ref
    g = load_neuronpedia(HAIKU)
    assert census.triad_census(g) == {
        "003": 18659, "012": 26615, "102": 0, "021D": 6299, "021U": 9960, "021C": 5330, "111D": 0, "111U": 0,
        "030T": 9213, "030C": 0, "201": 0, "120D": 0, "120U": 0, "120C": 0, "210": 0, "300": 0,
    }  # fmt: skip


def test_sparse_path_matches_on_a_larger_graph():
    g = layered_graph(6, 40, 2500, seed=3, same_layer_fraction=0.2)
    ref = census.triad_census(g, method="igraph")
    assert census.triad_census(g, method="bits") == ref
    assert census.triad_census(g, method="sparse") == ref


# ---------------------------------------------------------------- 4-node census


def test_census4_classes_are_the_199_connected_ones_with_stable_names():
    classes = census.census4_classes()
    assert len(classes) == 199
    codes = [code for _, _, code, _ in classes]
    assert len(set(codes)) == 199
    for iso, name, code, edges in classes:
        adj = np.zeros((4, 4), dtype=bool)
        for a, b in edges:
            adj[a, b] = True
        assert canon4(adj) == code
        assert name == f"M4-{iso:03d}-{code:03x}"


def test_census4_matches_brute_force_over_all_4_subsets():
    rng = np.random.default_rng(7)
    by_code = {code: name for _, name, code, _ in census.census4_classes()}
    for trial in range(8):
        n = int(rng.integers(5, 9))
        adj = random_digraph(rng, n, float(rng.uniform(0.15, 0.6)), 0.3)
        expected = dict.fromkeys(by_code.values(), 0)
        for sub in itertools.combinations(range(n), 4):
            a4 = adj[np.ix_(sub, sub)]
            if ig.Graph.Adjacency(a4.astype(int).tolist(), mode="directed").is_connected(mode="weak"):
                expected[by_code[canon4(a4)]] += 1
        assert census.census4(graph_of(adj)) == expected, trial


# ---------------------------------------------------------------- signed feed-forward loops


def test_ffl_roles_and_sign_order_on_hand_graph():
    # A=0 regulates B=1 (+) and C=2 (+); B inhibits C (-): pattern (A->B, B->C, A->C) = "+-+", incoherent
    g = AttributionGraph.from_edges([(0, 1), (1, 2), (0, 2)], weights=[0.5, -2.0, 1.0])
    assert signed.ffl_instances(g) == [(0, 1, 2, "+-+")]
    res = signed.ffl_census(g)
    assert res["patterns"]["+-+"] == 1 and res["total"] == 1
    assert res["incoherent"] == 1 and res["coherent"] == 0
    # relabelled vertices: roles follow edges, not ids (C=0 is the target)
    g = AttributionGraph.from_edges([(2, 1), (1, 0), (2, 0)], weights=[-1.0, -1.0, 3.0])
    assert signed.ffl_instances(g) == [(2, 1, 0, "--+")]
    assert signed.ffl_census(g)["coherent"] == 1


def test_coherence_of_all_eight_patterns():
    assert signed.FFL_PATTERNS == ("+++", "++-", "+-+", "+--", "-++", "-+-", "--+", "---")
    assert set(signed.COHERENT) == {"+++", "+--", "-+-", "--+"}
    assert set(signed.INCOHERENT) == {"++-", "+-+", "-++", "---"}


def test_ffl_induced_excludes_loops_with_reverse_edges():
    # FFL 0->1->2, 0->2 plus 2->0: not induced (the triad is 120C), but counted when induced=False
    g = AttributionGraph.from_edges([(0, 1), (1, 2), (0, 2), (2, 0)])
    assert signed.ffl_census(g)["total"] == 0
    assert signed.ffl_census(g, induced=False)["total"] >= 1


def test_ffl_counts_match_brute_force_and_030T():
    rng = np.random.default_rng(11)
    for _ in range(25):
        n = int(rng.integers(3, 12))
        adj = random_digraph(rng, n, float(rng.uniform(0.1, 0.6)), 0.2)
        signs = np.where(rng.random((n, n)) < 0.4, -1, 1)
        s, t = np.nonzero(adj)
        for induced in (True, False):
            ref = collections.Counter()
            for a, b, c in itertools.permutations(range(n), 3):
                if adj[a, b] and adj[b, c] and adj[a, c]:
                    if induced and (adj[b, a] or adj[c, b] or adj[c, a]):
                        continue
                    ref[signed.pattern_of(signs[a, b], signs[b, c], signs[a, c])] += 1
            expected = [ref[p] for p in signed.FFL_PATTERNS]
            for method in ("bits", "sparse"):
                assert signed.ffl_counts(n, s, t, signs[s, t], induced=induced, method=method).tolist() == expected
        g = graph_of(adj, signs)
        assert signed.ffl_census(g)["total"] == census.triad_census(g)["030T"]


# ---------------------------------------------------------------- null models


@pytest.fixture(scope="module")
def layered():
    return layered_graph(5, 12, 260, seed=5, same_layer_fraction=0.15)


def _draw(graph, model, seed=0, signs="keep"):
    spec = nulls.make_spec(graph, model, signs=signs)
    return spec, nulls.draw(spec, np.random.default_rng(seed))


def _assert_simple(n, s, t):
    assert not np.any(s == t)
    assert len(np.unique(s * n + t)) == len(s)


@pytest.mark.parametrize("model", nulls.NULL_MODELS)
def test_every_null_is_simple_and_keeps_n_m_and_signs(layered, model):
    spec, (s, t, sg) = _draw(layered, model)
    _assert_simple(layered.n_nodes, s, t)
    assert len(s) == layered.n_edges
    assert sorted(sg) == sorted(layered.signs)  # sign multiset
    assert set(zip(s.tolist(), t.tolist(), strict=True)) != set(
        zip(spec.src.tolist(), spec.tgt.tolist(), strict=True)
    )  # it moved


def test_configuration_keeps_degrees_and_attaches_signs(layered):
    spec, (s, t, sg) = _draw(layered, "configuration")
    n = layered.n_nodes
    assert np.array_equal(np.bincount(s, minlength=n), np.bincount(spec.src, minlength=n))
    assert np.array_equal(np.bincount(t, minlength=n), np.bincount(spec.tgt, minlength=n))
    # keep: every edge keeps its head and its sign; only tails move -> signed in-degrees preserved
    assert np.array_equal(t, spec.tgt) and np.array_equal(sg, spec.sign)
    assert np.any(s != spec.src)
    for sign in (1, -1):
        assert np.array_equal(
            np.bincount(t[sg == sign], minlength=n), np.bincount(spec.tgt[spec.sign == sign], minlength=n)
        )


def _blocks(layers, s, t):
    return collections.Counter(zip(layers[s].tolist(), layers[t].tolist(), strict=True))


def test_layer_er_keeps_block_edge_counts_and_block_signs(layered):
    lay = layered.layers
    spec, (s, t, sg) = _draw(layered, "layer_er")
    assert _blocks(lay, s, t) == _blocks(lay, spec.src, spec.tgt)
    signed_blocks = collections.Counter(zip(lay[s].tolist(), lay[t].tolist(), sg.tolist(), strict=True))
    assert signed_blocks == collections.Counter(
        zip(lay[spec.src].tolist(), lay[spec.tgt].tolist(), spec.sign.tolist(), strict=True)
    )


def test_layer_configuration_keeps_per_block_degrees(layered):
    lay = layered.layers
    spec, (s, t, sg) = _draw(layered, "layer_configuration")
    assert _blocks(lay, s, t) == _blocks(lay, spec.src, spec.tgt)
    out_by_layer = collections.Counter(zip(s.tolist(), lay[t].tolist(), strict=True))
    in_by_layer = collections.Counter(zip(t.tolist(), lay[s].tolist(), strict=True))
    assert out_by_layer == collections.Counter(zip(spec.src.tolist(), lay[spec.tgt].tolist(), strict=True))
    assert in_by_layer == collections.Counter(zip(spec.tgt.tolist(), lay[spec.src].tolist(), strict=True))
    assert np.array_equal(t, spec.tgt) and np.array_equal(sg, spec.sign)


def test_erdos_renyi_is_not_degree_preserving(layered):
    spec, (s, t, _) = _draw(layered, "erdos_renyi")
    assert set(layered.layers[s].tolist()) | set(layered.layers[t].tolist()) == set(layered.layers.tolist())
    assert not np.array_equal(
        np.bincount(s, minlength=layered.n_nodes), np.bincount(spec.src, minlength=layered.n_nodes)
    )


def test_shuffle_detaches_signs(layered):
    spec, (s, t, sg) = _draw(layered, "configuration", signs="shuffle")
    assert sorted(sg) == sorted(spec.sign)
    n = layered.n_nodes
    assert not np.array_equal(np.bincount(t[sg < 0], minlength=n), np.bincount(spec.tgt[spec.sign < 0], minlength=n))


def test_nulls_on_haiku_keep_what_they_claim():
    g = load_neuronpedia(HAIKU)
    lay = g.layers
    for model in nulls.NULL_MODELS:
        spec, (s, t, sg) = _draw(g, model, seed=3)
        _assert_simple(g.n_nodes, s, t)
        if model.startswith("layer"):
            assert _blocks(lay, s, t) == _blocks(lay, spec.src, spec.tgt)
        if model.endswith("configuration"):
            assert np.array_equal(np.bincount(s, minlength=g.n_nodes), np.bincount(spec.src, minlength=g.n_nodes))


def test_seeded_reproducibility_and_sample_independence(layered):
    spec = nulls.make_spec(layered, "layer_configuration", rounds=10)
    a = nulls.sample_nulls(spec, 12, seed=4)
    assert np.array_equal(a, nulls.sample_nulls(spec, 12, seed=4))
    assert not np.array_equal(a, nulls.sample_nulls(spec, 12, seed=5))
    assert np.array_equal(a[5:], nulls.sample_nulls(spec, 7, seed=4, start=5))  # sample i depends on i only


def test_curveball_sort_path_equals_lookup_path(layered, monkeypatch):
    """Large graphs find shared targets by sorting instead of an n x n table: same draws."""
    for model in ("configuration", "layer_configuration"):
        _, a = _draw(layered, model, seed=6)
        monkeypatch.setattr(nulls, "DENSE_LOOKUP_MAX_NODES", 0)
        _, b = _draw(layered, model, seed=6)
        monkeypatch.undo()
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def _spec(edges, signs, n, layers=None, model="configuration", rounds=1):
    e = np.array(edges, dtype=np.int64)
    return nulls.NullSpec(
        n=n,
        src=e[:, 0].copy(),
        tgt=e[:, 1].copy(),
        sign=np.array(signs, dtype=np.int64),
        layer=np.zeros(n, np.int64) if layers is None else np.array(layers, np.int64),
        model=model,
        rounds=rounds,
    )


def test_curveball_sort_path_with_more_row_pairs_than_vertices(monkeypatch):
    """Four layer-0 sources each send one edge into each of five one-vertex layers: 5 blocks of 4 rows, 10 row
    pairs per round on 9 vertices. The sort path keys edges by (pair, target); with pair ids past n those keys
    must still be distinct (here the layer-1 vertex, 8, is numbered right after the layer-5 vertex, 7)."""
    layer_of = {4: 3, 5: 4, 6: 2, 7: 5, 8: 1}
    layers = [0, 0, 0, 0] + [layer_of[v] for v in range(4, 9)]
    edges = [(a, b) for a in range(4) for b in range(4, 9)]
    spec = _spec(edges, [1, -1] * 10, n=9, layers=layers, model="layer_configuration", rounds=3)
    dense = [nulls.draw(spec, np.random.default_rng(i))[0].tolist() for i in range(3)]
    monkeypatch.setattr(nulls, "DENSE_LOOKUP_MAX_NODES", 0)
    assert [nulls.draw(spec, np.random.default_rng(i))[0].tolist() for i in range(3)] == dense


@pytest.mark.parametrize("dense", [True, False])
def test_curveball_swaps_the_two_edges_into_a_shared_target(dense, monkeypatch):
    """Two rows with the same targets (0 -> 2, 3 and 1 -> 2, 3) have nothing to pool: the only move is the
    swap of the two edges into a shared target, which moves signs between the rows. Each trade swaps each
    shared target with probability 1/2, so after one round vertex 0's signed out-edges take each of the four
    configurations with probability 1/4; the unsigned graph never changes."""
    if not dense:
        monkeypatch.setattr(nulls, "DENSE_LOOKUP_MAX_NODES", 0)
    spec = _spec([(0, 2), (1, 2), (0, 3), (1, 3)], [1, -1, 1, -1], n=4)
    seen = collections.Counter()
    for i in range(400):
        s, t, sg = nulls.draw(spec, np.random.default_rng(i))
        assert sorted(zip(s.tolist(), t.tolist(), strict=True)) == [(0, 2), (0, 3), (1, 2), (1, 3)]
        assert np.array_equal(t, spec.tgt) and np.array_equal(sg, spec.sign)  # edges keep head and sign
        seen[tuple(sorted((int(tt), int(g)) for ss, tt, g in zip(s, t, sg, strict=True) if ss == 0))] += 1
    assert set(seen) == {((2, 1), (3, 1)), ((2, 1), (3, -1)), ((2, -1), (3, 1)), ((2, -1), (3, -1))}
    assert all(70 <= c <= 130 for c in seen.values()), seen  # 100 each expected; binomial sd 8.7


def test_curveball_pools_only_the_targets_one_row_has():
    """Rows 0 -> {2, 3} and 1 -> {3, 4}: 3 is shared (its two edges may swap), 2 and 4 are pooled and dealt
    back one to each row. Reachable graphs: vertex 0 gets 2 or 4, and keeps out-degree 2; in-degrees stay."""
    spec = _spec([(0, 2), (0, 3), (1, 3), (1, 4)], [1, 1, -1, 1], n=5)
    outs = collections.Counter()
    for i in range(300):
        s, t, sg = nulls.draw(spec, np.random.default_rng(i))
        _assert_simple(5, s, t)
        assert np.array_equal(t, spec.tgt) and np.array_equal(sg, spec.sign)
        assert np.bincount(s, minlength=5).tolist() == [2, 2, 0, 0, 0]
        outs[tuple(sorted(t[s == 0].tolist()))] += 1
    assert set(outs) == {(2, 3), (3, 4)}
    assert all(110 <= c <= 190 for c in outs.values()), outs


class _ScriptedRng:
    """Hands `_curveball` prepared uniforms instead of random ones. Each round draws n_units + 2m of them: one key
    per row (rows are ordered by group, then by key, and paired in that order), then one flip value per edge id,
    then one pool-order value per edge id."""

    def __init__(self, *rounds):
        self.rounds = [np.array(r, dtype=float) for r in rounds]

    def random(self, size):
        r = self.rounds.pop(0)
        assert size == len(r)
        return r


@pytest.mark.parametrize("dense", [True, False])
def test_curveball_trade_worked_by_hand(dense, monkeypatch):
    """Rows 0 -> {4}, 1 -> {0, 2, 3, 4}, 2 -> {0, 3, 5, 6}. Keys 0.9, 0.1, 0.5 order the rows 1, 2, 0: row 1 (first)
    trades with row 2, row 0 sits out. Shared targets: the two edges into 3 swap rows (the first row's edge 1 -> 3
    has flip value 0.2 < 0.5), those into 0 do not (0.6). 1 -> 2 stays: its target is the partner row's vertex.
    Pool: 1 -> 4, 2 -> 5, 2 -> 6 with pool values 0.7, 0.3, 0.5; the first row held one pool edge and gets the one
    with the lowest value (the edge into 5), row 2 the other two."""
    if not dense:
        monkeypatch.setattr(nulls, "DENSE_LOOKUP_MAX_NODES", 0)
    edges = [(2, 3), (1, 3), (1, 4), (0, 4), (2, 5), (2, 6), (1, 2), (1, 0), (2, 0)]  # edge ids 0..8
    signs = [1, -1, -1, 1, 1, -1, 1, -1, 1]
    spec = _spec(edges, signs, n=7, layers=[0, 1, 2, 3, 3, 3, 3])  # "configuration" pairs rows across layers
    keys = [0.9, 0.1, 0.5]
    flips = [0.8, 0.2, 0.4, 0.3, 0.05, 0.9, 0.1, 0.6, 0.3]  # read only for the first row's shared edges (1, 7)
    pool = [0.5, 0.5, 0.7, 0.5, 0.3, 0.5, 0.5, 0.9, 0.1]  # read only for the pool edges (2, 4, 5)
    rng = _ScriptedRng(keys + flips + pool)
    s, t, sg = nulls.draw(spec, rng)
    assert rng.rounds == []  # one round, one draw
    assert s.tolist() == [1, 2, 2, 0, 1, 2, 1, 1, 2]
    assert np.array_equal(t, spec.tgt) and sg.tolist() == signs


@pytest.mark.parametrize("dense", [True, False])
def test_layer_curveball_pairs_rows_within_each_block(dense, monkeypatch):
    """Rows 0..3 (layer 0) send one edge each into layer 1, rows 4 and 5 (layer 1) into layer 2: two blocks. Keys
    order block (0, 1) as rows 1, 3, 2, 0 (pairs 1-3 and 2-0) and block (1, 2) as 5, 4. Each pair pools its two
    edges and the first row takes the one with the lower pool value: here every pair swaps."""
    if not dense:
        monkeypatch.setattr(nulls, "DENSE_LOOKUP_MAX_NODES", 0)
    edges = [(0, 4), (1, 5), (2, 6), (3, 7), (4, 8), (5, 9)]
    layers = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
    spec = _spec(edges, [1, -1, 1, -1, 1, -1], n=10, layers=layers, model="layer_configuration")
    keys = [0.4, 0.1, 0.3, 0.2, 0.6, 0.5]
    flips = [0.5] * 6  # nothing is shared
    pool = [0.1, 0.8, 0.7, 0.2, 0.3, 0.9]
    s, t, sg = nulls.draw(spec, _ScriptedRng(keys + flips + pool))
    assert s.tolist() == [2, 3, 0, 1, 5, 4]
    assert np.array_equal(t, spec.tgt) and np.array_equal(sg, spec.sign)


def test_curveball_keeps_the_partner_vertex_column_fixed():
    """0 -> 1 and 1 -> 0 with nothing shared: moving either would make a self-loop, so the graph is fixed."""
    spec = _spec([(0, 1), (1, 0), (0, 2)], [1, -1, 1], n=3)
    for i in range(50):
        s, t, _ = nulls.draw(spec, np.random.default_rng(i))
        assert sorted(zip(s.tolist(), t.tolist(), strict=True)) == [(0, 1), (0, 2), (1, 0)]


def test_curveball_more_rounds_reach_the_other_rows():
    """Three rows, one round pairs two of them: with one row always left out per round, a single round leaves
    one row untouched while many rounds can move any edge anywhere."""
    edges = [(0, 3), (1, 4), (2, 5)]
    spec1 = _spec(edges, [1, 1, 1], n=6, rounds=1)
    specn = _spec(edges, [1, 1, 1], n=6, rounds=20)
    for i in range(100):
        s, t, _ = nulls.draw(spec1, np.random.default_rng(i))
        assert sum(a == b for a, b in zip(s.tolist(), [0, 1, 2], strict=True)) >= 1  # one row sat out the only round
    tails_of_3 = {int(nulls.draw(specn, np.random.default_rng(i))[0][0]) for i in range(100)}
    assert tails_of_3 == {0, 1, 2}


# ---------------------------------------------------------------- null models: exact small cases


def test_erdos_renyi_and_layer_er_fill_a_complete_graph_exactly():
    """As many edges as allowed pairs: the only simple graph is the complete one, whatever the seed (a pair range
    too small cannot hold the edges; one too large would draw loops or vertices that do not exist)."""
    pairs = [(a, b) for a in range(5) for b in range(5) if a != b]
    signs = [1, -1] * 10
    er = _spec(pairs, signs, n=5, model="erdos_renyi")
    layer_er = _spec(pairs, signs, n=5, layers=[0, 0, 0, 1, 1], model="layer_er")  # blocks of 6, 6, 6 and 2 pairs
    for seed in range(3):
        s, t, sg = nulls.draw(er, np.random.default_rng(seed))
        assert sorted(zip(s.tolist(), t.tolist(), strict=True)) == pairs
        assert sg.tolist() == signs  # keep: the k-th drawn edge takes the k-th sign
        s, t, sg = nulls.draw(layer_er, np.random.default_rng(seed))
        assert sorted(zip(s.tolist(), t.tolist(), strict=True)) == pairs
        assert sorted(sg.tolist()) == sorted(signs)


def test_erdos_renyi_ignores_layers():
    """All six real edges run from layer 0 to layer 1; Erdős–Rényi places its edges among all 20 pairs."""
    layers = np.array([0, 0, 1, 1, 1])
    spec = _spec([(0, 2), (0, 3), (0, 4), (1, 2), (1, 3), (1, 4)], [1] * 6, n=5, layers=layers, model="erdos_renyi")
    blocks = set()
    for seed in range(5):
        s, t, _ = nulls.draw(spec, np.random.default_rng(seed))
        blocks |= set(zip(layers[s].tolist(), layers[t].tolist(), strict=True))
    assert blocks == {(0, 0), (0, 1), (1, 0), (1, 1)}


def test_null_setups_are_cached_per_spec_and_not_pickled():
    """The per-spec setups are built once; a pickled spec (sent to a worker) arrives without them and draws the
    same samples."""
    spec = _spec([(0, 2), (1, 2), (0, 3), (2, 3), (1, 3)], [1, -1, 1, -1, 1], n=4, layers=[0, 0, 1, 2])
    blocks = nulls._layer_er_setup(spec)
    assert nulls._layer_er_setup(spec) is blocks
    setup = nulls._curveball_setup(spec)
    assert nulls._curveball_setup(spec) is setup
    clone = pickle.loads(pickle.dumps(spec))
    assert clone._cache == {} and set(spec._cache) == {"layer_er", "curveball"}  # the original keeps its cache
    assert (clone.n, clone.model, clone.signs, clone.rounds, clone.families, clone.ffl_induced) == (
        4,
        "configuration",
        "keep",
        1,
        ("triad", "ffl"),
        True,
    )
    for name in ("src", "tgt", "sign", "layer"):
        assert np.array_equal(getattr(clone, name), getattr(spec, name))
    for seed in range(3):
        a, b = nulls.draw(spec, np.random.default_rng(seed)), nulls.draw(clone, np.random.default_rng(seed))
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_null_spec_refuses_unknown_settings_and_names_the_known_ones():
    ok = dict(n=3, src=np.array([0]), tgt=np.array([1]), sign=np.array([1]), layer=np.zeros(3, np.int64))
    for model in nulls.NULL_MODELS:
        assert nulls.NullSpec(**ok, model=model, rounds=1, families=nulls.FAMILIES).rounds == 1
    cases = [
        (
            dict(model="rewire"),
            "unknown null model 'rewire'; known: configuration, erdos_renyi, layer_er, layer_configuration",
        ),
        (dict(model="configuration", signs="flip"), "unknown sign mode 'flip'; known: keep, shuffle"),
        (
            dict(model="configuration", families=("triad", "motif5", "dyad")),
            "unknown statistic family 'motif5'; known: triad, ffl, census4",
        ),
        (dict(model="configuration", rounds=0), "rounds must be >= 1"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            nulls.NullSpec(**ok, **kwargs)


def test_make_spec_copies_the_graph_and_passes_every_setting():
    g = AttributionGraph.from_edges([(0, 2), (1, 2), (2, 3)], weights=[0.5, -1.0, 2.0], layers=[0, 0, 1, 2])
    spec = nulls.make_spec(g, "layer_er")
    assert (spec.n, spec.model, spec.signs, spec.rounds, spec.families, spec.ffl_induced) == (
        4,
        "layer_er",
        "keep",
        nulls.DEFAULT_ROUNDS,
        ("triad", "ffl"),
        True,
    )
    assert nulls.DEFAULT_ROUNDS == 30
    assert spec.src.tolist() == [0, 1, 2] and spec.tgt.tolist() == [2, 2, 3]
    assert spec.sign.tolist() == [1, -1, 1] and spec.layer.tolist() == [0, 0, 1, 2]
    other = nulls.make_spec(
        g, "configuration", signs="shuffle", rounds=7, families=["census4", "ffl"], ffl_induced=False
    )
    assert (other.model, other.signs, other.rounds, other.families, other.ffl_induced) == (
        "configuration",
        "shuffle",
        7,
        ("census4", "ffl"),
        False,
    )


def test_graph_stats_concatenates_the_families_in_spec_order():
    """FFL 0 -> 1 -> 2 (+ - +) with a tail 2 -> 3 and an isolated vertex 4, counted by hand."""
    edges = [(0, 1), (1, 2), (0, 2), (2, 3)]
    spec = nulls.NullSpec(
        n=5,
        src=np.array([a for a, _ in edges]),
        tgt=np.array([b for _, b in edges]),
        sign=np.array([1, -1, 1, 1]),
        layer=np.zeros(5, np.int64),
        model="erdos_renyi",
        families=("census4", "triad", "ffl"),
    )
    assert nulls.family_sizes(spec) == {"census4": 199, "triad": 16, "ffl": 8}
    triads = {"003": 2, "012": 5, "021C": 2, "030T": 1}  # the 10 triads of 5 vertices
    ffl = {"+-+": 1}
    # the only connected 4-set is {0, 1, 2, 3}; its class is named by its canonical code
    code = census.canonical_code4(edges)
    quad = [int(name.endswith(f"-{code:03x}")) for name in census.census4_names().values()]
    assert sum(quad) == 1
    expected = quad + [triads.get(k, 0) for k in census.TRIAD_LABELS] + [ffl.get(p, 0) for p in signed.FFL_PATTERNS]
    out = nulls.real_stats(spec)
    assert out.dtype == np.int64 and out.tolist() == expected
    assert nulls.graph_stats(spec, spec.src, spec.tgt, spec.sign).tolist() == expected
    assert nulls.sample_nulls(spec, 0).shape == (0, 223)


def test_graph_stats_counts_ffls_induced_or_not_as_the_spec_says():
    """0 -> 1 -> 2 with 0 -> 2 and the back edge 2 -> 0: one FFL, but not an induced one."""
    edges = np.array([(0, 1), (1, 2), (0, 2), (2, 0)])
    for induced, count in ((True, 0), (False, 1)):
        spec = nulls.NullSpec(
            n=3,
            src=edges[:, 0],
            tgt=edges[:, 1],
            sign=np.ones(4, np.int64),
            layer=np.zeros(3, np.int64),
            model="erdos_renyi",
            families=("ffl",),
            ffl_induced=induced,
        )
        assert nulls.real_stats(spec).tolist() == [count, 0, 0, 0, 0, 0, 0, 0]


class _InlinePool:
    """Stands in for the process pool: runs `map` here and records what it was given."""

    def __init__(self):
        self.chunks: list[list[int]] = []
        self.seeds: list[int] = []
        self.shutdowns = 0

    def map(self, fn, specs, seeds, chunks):
        self.chunks += [list(c) for c in chunks]
        self.seeds += list(seeds)
        return map(fn, specs, seeds, chunks)

    def shutdown(self):
        self.shutdowns += 1


def _er_spec():
    edges = [(0, 1), (1, 2), (2, 0), (0, 3), (3, 4), (4, 5), (5, 3), (1, 4)]
    return _spec(edges, [1, -1, 1, 1, -1, 1, 1, -1], n=6, model="erdos_renyi")


def test_sample_nulls_runs_here_with_one_worker_or_too_few_samples(monkeypatch):
    spec = _er_spec()

    def no_pool(workers):
        raise AssertionError(f"a process pool of {workers} was made")

    monkeypatch.setattr(nulls, "make_executor", no_pool)
    expected = np.stack([nulls.sample_one(spec, 0, i) for i in range(5)])
    assert not np.array_equal(expected, np.stack([nulls.sample_one(spec, 1, i) for i in range(5)]))
    out = nulls.sample_nulls(spec, 5)  # defaults: seed 0, one worker, from sample 0
    assert out.dtype == np.int64 and np.array_equal(out, expected)
    assert np.array_equal(nulls.sample_nulls(spec, 5, workers=1), expected)
    assert np.array_equal(nulls.sample_nulls(spec, 3, workers=2), expected[:3])  # fewer than 2 samples per worker
    assert np.array_equal(nulls.sample_nulls(spec, 1), expected[:1])
    pool = _InlinePool()
    assert np.array_equal(nulls.sample_nulls(spec, 3, workers=2, executor=pool), expected[:3])
    assert pool.chunks == []
    for samples in (0, -1):
        empty = nulls.sample_nulls(spec, samples, workers=2)
        assert empty.shape == (0, 24) and empty.dtype == np.int64


def test_sample_nulls_deals_chunks_to_the_pool_and_shuts_down_only_its_own(monkeypatch):
    """About four chunks per worker (ceil(samples / min(samples, 4 * workers)) samples each), every sample once,
    in order; the result equals the serial one."""
    spec = _er_spec()
    own = _InlinePool()
    made = []
    monkeypatch.setattr(nulls, "make_executor", lambda workers: made.append(workers) or own)
    serial = nulls.sample_nulls(spec, 13, seed=3, start=2)
    pool = _InlinePool()
    out = nulls.sample_nulls(spec, 10, seed=3, start=2, workers=2, executor=pool)
    assert np.array_equal(out, serial[:10])
    assert pool.chunks == [[2, 3], [4, 5], [6, 7], [8, 9], [10, 11]]  # 8 chunks asked, 2 samples each
    assert pool.seeds == [3] * 5 and pool.shutdowns == 0  # a caller's pool stays up
    pool = _InlinePool()
    nulls.sample_nulls(spec, 4, seed=3, workers=2, executor=pool)  # two samples per worker: pooled
    assert pool.chunks == [[0], [1], [2], [3]]
    assert made == []  # given a pool, it makes none
    out = nulls.sample_nulls(spec, 13, seed=3, start=2, workers=3)
    assert np.array_equal(out, serial) and made == [3] and own.shutdowns == 1
    assert own.chunks == [[2, 3], [4, 5], [6, 7], [8, 9], [10, 11], [12, 13], [14]]  # 12 asked, 2 each


_PINNED = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def test_make_executor_pins_blas_threads_only_while_it_starts_spawned_workers(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "7")
    seen: dict = {"submits": []}

    def env():
        return {k: os.environ.get(k) for k in _PINNED}

    class FakePool:
        def __init__(self, max_workers=None, mp_context=None):
            seen["max_workers"] = max_workers
            seen["start_method"] = None if mp_context is None else mp_context.get_start_method()
            seen["env"] = env()

        def submit(self, fn):
            seen["submits"].append((fn, env()))

    monkeypatch.setattr(nulls, "ProcessPoolExecutor", FakePool)
    pool = nulls.make_executor(3)
    assert isinstance(pool, FakePool)
    assert (seen["max_workers"], seen["start_method"]) == (3, "spawn")
    pinned = dict.fromkeys(_PINNED, "1")
    assert seen["env"] == pinned
    assert seen["submits"] == [(nulls._warm, pinned)] * 3  # one warm-up task per worker, each started pinned
    assert env() == {"OMP_NUM_THREADS": "4", "OPENBLAS_NUM_THREADS": None, "MKL_NUM_THREADS": "7"}
    assert nulls._warm() is None


def test_worker_count_does_not_change_results(layered):
    spec = nulls.make_spec(layered, "configuration", rounds=10)
    one = nulls.sample_nulls(spec, 16, seed=9, workers=1)
    two = nulls.sample_nulls(spec, 16, seed=9, workers=2)
    assert np.array_equal(one, two)


def test_curveball_mixes_to_the_stationary_mean():
    """Started from a fixed graph, more rounds must not move the null mean: 30 rounds are enough."""
    g = layered_graph(4, 10, 150, seed=2)
    means = {}
    for rounds in (30, 120):
        x = nulls.sample_nulls(nulls.make_spec(g, "configuration", rounds=rounds, families=("triad",)), 150, seed=1)
        means[rounds] = (x[:, 8].mean(), x[:, 8].std())
    (m30, s30), (m120, _) = means[30], means[120]
    assert abs(m30 - m120) < 0.35 * s30


# ---------------------------------------------------------------- statistics and degeneracy


def test_zscores_sp_and_p_values():
    null = np.array([[1, 5, 2], [3, 5, 2], [2, 5, 2], [2, 5, 2]])
    real = np.array([4, 5, 9])
    z, mean, std = stats.zscores(real, null)
    assert mean[0] == 2 and np.isclose(z[0], 2 / np.sqrt(0.5))
    assert np.isnan(z[1]) and np.isnan(z[2])  # std 0: undefined, not inf
    sp_ = stats.significance_profile(np.array([3.0, np.nan, -4.0]))
    assert np.allclose(sp_[[0, 2]], [0.6, -0.8]) and np.isnan(sp_[1])
    p = stats.empirical_p(real, null)
    assert p[0] == pytest.approx(2 * 1 / 5)  # no null >= 4: (1+0)/(4+1), two-sided
    assert p[1] == 1.0


def test_degeneracy_detects_fixed_counts():
    # every block complete bipartite: degree-preserving rewiring inside blocks cannot change anything
    edges = [(a, b) for a in range(3) for b in range(3, 6)] + [(a, b) for a in range(3, 6) for b in range(6, 8)]
    g = AttributionGraph.from_edges(edges, layers=[0, 0, 0, 1, 1, 1, 2, 2])
    spec = nulls.make_spec(g, "layer_configuration", rounds=5)
    x = nulls.sample_nulls(spec, 20, seed=0)
    res = stats.summarize_family(nulls.real_stats(spec)[:16], x[:, :16], census.TRIAD_LABELS)
    deg = res["degeneracy"]
    assert deg["varying"] == [] and deg["free_dimensions"] == 0
    assert set(deg["fixed"]) == set(census.TRIAD_LABELS)
    assert all(np.isnan(v) for v in res["z"].values())
    assert "fixed by the null" in deg["message"]


def test_degeneracy_finds_the_single_free_z_of_layer_configuration_on_a_dag():
    """Layer-preserving rewiring of a layered DAG fixes edges, in/out 2-stars and 2-paths: one free z."""
    g = layered_graph(5, 10, 180, seed=8)
    spec = nulls.make_spec(g, "layer_configuration", rounds=10)
    x = nulls.sample_nulls(spec, 60, seed=1)
    real = nulls.real_stats(spec)
    res = stats.summarize_family(real[:16], x[:, :16], census.TRIAD_LABELS)
    deg = res["degeneracy"]
    assert set(deg["varying"]) == {"003", "012", "021D", "021U", "021C", "030T"}
    assert deg["free_dimensions"] == 1 and deg["single_free_z"] and deg["degenerate"]
    assert deg["free"] == ["030T"]
    assert deg["determined"]["021D"]["coef"] == {"030T": -1.0}  # 021D + 030T = sum C(out, 2)
    assert deg["determined"]["012"]["coef"] == {"030T": 3.0}
    assert deg["real_obeys_relations"]
    z = res["z"]
    assert np.allclose([abs(z[k]) for k in deg["varying"]], abs(z["030T"]))
    # Erdős–Rényi fixes only the total and the edge count: two constraints
    xe = nulls.sample_nulls(nulls.make_spec(g, "erdos_renyi"), 60, seed=1)
    de = stats.degeneracy(xe[:, :16], census.TRIAD_LABELS, real[:16])
    assert de["free_dimensions"] == len(de["varying"]) - 2


def test_degeneracy_on_a_constructed_linear_relation():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 50, 200)
    b = rng.integers(0, 50, 200)
    x = np.column_stack([a, b, 7 + 2 * a - b, np.full(200, 3)])
    d = stats.degeneracy(x, ["a", "b", "c", "k"], real=np.array([10, 10, 17, 3]))
    assert d["fixed"] == {"k": 3}
    assert d["free_dimensions"] == 2 and d["free"] == ["b", "c"]
    assert d["determined"]["a"]["coef"] == {"b": 0.5, "c": 0.5} and d["determined"]["a"]["intercept"] == -3.5
    assert d["real_obeys_relations"]
    d = stats.degeneracy(x[:2], ["a", "b", "c", "k"])
    assert d["insufficient_samples"]


def _relation_null():
    a = np.array([0, 1, 2, 3, 0, 5, 1, 4])
    b = np.array([1, 0, 4, 2, 3, 3, 5, 0])
    return np.column_stack([a, b, 7 + 2 * a - b, np.full(8, 3)]), a, b


def test_degeneracy_reports_every_relation_exactly():
    x, a, b = _relation_null()
    real = np.array([10, 10, 17, 3])  # obeys c = 7 + 2a - b, i.e. a = (c + b - 7) / 2
    d = stats.degeneracy(x, ["a", "b", "c", "k"], real=real)
    rel = d["determined"]["a"]
    assert {k: v for k, v in d.items() if k not in ("determined",)} == {
        "samples": 8,
        "fixed": {"k": 3},
        "varying": ["a", "b", "c"],
        "free_dimensions": 2,
        "free": ["b", "c"],
        "degenerate": True,
        "single_free_z": False,
        "insufficient_samples": False,
        "fixed_real_differs": [],
        "real_obeys_relations": True,
        "message": "1 class(es) fixed by the null (z undefined): k; 2 free dimension(s) among 3 varying classes; "
        "a are exact linear functions of b, c",
    }
    assert rel["coef"] == {"b": 0.5, "c": 0.5} and rel["intercept"] == -3.5 and rel["real_residual"] == 0.0
    # in z units: z_a = sum_f coef_f * std_f / std_a * z_f
    sd = x.std(axis=0)
    assert rel["z_coef"] == {
        "b": pytest.approx(0.5 * sd[1] / sd[0], abs=1e-9),
        "c": pytest.approx(0.5 * sd[2] / sd[0], abs=1e-9),
    }
    # a real graph off the relation, and off the fixed count
    d = stats.degeneracy(x, ["a", "b", "c", "k"], real=np.array([10, 10, 20, 4]))
    assert d["real_obeys_relations"] is False and d["determined"]["a"]["real_residual"] == -1.5
    assert d["fixed_real_differs"] == ["k"]
    assert d["message"].startswith(
        "1 class(es) fixed by the null (z undefined): k; real count differs from the "
        "null's fixed value for k; 2 free dimension(s)"
    )
    assert "real_obeys_relations" not in stats.degeneracy(x, ["a", "b", "c", "k"])


def test_degeneracy_single_free_z_and_too_few_samples():
    a = np.array([0, 1, 2, 3, 5, 8])
    x = np.column_stack([a, 3 * a + 1, 10 - a])
    d = stats.degeneracy(x, ["a", "b", "c"])
    assert (d["free_dimensions"], d["free"], d["degenerate"], d["single_free_z"]) == (1, ["c"], True, True)
    assert d["determined"]["a"]["coef"] == {"c": -1.0} and d["determined"]["a"]["intercept"] == 10.0
    assert d["determined"]["b"]["coef"] == {"c": -3.0} and d["determined"]["b"]["intercept"] == 31.0
    assert d["determined"]["b"]["z_coef"] == {"c": -1.0}
    assert d["message"] == (
        "1 free dimension(s) among 3 varying classes; only one z is free: every other varying "
        "class is a linear function of c"
    )
    # three varying classes need four samples
    few = stats.degeneracy(x[:3], ["a", "b", "c"])
    assert few["insufficient_samples"] and few["determined"] == {} and few["free_dimensions"] == 1
    assert few["message"] == "too few samples (3) to resolve 3 varying classes"
    assert stats.degeneracy(x[:4], ["a", "b", "c"])["insufficient_samples"] is False
    one = stats.degeneracy(x[:1], ["a", "b", "c"], real=np.array([0, 1, 11]))
    assert one["fixed"] == {"a": 0, "b": 1, "c": 10} and one["varying"] == [] and one["fixed_real_differs"] == ["c"]
    assert one["message"] == (
        "3 class(es) fixed by the null (z undefined): a, b, c; real count differs from the "
        "null's fixed value for c; too few samples (1) to resolve 0 varying classes"
    )
    none = stats.degeneracy(np.zeros((0, 3)), ["a", "b", "c"])
    assert none == {
        "samples": 0,
        "fixed": {},
        "varying": [],
        "free_dimensions": 0,
        "free": [],
        "determined": {},
        "degenerate": False,
        "single_free_z": False,
        "insufficient_samples": True,
        "message": "no null samples",
    }
    free = stats.degeneracy(np.column_stack([a, a % 3, a * a]), ["a", "b", "c"])
    assert (free["free_dimensions"], free["degenerate"], free["message"]) == (
        3,
        False,
        "3 free dimension(s) among 3 varying classes",
    )
    fixed_only = stats.degeneracy(np.full((4, 2), 5), ["a", "b"])
    assert fixed_only["message"] == "2 class(es) fixed by the null (z undefined): a, b"
    assert stats.degeneracy(np.zeros((5, 1)), ["a"])["message"] == "1 class(es) fixed by the null (z undefined): a"


def test_tidy_rounds_only_float_noise():
    """Within 1e-6 (relative, at least absolute 1e-6) of an integer: that integer; else 9 decimals."""
    assert stats._tidy(2.0000000001) == 2.0 and isinstance(stats._tidy(2.0000000001), float)
    assert stats._tidy(0.1234567891234) == 0.123456789
    assert stats._tidy(1.5) == 1.5 and stats._tidy(-3.5) == -3.5
    assert stats._tidy(100.00001) == 100.0 and stats._tidy(100.001) == 100.001
    assert stats._tidy(2e6 + 0.5) == 2e6  # 0.5 is noise at 2e6 (tolerance 2)
    assert stats._tidy(1.000002) == 1.000002 and stats._tidy(0.0000005) == 0.0


def test_summarize_family_exact():
    null = np.array([[1, 5, 2], [3, 5, 2], [2, 5, 2], [2, 5, 2]])
    real = np.array([4, 5, 9])
    out = stats.summarize_family(real, null, ["x", "y", "w"], derived={"xw": ["x", "w"]})
    assert out["real"] == {"x": 4, "y": 5, "w": 9, "xw": 13}
    assert out["mean"] == {"x": 2.0, "y": 5.0, "w": 2.0, "xw": 4.0}
    assert (
        out["std"]["x"] == pytest.approx(np.sqrt(0.5))
        and out["std"]["y"] == 0.0
        and out["std"]["xw"] == pytest.approx(np.sqrt(0.5))
    )
    assert out["z"]["x"] == pytest.approx(2 / np.sqrt(0.5)) and np.isnan(out["z"]["y"]) and np.isnan(out["z"]["w"])
    assert out["z"]["xw"] == pytest.approx(9 / np.sqrt(0.5))
    assert out["p"] == {"x": 0.4, "y": 1.0, "w": 0.4, "xw": 0.4}
    assert out["significance_profile"]["x"] == 1.0 and np.isnan(out["significance_profile"]["y"])
    assert "xw" not in out["significance_profile"] and out["degeneracy"]["fixed"] == {"y": 5, "w": 2}
    assert out["degeneracy"]["fixed_real_differs"] == ["w"]
    empty = stats.summarize_family(real, np.zeros((0, 3), dtype=int), ["x", "y", "w"], derived={"xw": ["x", "w"]})
    assert all(np.isnan(v) for v in empty["p"].values()) and empty["degeneracy"]["samples"] == 0


def test_empirical_p_counts_ties_on_both_sides():
    null = np.array([[1], [2], [3], [4]])
    assert stats.empirical_p(np.array([4]), null).tolist() == [0.8]  # 1 of 4 >= 4, 4 of 4 <= 4: 2 * 2/5
    assert stats.empirical_p(np.array([5]), null).tolist() == [0.4]
    assert stats.empirical_p(np.array([0]), null).tolist() == [0.4]
    assert stats.empirical_p(np.array([2]), null).tolist() == [1.0]  # capped
    z, mean, std = stats.zscores(np.array([3.0, 1.0]), np.array([[1.0, 1.0], [3.0, 1.0]]))
    assert z[0] == 1.0 and np.isnan(z[1])  # std 0: undefined
    assert mean.tolist() == [2.0, 1.0] and std.tolist() == [1.0, 0.0]
    assert np.isnan(stats.significance_profile(np.array([0.0, 0.0]))).all()
    assert stats.significance_profile(np.array([3.0, 4.0])).tolist() == [0.6, 0.8]


def _signed_graph(edges_signs, n):
    g = ig.Graph(n=n, edges=[e for e, _ in edges_signs], directed=True)
    g.es["sign"] = [sg for _, sg in edges_signs]
    return g


def test_ffl_patterns_coherence_and_bad_patterns():
    assert signed.COHERENT == ("+++", "+--", "-+-", "--+") and signed.INCOHERENT == ("++-", "+-+", "-++", "---")
    for bad in ("++", "++++", "+x+", ""):
        with pytest.raises(ValueError, match=re.escape(f"bad FFL pattern {bad!r}")):
            signed.is_coherent(bad)
    assert signed.pattern_of(1, -1, -1) == "+--" and signed.pattern_of(-2, 3, -1) == "-+-"


def test_ffl_instances_and_census_on_raw_igraph_exact():
    # FFLs 0->1->2 (0->2), and 3->4->5 (3->5) with a back edge 5->4, which also closes 3->5->4 (3->4):
    # neither of the last two is induced
    g = _signed_graph(
        [((0, 1), 1), ((1, 2), -1), ((0, 2), -1), ((3, 4), -1), ((4, 5), -1), ((3, 5), 1), ((5, 4), 1), ((6, 7), 1)],
        n=8,
    )
    assert signed.ffl_instances(g) == [(0, 1, 2, "+--")]  # induced by default
    assert signed.ffl_instances(g, induced=False) == [(0, 1, 2, "+--"), (3, 4, 5, "--+"), (3, 5, 4, "++-")]
    for back in ((2, 0), (1, 0), (2, 1)):  # any one reverse edge makes the loop non-induced
        h = _signed_graph([((0, 1), 1), ((1, 2), 1), ((0, 2), 1), (back, 1)], n=3)
        assert signed.ffl_instances(h) == [] and (0, 1, 2, "+++") in signed.ffl_instances(h, induced=False)
    e = np.array(g.get_edgelist())
    counts = signed.ffl_counts(8, e[:, 0], e[:, 1], np.array(g.es["sign"]))  # induced by default
    assert dict(zip(signed.FFL_PATTERNS, counts.tolist(), strict=True)) == {
        p: int(p == "+--") for p in signed.FFL_PATTERNS
    }
    loose = signed.ffl_counts(8, e[:, 0], e[:, 1], np.array(g.es["sign"]), induced=False)
    assert loose.tolist() == [int(p in ("+--", "--+", "++-")) for p in signed.FFL_PATTERNS]
    assert signed.ffl_census(g) == signed.summarize(counts)
    assert signed.ffl_census(g, induced=False) == signed.summarize(loose)
    empty = ig.Graph(n=3, directed=True)
    empty.es["sign"] = []
    assert signed.ffl_census(empty) == signed.summarize(np.zeros(8, dtype=np.int64))
    with pytest.raises(ValueError, match="unknown method 'fast'"):
        signed.ffl_counts(8, e[:, 0], e[:, 1], np.array(g.es["sign"]), method="fast")


def test_census4_on_raw_igraph_counts_induced_subgraphs():
    g = ig.Graph(n=5, edges=[(0, 1), (1, 2), (2, 3), (0, 4)], directed=True)
    counts = census.census4(g)
    assert len(counts) == 199 and all(isinstance(v, int) for v in counts.values())
    # connected 4-node induced subgraphs: {0,1,2,3} and {0,1,2,4} (paths) and {4,0,1,... }: brute force
    import itertools as it

    expected = collections.Counter()
    names = census.census4_names()
    for quad in it.combinations(range(5), 4):
        sub = g.induced_subgraph(quad)
        if sub.is_connected(mode="weak"):
            expected[names[sub.isoclass()]] += 1
    assert {k: v for k, v in counts.items() if v} == dict(expected)
    assert (
        census.census4(AttributionGraph.from_edges([(0, 1), (1, 2), (2, 3), (0, 4)], layers=[0, 1, 2, 3, 1])) == counts
    )


def test_triad_census_refuses_undirected_graphs():
    with pytest.raises(TypeError, match="^expected a directed igraph.Graph or an AttributionGraph$"):
        census.triad_census(ig.Graph(n=3, edges=[(0, 1)], directed=False))
    with pytest.raises(TypeError, match="^expected a directed igraph.Graph or an AttributionGraph$"):
        census.triad_census([(0, 1)])
    g = ig.Graph(n=4, edges=[(0, 1), (1, 2)], directed=True)
    expected = dict(zip(census.TRIAD_LABELS, [int(v) for v in g.triad_census()], strict=True))
    for method in ("auto", "bits", "sparse", "igraph"):
        assert census.triad_census(g, method=method) == expected
    with pytest.raises(ValueError, match="bogus"):
        census.triad_census(g, method="bogus")


def test_degeneracy_edges_of_its_flags_and_messages():
    # one varying class: a single free z, but nothing else to express with it
    one = stats.degeneracy(np.array([[1, 5], [2, 5], [4, 5]]), ["a", "k"])
    assert (one["free"], one["single_free_z"], one["degenerate"]) == (["a"], True, False)
    assert (
        one["message"] == "1 class(es) fixed by the null (z undefined): k; 1 free dimension(s) among 1 varying classes"
    )
    # two samples resolve one varying class
    two = stats.degeneracy(np.array([[1], [2]]), ["a"])
    assert two["insufficient_samples"] is False and two["free"] == ["a"]
    assert two["message"] == "1 free dimension(s) among 1 varying classes"
    # nothing fixed, nothing varying: no degeneracy to report
    assert (
        stats._message(
            {
                "fixed": {},
                "varying": [],
                "insufficient_samples": False,
                "single_free_z": False,
                "degenerate": False,
                "free_dimensions": 0,
                "samples": 3,
            }
        )
        == "no degeneracy"
    )
    # a free class before a determined one: [a, 2c, b, c] has basis a, b, c and 2c determined by c
    a = np.array([0, 1, 2, 3, 0, 5, 1, 4])
    b = np.array([1, 0, 4, 2, 3, 3, 5, 0])
    c = np.array([2, 2, 0, 1, 5, 3, 4, 1])
    d = stats.degeneracy(np.column_stack([a, 2 * c, b, c]), ["a", "2c", "b", "c"], real=np.array([1, 6, 1, 3]))
    assert d["free"] == ["a", "b", "c"] and list(d["determined"]) == ["2c"]
    assert d["determined"]["2c"]["coef"] == {"a": 0.0, "b": 0.0, "c": 2.0} and d["real_obeys_relations"]
    # two determined classes, the first broken by the real graph: the whole is inconsistent
    e = stats.degeneracy(np.column_stack([a + b, a - b, a, b]), ["s", "d", "a", "b"], real=np.array([9, 0, 2, 2]))
    assert list(e["determined"]) == ["s", "d"] and e["determined"]["s"]["real_residual"] == 5.0
    assert e["determined"]["d"]["real_residual"] == 0.0 and e["real_obeys_relations"] is False
    assert e["message"].endswith("s, d are exact linear functions of a, b")
    two_fixed = stats.degeneracy(
        np.column_stack([a, np.full(8, 1), np.full(8, 2)]), ["a", "f", "g"], real=np.array([0, 0, 0])
    )
    assert "real count differs from the null's fixed value for f, g" in two_fixed["message"]


def test_ffl_pattern_signs_and_first_valid_intermediate():
    assert signed.is_coherent("--+") and not signed.is_coherent("-++") and signed.is_coherent("+++")
    with pytest.raises(ValueError, match="bad FFL pattern"):
        signed.is_coherent("+X+")
    # a -> c through two intermediates; the first (1) has a back edge 1 -> 0, the second (2) is a clean FFL
    g = _signed_graph([((0, 3), 1), ((0, 1), 1), ((1, 3), 1), ((1, 0), 1), ((0, 2), -1), ((2, 3), 1)], n=4)
    assert signed.ffl_instances(g) == [(0, 2, 3, "-++")]


def test_canonical_code4_exact():
    """12 bits, one per ordered pair of the 4 nodes in the order (0,1), (0,2), (0,3), (1,0), ..., (3,2); the code
    is the largest over the 24 relabellings."""
    assert census._pairs4() == [
        (0, 1),
        (0, 2),
        (0, 3),
        (1, 0),
        (1, 2),
        (1, 3),
        (2, 0),
        (2, 1),
        (2, 3),
        (3, 0),
        (3, 1),
        (3, 2),
    ]
    assert census.canonical_code4([]) == 0
    assert census.canonical_code4([(2, 3)]) == 0b100000000000
    assert census.canonical_code4([(0, 1), (1, 0)]) == 0b100100000000
    assert census.canonical_code4([(1, 2), (2, 3)]) == 0b100010000000  # relabelled to 0 -> 1 -> 2
    assert census.canonical_code4([(a, b) for a in range(4) for b in range(4) if a != b]) == 0xFFF
    # isomorphic graphs share the code; a reversed path is a different class
    path = census.canonical_code4([(0, 1), (1, 2), (2, 3)])
    assert path == 0b100010001000
    assert path == census.canonical_code4([(3, 2), (2, 0), (0, 1)]) == census.canonical_code4([(1, 3), (3, 0), (0, 2)])
    assert census.canonical_code4([(0, 1), (0, 2), (0, 3)]) != census.canonical_code4([(1, 0), (2, 0), (3, 0)])


# ---------------------------------------------------------------- loader


def test_load_haiku_fixture():
    g = load_neuronpedia(HAIKU, drop_errors=False)
    assert (g.n_nodes, g.n_edges) == (86, 1591)
    assert g.kind_counts() == {"feature": 68, "error": 8, "embedding": 8, "logit": 2}
    vs = g.graph.vs
    kinds = np.array(vs["kind"])
    lay = g.layers
    assert set(lay[kinds == "embedding"]) == {-1}
    assert set(lay[kinds == "logit"]) == {lay[kinds == "feature"].max() + 1} == {16}
    assert set(vs.select(kind="error")["raw_layer"]) == {"0"}
    v = vs.find(id="1_7005416_1")
    assert (v["layer"], v["position"], v["kind"]) == (1, 1, "feature")
    assert set(np.unique(g.signs)) == {-1, 1} and (g.weights > 0).sum() == (g.signs > 0).sum()
    e = g.graph.es[g.graph.get_eid(vs.find(id="1_7005416_1").index, vs.find(id="16_26512360_8").index)]
    assert e["weight"] == pytest.approx(0.03294616937637329) and e["sign"] == 1
    d = load_neuronpedia(HAIKU)
    assert (d.n_nodes, d.n_edges) == (78, 1282) and d.dropped["error_nodes"] == 8
    assert d.dropped["links_to_dropped_nodes"] == 309
    small = load_neuronpedia(HAIKU, keep_embeddings=False, keep_logits=False, weight_threshold=0.5)
    assert small.kind_counts() == {"feature": 68} and np.all(np.abs(small.weights) > 0.5)


def _doc(**over):
    doc = {
        "metadata": {"slug": "t"},
        "qParams": {},
        "nodes": [
            {"node_id": "E_5_0", "feature_type": "embedding", "layer": "E", "ctx_idx": 0},
            {"node_id": "0_7_0", "feature_type": "cross layer transcoder", "layer": "0", "ctx_idx": 0},
            {"node_id": "0_1_0", "feature_type": "mlp reconstruction error", "layer": "1", "ctx_idx": 0},
            {"node_id": "1_9_0", "feature_type": "cross layer transcoder", "layer": "1", "ctx_idx": 0},
            {"node_id": "3_42_0", "feature_type": "logit", "layer": "3", "ctx_idx": 0},
        ],
        "links": [
            {"source": "E_5_0", "target": "0_7_0", "weight": 1.0},
            {"source": "0_7_0", "target": "1_9_0", "weight": -0.5},
            {"source": "0_1_0", "target": "1_9_0", "weight": 0.2},
            {"source": "1_9_0", "target": "3_42_0", "weight": 2.0},
        ],
    }
    doc.update(over)
    return doc


def _write(tmp_path, doc, name="g.json"):
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return p


def test_loader_small_doc_layers_duplicates_and_self_loops(tmp_path):
    doc = _doc()
    doc["links"] += [
        {"source": "0_7_0", "target": "1_9_0", "weight": 0.25},  # duplicate: summed to -0.25
        {"source": "1_9_0", "target": "1_9_0", "weight": 1.0},  # self-loop: dropped
    ]
    g = load_neuronpedia(_write(tmp_path, doc))
    assert g.graph.vs["id"] == ["E_5_0", "0_7_0", "1_9_0", "3_42_0"]
    assert g.graph.vs["layer"] == [-1, 0, 1, 2]  # logit: max feature/error layer + 1, not the file's 3
    assert g.dropped["self_loops"] == 1 and g.dropped["duplicate_links_merged"] == 1
    e = g.graph.es[g.graph.get_eid(1, 2)]
    assert e["weight"] == pytest.approx(-0.25) and e["sign"] == -1
    ge = load_neuronpedia(_write(tmp_path, doc), drop_errors=False)
    assert ge.n_nodes == 5 and "error" in ge.graph.vs["kind"]


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda d: d.pop("nodes"), "missing top-level field 'nodes'"),
        (lambda d: d.pop("links"), "missing top-level field 'links'"),
        (lambda d: d["nodes"][1].pop("feature_type"), "node 1 .*missing field 'feature_type'"),
        (lambda d: d["nodes"][1].pop("ctx_idx"), "missing field 'ctx_idx'"),
        (lambda d: d["nodes"][1].pop("layer"), "'0_7_0' is missing field 'layer'"),
        (lambda d: d["nodes"][1].update(layer="x"), "layer 'x'"),
        (lambda d: d["nodes"][1].update(feature_type="attention"), "unknown feature_type 'attention'"),
        (lambda d: d["nodes"][3].update(node_id="0_7_0"), "node id '0_7_0' appears twice"),
        (lambda d: d["links"][2].pop("weight"), "link 2 is missing field 'weight'"),
        (lambda d: d["links"][1].update(weight="0.5"), "non-numeric weight '0.5'"),
        (lambda d: d["links"][1].update(weight=True), "non-numeric weight True"),
        (lambda d: d["links"][3].update(target="9_9_9"), "link 3 has target '9_9_9' which is not a node id"),
        (lambda d: d.update(nodes=[]), "no nodes"),
        (lambda d: d.update(links=[]), "no links"),
    ],
)
def test_loader_errors_name_file_and_problem(tmp_path, mutate, match):
    doc = _doc()
    mutate(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(ArtifactError, match=match) as info:
        load_neuronpedia(path)
    msg = str(info.value)
    assert msg.startswith(str(path)) and "\n" not in msg


def test_loader_dangling_counts_all_and_names_one(tmp_path):
    doc = _doc()
    doc["links"][0]["source"] = "nope_1"
    doc["links"][2]["target"] = "nope_2"
    with pytest.raises(ArtifactError, match=r"link 0 has source 'nope_1' .*\(2 dangling"):
        load_neuronpedia(_write(tmp_path, doc))


def test_loader_file_level_errors(tmp_path):
    with pytest.raises(ArtifactError, match="file not found"):
        load_neuronpedia(tmp_path / "missing.json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_neuronpedia(_write(tmp_path, '{"nodes": ['))
    with pytest.raises(ArtifactError, match="expected an object"):
        load_neuronpedia(_write(tmp_path, "[1, 2]"))
    with pytest.raises(ArtifactError, match="no links left"):
        load_neuronpedia(_write(tmp_path, _doc()), weight_threshold=10.0)
    with pytest.raises(ArtifactError, match="non-finite weight"):
        load_neuronpedia(_write(tmp_path, json.dumps(_doc()).replace("2.0", "Infinity")))


# ---------------------------------------------------------------- analyze and CLI


def test_analyze_shape_and_budget_warning():
    g = layered_graph(4, 8, 90, seed=1)
    res = analyze_mod.analyze(g, nulls=("layer_er", "configuration"), samples=20, workers=1)
    assert res["graph"]["nodes"] == 32 and res["graph"]["edges"] == 90
    assert set(res["triad_census"]) == set(census.TRIAD_LABELS)
    assert len(res["census4"]) == 199 and res["ffl"]["total"] == res["triad_census"]["030T"]
    tri = res["nulls"]["layer_er"]["triad"]
    assert set(tri) >= {"real", "mean", "std", "z", "p", "significance_profile", "degeneracy"}
    assert res["nulls"]["configuration"]["ffl"]["real"]["coherent"] == res["ffl"]["coherent"]
    table = analyze_mod.to_table(res)
    assert len(table) == 2 * (16 + 10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cut = analyze_mod.analyze(
            g, nulls=("configuration",), samples=100_000, workers=1, max_seconds=0.01, with_census4=False
        )
    assert any("would take" in str(w.message) for w in caught)
    assert cut["nulls"]["configuration"]["samples"] < 100_000
    assert any("would take" in w for w in cut["warnings"])
    assert cut["nulls"]["configuration"]["triad"]["degeneracy"]["insufficient_samples"]


def _parse(argv):
    parser = argparse.ArgumentParser(prog="r1interp")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_cli_json_shape(capsys, tmp_path):
    args = _parse(
        [
            "motifs",
            str(HAIKU),
            "--json",
            "--samples",
            "10",
            "--workers",
            "1",
            "--null",
            "layer_er",
            "--null",
            "erdos_renyi",
            "--seed",
            "3",
            "--out",
            str(tmp_path / "m.json"),
        ]
    )
    assert args.func(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert json.loads((tmp_path / "m.json").read_text()) == doc
    assert (doc["graph"]["nodes"], doc["graph"]["edges"]) == (78, 1282)
    assert doc["triad_census"]["030T"] == 9213 and list(doc["triad_census"]) == list(census.TRIAD_LABELS)
    assert list(doc["nulls"]) == ["layer_er", "erdos_renyi"]
    for model in doc["nulls"].values():
        for key in ("real", "mean", "std", "z"):
            assert set(model["triad"][key]) == set(census.TRIAD_LABELS)
    assert doc["nulls"]["layer_er"]["triad"]["z"]["102"] is None  # fixed by the null: null in JSON, not NaN


def test_cli_defaults_and_errors(tmp_path, capsys):
    args = _parse(["motifs", "g.json"])
    assert args.samples == 1000 and args.nulls is None and not args.keep_errors and args.weight_threshold == 0
    bad = _write(tmp_path, _doc(links=[{"source": "E_5_0", "target": "zzz", "weight": 1}]))
    args = _parse(["motifs", str(bad), "--json"])
    with pytest.raises(R1InterpError, match="zzz"):
        args.func(args)
    args = _parse(["motifs", str(_write(tmp_path, _doc(), "ok.json")), "--samples", "0", "--keep-errors"])
    assert args.func(args) == 0
    assert "5 nodes" in capsys.readouterr().out  # error node kept


def test_cli_module_entry_point_prints_one_json_object(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "r1interp.cli",
            "motifs",
            str(HAIKU),
            "--json",
            "--samples",
            "4",
            "--workers",
            "1",
            "--null",
            "layer_configuration",
            "--no-census4",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["census4"] is None and doc["nulls"]["layer_configuration"]["samples"] == 4
    err = subprocess.run(
        [sys.executable, "-m", "r1interp.cli", "motifs", str(tmp_path / "none.json")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert err.returncode == 2 and err.stderr.strip() == f"error: {tmp_path / 'none.json'}: file not found"


def test_node_roles_count_ffl_roles_by_coherence():
    from r1interp.motifs.roles import node_roles, render_roles

    # 0 -> 1 -> 2 with 0 -> 2 (coherent +++), and 0 -> 3 -> 2 with 0 -> 2 (incoherent: + - +)
    g = AttributionGraph.from_edges([(0, 1), (1, 2), (0, 2), (0, 3), (3, 2)], weights=[1.0, 1.0, 1.0, 1.0, -1.0])
    g.graph.vs["id"] = ["1_5_0", "2_7_1", "3_9_2", "2_70_1"]
    g.graph.vs["position"] = [0, 1, 2, 1]
    rows = {r["node"]: r for r in node_roles(g, "1_5")}
    assert rows["1_5_0"]["source_coherent"] == 1 and rows["1_5_0"]["source_incoherent"] == 1
    mid = node_roles(g, "2_7")  # a prefix matches whole id parts only: not 2_70_1
    assert [r["node"] for r in mid] == ["2_7_1"] and mid[0]["intermediate_coherent"] == 1
    assert mid[0]["intermediate_incoherent"] == 0 and mid[0]["target_coherent"] == 0
    target = node_roles(g, "3_9_2")[0]
    assert (target["target_coherent"], target["target_incoherent"]) == (1, 1)
    assert node_roles(g, "9_9") == [] and "no node" in render_roles([], "9_9")
    assert "1/1" in render_roles(node_roles(g, "1_5"), "1_5")
