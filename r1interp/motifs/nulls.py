"""Null models for motif statistics: seeded, parallel, and sign-aware.

Models (all keep the vertex set, n, m, and produce simple loop-free digraphs):
- "configuration": every vertex keeps its in- and out-degree.
- "erdos_renyi": m edges drawn uniformly among the n(n-1) ordered pairs.
- "layer_er": for every (source layer, target layer) block of the real graph, that block's edge count is
  redrawn uniformly among the block's vertex pairs.
- "layer_configuration": degree-preserving rewiring only inside each block, so every vertex keeps its
  out-degree into each layer and its in-degree from each layer.

Degree-preserving models use global Curveball (Strona et al. 2014; Carstens, Berger & Strona 2016), not
igraph's `Graph.rewire`: igraph deletes and re-adds edges, so edge attributes (our signs) come back as
None, which is how sign information gets silently dropped. A Curveball trade pairs two "rows" (a source
vertex's out-edges into one target segment), pools the targets only one of them has, and redistributes
them at random keeping each row's size; the two edges into a target both rows share go one to each row,
either way round (so signs also move between rows). One round pairs every row at random within its
group and trades all pairs at once, vectorised with numpy.
Edges keep their identity: an edge keeps its target and its sign and only its tail moves. Each round is
a symmetric proposal over a state-independent pairing, so the chain's stationary distribution is uniform
over the reachable graphs. Rows are (source, target segment) units grouped by (source layer, target
layer) for "layer_configuration", and (source) units in one group for "configuration". In a trade
between rows of a and c the columns a and c are held fixed (no self-loops); as with every 2-swap or
Curveball chain on loop-free digraphs, a few degree sequences need directed-triangle reversals to be
fully connected (Berger & Müller-Hannemann 2010); layered blocks between different layers never do.

Signs (`signs=`):
- "keep": signs stay attached to edges. Curveball models therefore also preserve each vertex's signed
  in-degree (within each block); "layer_er" keeps each block's sign multiset (block edges drawn in random
  order take the block's signs); for "erdos_renyi" keep and shuffle are the same in distribution.
- "shuffle": after the topology is drawn, the real graph's signs are permuted over all edges.

Reproducibility: sample i of model M uses `SeedSequence(seed, spawn_key=(crc32(M), i))`, so results
depend only on (seed, model, i): not on the worker count, the chunking, or which samples ran first.
"""

from __future__ import annotations

import math
import os
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any

import numpy as np

from r1interp.motifs.census import triad_counts
from r1interp.motifs.signed import ffl_counts

NULL_MODELS = ("configuration", "erdos_renyi", "layer_er", "layer_configuration")
SIGN_MODES = ("keep", "shuffle")
FAMILIES = ("triad", "ffl", "census4")
# Curveball rounds per sample, each sample started from the real graph. On the Haiku graph the null
# means of 030T and of the signed FFL counts stop moving (within 0.1 null std) after ~20 rounds for both
# degree-preserving models; 30 leaves a margin. Larger graphs may need more: pass `rounds`.
DEFAULT_ROUNDS = 30


@dataclass(frozen=True)
class NullSpec:
    """Everything a worker needs to draw samples of one null model (picklable, numpy arrays only)."""

    n: int
    src: np.ndarray
    tgt: np.ndarray
    sign: np.ndarray
    layer: np.ndarray
    model: str
    signs: str = "keep"
    rounds: int = DEFAULT_ROUNDS
    families: tuple[str, ...] = ("triad", "ffl")
    ffl_induced: bool = True
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.model not in NULL_MODELS:
            raise ValueError(f"unknown null model {self.model!r}; known: {', '.join(NULL_MODELS)}")
        if self.signs not in SIGN_MODES:
            raise ValueError(f"unknown sign mode {self.signs!r}; known: {', '.join(SIGN_MODES)}")
        bad = [f for f in self.families if f not in FAMILIES]
        if bad:
            raise ValueError(f"unknown statistic family {bad[0]!r}; known: {', '.join(FAMILIES)}")
        if self.rounds < 1:
            raise ValueError("rounds must be >= 1")

    def __getstate__(self) -> dict:  # the cache is rebuilt in each worker
        state = dict(self.__dict__)
        state["_cache"] = {}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)


def make_spec(
    graph: Any,
    model: str,
    *,
    signs: str = "keep",
    rounds: int = DEFAULT_ROUNDS,
    families: tuple[str, ...] = ("triad", "ffl"),
    ffl_induced: bool = True,
) -> NullSpec:
    """NullSpec from an AttributionGraph (uses its edges, `sign` and vertex `layer`)."""
    e = graph.edges()
    return NullSpec(
        n=graph.n_nodes,
        src=e[:, 0].copy(),
        tgt=e[:, 1].copy(),
        sign=graph.signs.copy(),
        layer=graph.layers.copy(),
        model=model,
        signs=signs,
        rounds=rounds,
        families=tuple(families),
        ffl_induced=ffl_induced,
    )


def sample_seed(seed: int, model: str, index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=(zlib.crc32(model.encode()), index))


# ---------------------------------------------------------------- samplers


def draw(spec: NullSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One null graph as (src, tgt, sign) arrays."""
    if spec.model in ("configuration", "layer_configuration"):
        src, tgt, sign = _curveball(spec, rng)
    elif spec.model == "erdos_renyi":
        src, tgt, sign = _erdos_renyi(spec, rng)
    else:
        src, tgt, sign = _layer_er(spec, rng)
    if spec.signs == "shuffle":
        sign = rng.permutation(spec.sign)
    return src, tgt, sign


def _curveball_setup(spec: NullSpec) -> dict:
    cached = spec._cache.get("curveball")
    if cached is not None:
        return cached
    layered = spec.model == "layer_configuration"
    seg = spec.layer[spec.tgt] if layered else np.zeros(len(spec.tgt), dtype=np.int64)
    units, unit_of_edge = np.unique(np.column_stack([spec.src, seg]), axis=0, return_inverse=True)
    unit_of_edge = unit_of_edge.ravel()
    unit_src = units[:, 0]
    grp_key = np.column_stack([spec.layer[unit_src], units[:, 1]]) if layered else np.zeros((len(units), 1), np.int64)
    _, unit_group = np.unique(grp_key, axis=0, return_inverse=True)
    unit_group = unit_group.ravel()
    group_size = np.bincount(unit_group)
    group_start = np.concatenate([[0], np.cumsum(group_size)[:-1]])
    cached = dict(
        unit_of_edge=unit_of_edge,
        unit_src=unit_src,
        unit_group=unit_group,
        group_start=group_start,
        group_size=group_size,
    )
    spec._cache["curveball"] = cached
    return cached


DENSE_LOOKUP_MAX_NODES = 1500  # up to here an n x n edge-id table finds shared targets; above, a sort


def _curveball(spec: NullSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = _curveball_setup(spec)
    unit_src, unit_group = c["unit_src"], c["unit_group"]
    group_start, group_size = c["group_start"], c["group_size"]
    unit = c["unit_of_edge"].copy()
    tgt = spec.tgt
    n_units, m, n = len(unit_src), len(tgt), spec.n
    sorted_group = np.sort(unit_group)
    rank_in_group = np.arange(n_units) - group_start[sorted_group]
    first_pos = np.flatnonzero((rank_in_group % 2 == 0) & (rank_in_group + 1 < group_size[sorted_group]))
    n_pairs = len(first_pos)
    if n_pairs == 0:
        return unit_src[unit], tgt.copy(), spec.sign.copy()
    pair_of_unit = np.full(n_units, -1, dtype=np.int64)
    partner = np.full(n_units, -1, dtype=np.int64)
    pair_ids = np.arange(n_pairs)
    lookup = None
    if n <= DENSE_LOOKUP_MAX_NODES:
        lookup = np.full((n, n), -1, dtype=np.int64)  # lookup[s, t]: id of the edge s->t, or -1
        lookup[unit_src[unit], tgt] = np.arange(m)
    for _ in range(spec.rounds):
        r = rng.random(n_units + 2 * m)  # fixed-size draw per round: unit order, flips, pool order
        order = np.argsort(unit_group + r[:n_units])  # units by group, random within group
        first, second = order[first_pos], order[first_pos + 1]
        pair_of_unit[first] = pair_ids
        pair_of_unit[second] = pair_ids
        partner[first] = second
        partner[second] = first
        p = pair_of_unit[unit]
        active = np.flatnonzero(p >= 0)
        ua, ta, pa = unit[active], tgt[active], p[active]
        psrc = unit_src[partner[ua]]
        # `other`: the partner row's edge to the same target (a shared target), or -1
        if lookup is not None:
            other = lookup[psrc, ta]
        else:
            key = pa * n + ta
            ko = np.argsort(key)
            same = np.flatnonzero(key[ko[1:]] == key[ko[:-1]])
            other = np.full(len(active), -1, dtype=np.int64)
            other[ko[same]] = active[ko[same + 1]]
            other[ko[same + 1]] = active[ko[same]]
        shared = other >= 0
        # shared targets stay, but the two edges into one go to either row at random (so signs also
        # move between rows); a target that is the partner row's own vertex stays (no self-loops)
        flip = shared & (ua == first[pa]) & (r[n_units + active] < 0.5)
        e1, e2 = active[flip], other[flip]
        movable = ~shared & (ta != psrc)
        idx = active[movable]
        changed = np.concatenate([e1, e2, idx])
        if lookup is not None:
            lookup[unit_src[unit[changed]], tgt[changed]] = -1
        unit[e1], unit[e2] = unit[e2], unit[e1]  # fancy indexing copies: a true swap
        if len(idx):
            pm, um = pa[movable], ua[movable]
            k0 = np.bincount(pm[um == first[pm]], minlength=n_pairs)  # pool edges now in the first row
            o = np.argsort(pm + r[n_units + m + idx])  # by pair, random within pair
            pm_sorted = pm[o]
            rank = np.arange(len(o)) - np.searchsorted(pm_sorted, pair_ids)[pm_sorted]
            unit[idx[o]] = np.where(rank < k0[pm_sorted], first[pm_sorted], second[pm_sorted])
        if lookup is not None:
            lookup[unit_src[unit[changed]], tgt[changed]] = changed
        pair_of_unit[first] = -1
        pair_of_unit[second] = -1
    return unit_src[unit], tgt.copy(), spec.sign.copy()


def _pairs_without_loops(idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Index into the k(k-1) ordered pairs of k vertices without the diagonal -> (row, col)."""
    i = idx // (k - 1)
    r = idx % (k - 1)
    return i, r + (r >= i)


def _erdos_renyi(spec: NullSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n, m = spec.n, len(spec.src)
    idx = rng.choice(n * (n - 1), size=m, replace=False)  # shuffled: the k-th edge gets the k-th sign
    src, tgt = _pairs_without_loops(idx, n)
    return src, tgt, spec.sign.copy()


def _layer_er_setup(spec: NullSpec) -> list:
    cached = spec._cache.get("layer_er")
    if cached is not None:
        return cached
    members = {int(lay): np.flatnonzero(spec.layer == lay) for lay in np.unique(spec.layer)}
    ls, lt = spec.layer[spec.src], spec.layer[spec.tgt]
    blocks = []
    order = np.lexsort((lt, ls))
    ls_o, lt_o = ls[order], lt[order]
    bounds = np.flatnonzero((np.diff(ls_o) != 0) | (np.diff(lt_o) != 0)) + 1
    for chunk in np.split(order, bounds):
        a, b = int(ls[chunk[0]]), int(lt[chunk[0]])
        blocks.append((members[a], members[b], a == b, chunk))
    spec._cache["layer_er"] = blocks
    return blocks


def _layer_er(spec: NullSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    srcs, tgts, signs = [], [], []
    for rows, cols, same, edges in _layer_er_setup(spec):
        k = len(edges)
        if same:
            idx = rng.choice(len(rows) * (len(rows) - 1), size=k, replace=False)
            i, j = _pairs_without_loops(idx, len(rows))
            s, t = rows[i], rows[j]
        else:
            idx = rng.choice(len(rows) * len(cols), size=k, replace=False)
            s, t = rows[idx // len(cols)], cols[idx % len(cols)]
        srcs.append(s)
        tgts.append(t)
        signs.append(spec.sign[edges])
    return np.concatenate(srcs), np.concatenate(tgts), np.concatenate(signs)


# ---------------------------------------------------------------- statistics of samples


def family_sizes(spec: NullSpec) -> dict[str, int]:
    return {f: {"triad": 16, "ffl": 8, "census4": 199}[f] for f in spec.families}


def graph_stats(spec: NullSpec, src: np.ndarray, tgt: np.ndarray, sign: np.ndarray) -> np.ndarray:
    """Concatenated statistics (families in spec order) of one graph."""
    parts = []
    for fam in spec.families:
        if fam == "triad":
            parts.append(triad_counts(spec.n, src, tgt))
        elif fam == "ffl":
            parts.append(ffl_counts(spec.n, src, tgt, sign, induced=spec.ffl_induced))
        else:
            import igraph as ig

            from r1interp.motifs.census import census4

            g = ig.Graph(n=spec.n, edges=np.column_stack([src, tgt]).tolist(), directed=True)
            parts.append(np.fromiter(census4(g).values(), dtype=np.int64))
    return np.concatenate(parts)


def real_stats(spec: NullSpec) -> np.ndarray:
    return graph_stats(spec, spec.src, spec.tgt, spec.sign)


def sample_one(spec: NullSpec, seed: int, index: int) -> np.ndarray:
    rng = np.random.default_rng(sample_seed(seed, spec.model, index))
    return graph_stats(spec, *draw(spec, rng))


def _run_chunk(spec: NullSpec, seed: int, indices: range) -> np.ndarray:
    return np.stack([sample_one(spec, seed, i) for i in indices])


def make_executor(workers: int) -> ProcessPoolExecutor:
    """A process pool for `sample_nulls` ("spawn": workers inherit no threads, locks or BLAS state).

    BLAS/OpenMP thread counts are pinned to 1 in the workers' environment: our kernels do not use BLAS,
    and oversubscribed BLAS threads are what makes small matrix work crawl on a shared machine. The
    workers are started (and import this package) in the background while the caller goes on.
    """
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update(dict.fromkeys(_THREAD_VARS, "1"))
    try:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))
        for _ in range(workers):  # each submit with no idle worker spawns one, environment pinned
            pool.submit(_warm)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return pool


def _warm() -> None:
    """Runs in a fresh worker: importing this module already loaded numpy, scipy and igraph."""


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def sample_nulls(
    spec: NullSpec,
    samples: int,
    *,
    seed: int = 0,
    workers: int = 1,
    start: int = 0,
    executor: ProcessPoolExecutor | None = None,
) -> np.ndarray:
    """Statistics of samples start..start+samples-1 as an int64 array (samples x statistics).

    With workers > 1 chunks of samples run in worker processes (in `executor` if given, a pool made by
    `make_executor(workers)`, else in a pool made for this call); the result is the same for any worker
    count because each sample is seeded by its own index.
    """
    width = sum(family_sizes(spec).values())
    if samples <= 0:
        return np.zeros((0, width), dtype=np.int64)
    indices = range(start, start + samples)
    if workers <= 1 or samples < 2 * workers:
        return _run_chunk(spec, seed, indices)
    n_chunks = min(samples, 4 * workers)
    size = math.ceil(samples / n_chunks)
    chunks = [indices[i : i + size] for i in range(0, samples, size)]
    own = executor is None
    pool = make_executor(workers) if own else executor
    try:
        parts = list(pool.map(_run_chunk, [spec] * len(chunks), [seed] * len(chunks), chunks))
    finally:
        if own:
            pool.shutdown()
    return np.concatenate(parts)
