"""Signed feed-forward loops (FFL): every sign pattern, coherent vs incoherent.

Roles (Mangan & Alon 2003): in A->B, B->C, A->C the vertex A is the source/regulator (both of its edges
leave it), B the intermediate (one edge in, one out) and C the target (both edges enter it). A pattern
is written in the fixed edge order (A->B, B->C, A->C), e.g. "+-+" means A excites B, B inhibits C and
A excites C. The loop is coherent when the indirect path has the sign of the direct edge,
sign(A->B) * sign(B->C) == sign(A->C), and incoherent otherwise. (circuit-motifs reverses these roles.)

By default loops are counted *induced*: the three dyads must be asymmetric (no C->A, B->A or C->B), so
the loops are exactly the 030T triads of the census and every 030T holds exactly one loop with unique
roles. With `induced=False` every ordered triple with the three edges counts, whatever else joins them
(a triad with mutual edges can then hold several loops).

Counting: for sign matrices X+, X- (entries 1 where the edge has that sign),
count(s1 s2 s3) = sum((X_s1 @ X_s2) * X_s3), computed with the `pathcount` kernel; no self-loops means
the three vertices are distinct.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from r1interp.motifs import pathcount

FFL_PATTERNS = ("+++", "++-", "+-+", "+--", "-++", "-+-", "--+", "---")
FFL_ORDER = "(A->B, B->C, A->C); A source/regulator, B intermediate, C target"


def is_coherent(pattern: str) -> bool:
    """sign(A->B) * sign(B->C) == sign(A->C) for a pattern in (A->B, B->C, A->C) order."""
    s = [1 if ch == "+" else -1 for ch in pattern]
    if len(s) != 3 or any(ch not in "+-" for ch in pattern):
        raise ValueError(f"bad FFL pattern {pattern!r}")
    return s[0] * s[1] == s[2]


COHERENT = tuple(p for p in FFL_PATTERNS if is_coherent(p))
INCOHERENT = tuple(p for p in FFL_PATTERNS if not is_coherent(p))


def pattern_of(sab: int, sbc: int, sac: int) -> str:
    return "".join("+" if s > 0 else "-" for s in (sab, sbc, sac))


def ffl_counts(n: int, src, tgt, sign, *, induced: bool = True, method: str = "auto") -> np.ndarray:
    """Counts of the 8 FFL sign patterns (FFL_PATTERNS order, int64)."""
    src = np.asarray(src, dtype=np.int64)
    tgt = np.asarray(tgt, dtype=np.int64)
    sign = np.asarray(sign)
    keep = ~np.isin(src * n + tgt, tgt * n + src) if induced else np.ones(len(src), dtype=bool)
    if method == "auto":
        method = "bits" if n <= pathcount.BITS_MAX_NODES else "sparse"
    split = [(src[keep & (sign == s)], tgt[keep & (sign == s)]) for s in (1, -1)]
    out = np.zeros(8, dtype=np.int64)
    if method == "bits":
        rows = [pathcount.PackedRows(n, i, k) for i, k in split]  # rows of X_s: out-neighbours
        cols = [pathcount.PackedRows(n, k, i) for i, k in split]  # columns of X_s: in-neighbours
        zi = np.concatenate([split[0][0], split[1][0]])  # closing edges, positive then negative
        zk = np.concatenate([split[0][1], split[1][1]])
        n_pos = len(split[0][0])
        for a in (0, 1):
            for b in (0, 1):
                per = pathcount.per_edge(rows[a], cols[b], zi, zk)
                out[4 * a + 2 * b] = per[:n_pos].sum()
                out[4 * a + 2 * b + 1] = per[n_pos:].sum()
    elif method == "sparse":
        mats = [pathcount.sparse(n, i, k) for i, k in split]
        for a in (0, 1):
            for b in (0, 1):
                p = mats[a] @ mats[b]
                for c in (0, 1):
                    out[4 * a + 2 * b + c] = int(round(float(p.multiply(mats[c]).sum())))
    else:
        raise ValueError(f"unknown method {method!r}")
    return out


def summarize(counts: np.ndarray | list) -> dict[str, Any]:
    """Pattern counts -> {patterns, coherent, incoherent, total, order}."""
    pats = {p: int(c) for p, c in zip(FFL_PATTERNS, counts, strict=True)}
    coh = sum(pats[p] for p in COHERENT)
    inc = sum(pats[p] for p in INCOHERENT)
    return {"patterns": pats, "coherent": coh, "incoherent": inc, "total": coh + inc, "order": FFL_ORDER}


def ffl_census(graph: Any, *, induced: bool = True) -> dict[str, Any]:
    """FFL sign census of an AttributionGraph (edge attribute `sign`)."""
    g = graph.graph if hasattr(graph, "graph") else graph
    e = np.asarray(g.get_edgelist(), dtype=np.int64).reshape(-1, 2)
    sign = np.asarray(g.es["sign"]) if g.ecount() else np.zeros(0)
    return summarize(ffl_counts(g.vcount(), e[:, 0], e[:, 1], sign, induced=induced))


def ffl_instances(graph: Any, *, induced: bool = True) -> list[tuple[int, int, int, str]]:
    """Every loop as (A, B, C, pattern) with A the source, B the intermediate, C the target.

    Plain Python over adjacency sets: meant for small graphs, reports and tests.
    """
    g = graph.graph if hasattr(graph, "graph") else graph
    sign = {e.tuple: int(e["sign"]) for e in g.es}
    out_nb = [set(g.successors(v)) for v in range(g.vcount())]
    found = []
    for (a, c), sac in sign.items():
        for b in out_nb[a] & set(g.predecessors(c)):
            if b in (a, c):
                continue
            if induced and ((c, a) in sign or (b, a) in sign or (c, b) in sign):
                continue
            found.append((a, b, c, pattern_of(sign[(a, b)], sign[(b, c)], sac)))
    return sorted(found)
