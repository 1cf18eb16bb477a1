"""Synthetic layered signed digraphs shaped like attribution graphs, for tests and benchmarks.

Why: real graphs are few and fixed in size; the null models and census need graphs of chosen size with
the same structure (edges only go up the layers, by a bounded jump, signed mostly positive).
"""

from __future__ import annotations

import numpy as np

from r1interp.motifs.graph import AttributionGraph


def layered_graph(
    layers: int,
    width: int,
    edges: int,
    *,
    seed: int = 0,
    max_jump: int = 3,
    negative_fraction: float = 0.25,
    same_layer_fraction: float = 0.0,
) -> AttributionGraph:
    """`layers` x `width` vertices; `edges` distinct edges drawn uniformly from layer l to l+1..l+max_jump.

    same_layer_fraction > 0 also draws that share of edges inside layers (both directions possible, so
    mutual edges and same-layer blocks appear). Signs: negative with probability negative_fraction.
    """
    rng = np.random.default_rng(seed)
    n = layers * width
    layer_of = np.repeat(np.arange(layers), width)
    n_same = int(round(edges * same_layer_fraction))
    blocks = [(a, b) for a in range(layers) for b in range(a + 1, min(layers, a + max_jump + 1))]
    cap = len(blocks) * width * width
    if edges - n_same > cap or n_same > layers * width * (width - 1):
        raise ValueError(f"{edges} edges do not fit in {layers} layers of width {width}")
    idx = rng.choice(cap, size=edges - n_same, replace=False)
    blk, rest = idx // (width * width), idx % (width * width)
    pairs = np.array(blocks, dtype=np.int64)[blk]
    src = pairs[:, 0] * width + rest // width
    tgt = pairs[:, 1] * width + rest % width
    if n_same:
        k = width * (width - 1)
        j = rng.choice(layers * k, size=n_same, replace=False)
        lay, r = j // k, j % k
        i, c = r // (width - 1), r % (width - 1)
        c = c + (c >= i)
        src = np.concatenate([src, lay * width + i])
        tgt = np.concatenate([tgt, lay * width + c])
    weights = np.where(rng.random(len(src)) < negative_fraction, -1.0, 1.0) * rng.uniform(0.1, 1.0, len(src))
    return AttributionGraph.from_edges(
        np.column_stack([src, tgt]),
        n=n,
        weights=weights,
        layers=layer_of,
        source=f"<layered {layers}x{width}, {edges} edges, seed {seed}>",
    )
