"""Motif roles of individual nodes: in how many feed-forward loops a node is the source (A), the intermediate (B)
or the target (C), and how many of those loops are coherent (the direct and the indirect path agree in sign).

Node ids follow Neuronpedia's `<layer>_<feature>_<position>`; a prefix such as `1_964` selects the feature at
every position."""

from __future__ import annotations

from typing import Any

from r1interp.motifs.signed import ffl_instances, is_coherent

ROLES = ("source", "intermediate", "target")


def node_roles(graph: Any, prefix: str) -> list[dict[str, Any]]:
    """One row per node whose id is `prefix` or starts with `prefix_`, with FFL counts per role."""
    g = graph.graph if hasattr(graph, "graph") else graph
    ids = g.vs["id"]
    chosen = {v: ids[v] for v in range(g.vcount()) if ids[v] == prefix or ids[v].startswith(prefix + "_")}
    rows = {
        v: {
            "node": node,
            "layer": g.vs[v]["layer"],
            "position": g.vs[v]["position"],
            **{f"{role}_{kind}": 0 for role in ROLES for kind in ("coherent", "incoherent")},
        }
        for v, node in chosen.items()
    }
    if not rows:
        return []
    for loop in ffl_instances(graph):
        kind = "coherent" if is_coherent(loop[3]) else "incoherent"
        for role, v in zip(ROLES, loop[:3], strict=True):
            if v in rows:
                rows[v][f"{role}_{kind}"] += 1
    return sorted(rows.values(), key=lambda r: (r["position"], r["node"]))


def render_roles(rows: list[dict[str, Any]], prefix: str) -> str:
    if not rows:
        return f"no node with id {prefix!r} or {prefix + '_*'!r} in this graph"
    lines = [
        f"feed-forward loops of {prefix} (coherent / incoherent) as:",
        f"{'node':<18}{'pos':>4}  {'source':>9}  {'intermediate':>12}  {'target':>9}",
    ]
    for r in rows:
        cells = [f"{r[f'{role}_coherent']}/{r[f'{role}_incoherent']}" for role in ROLES]
        lines.append(f"{r['node']:<18}{r['position']:>4}  {cells[0]:>9}  {cells[1]:>12}  {cells[2]:>9}")
    return "\n".join(lines)
