"""Attribution graphs for the viewer: a compact form of the Neuronpedia JSON, and who uses which feature.

The exported JSON repeats field names on every node and link (5,000 links are ~400 kB); the viewer needs
a few fields, so nodes become short arrays and links a flat list of (source index, target index, weight)
triples sorted by |weight| (the prune slider then keeps a prefix); weights keep 3 significant digits. Layers follow the motif loader's convention
(`r1interp.motifs.graph`): embeddings below layer 0, logits directly above the last feature layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from r1interp.site.context import FeatureKey
from r1interp.site.tokens import readable

KIND = {
    "cross layer transcoder": "f",
    "transcoder": "f",
    "per layer transcoder": "f",
    "feature": "f",
    "mlp reconstruction error": "e",
    "error": "e",
    "embedding": "m",
    "logit": "l",
}

# column order of a compact node (documented here and read by assets/graph.js)
NODE_FIELDS = ("id", "kind", "layer", "pos", "feature", "activation", "influence", "label", "prob", "target", "page")


@dataclass
class Usage:
    """A feature's appearance in one graph (listed on the feature's page)."""

    slug: str
    node_id: str
    pos: int
    token: str
    activation: float | None
    influence: float | None


@dataclass
class CompactGraph:
    slug: str
    model: str  # our role, or the reference graph's scan
    reference: bool
    data: dict[str, Any]
    features: dict[str, FeatureKey] = field(default_factory=dict)  # node id -> feature key


def _sig(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else float(f"{x:.{digits}g}")


def feature_index(node_id: str) -> int:
    """circuit-tracer writes feature nodes as "{layer}_{feature}_{pos}" (the numeric `feature` field is
    a position in its active-feature list, not the transcoder latent)."""
    return int(node_id.split("_")[1])


def compact(doc: dict[str, Any], slug: str, model: str, *, reference: bool = False) -> CompactGraph:
    meta = doc.get("metadata", {})
    tokens = [str(t) for t in meta.get("prompt_tokens", [])]
    raw = doc["nodes"]
    kinds = [KIND.get(str(n.get("feature_type")), "e") for n in raw]
    layers: list[int] = []
    for n, k in zip(raw, kinds, strict=True):
        try:
            layers.append(int(n["layer"]) if k in "fe" else -1)
        except (TypeError, ValueError):
            layers.append(0)
    top = max([lay for lay, k in zip(layers, kinds, strict=True) if k in "fe"], default=-1) + 1
    nodes, index, features = [], {}, {}
    for i, (n, k) in enumerate(zip(raw, kinds, strict=True)):
        layer = top if k == "l" else layers[i]
        fid = -1
        if k == "f":
            try:
                fid = feature_index(str(n["node_id"]))
            except (IndexError, ValueError):
                fid = int(n.get("feature", -1))
            if not reference:
                features[str(n["node_id"])] = (model, layer, fid)
        act = n.get("activation")
        infl = n.get("influence")
        nodes.append(
            [
                str(n["node_id"]),
                k,
                layer,
                int(n.get("ctx_idx", 0)),
                fid,
                _sig(act) if isinstance(act, (int, float)) else None,
                _sig(infl) if isinstance(infl, (int, float)) else None,
                readable(str(n.get("clerp") or "")),
                _sig(float(n.get("token_prob") or 0.0)),
                bool(n.get("is_target_logit")),
                False,
            ]
        )
        index[str(n["node_id"])] = i
    links = sorted(doc["links"], key=lambda lk: -abs(float(lk["weight"])))
    data = {
        "slug": slug,
        "model": model,
        "reference": reference,
        "prompt": str(meta.get("prompt", "")),
        "tokens": tokens,
        "fields": list(NODE_FIELDS),
        "nodes": nodes,
        # flat [source, target, weight, source, target, weight, ...]: a 7k-link graph is ~15% smaller than nested
        "links": [v for lk in links for v in (index[lk["source"]], index[lk["target"]], _sig(float(lk["weight"]), 3))],
    }
    return CompactGraph(slug, model, reference, data, features)


def usage(graph: CompactGraph) -> dict[FeatureKey, list[Usage]]:
    tokens = graph.data["tokens"]
    out: dict[FeatureKey, list[Usage]] = {}
    for node in graph.data["nodes"]:
        key = graph.features.get(node[0])
        if key is None:
            continue
        pos = node[3]
        token = tokens[pos] if 0 <= pos < len(tokens) else ""
        out.setdefault(key, []).append(Usage(graph.slug, node[0], pos, token, node[5], node[6]))
    return out


def mark_pages(graph: CompactGraph, has_page) -> None:
    """Set each feature node's `page` flag (the viewer links only to pages that exist)."""
    for node in graph.data["nodes"]:
        key = graph.features.get(node[0])
        node[-1] = bool(key is not None and has_page(key))
