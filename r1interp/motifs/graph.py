"""Attribution graphs as igraph digraphs: the Neuronpedia JSON loader and a small wrapper.

Why a wrapper: every motif computation wants the same few arrays (edge endpoints, signs, layers), and
every report wants to know what the loader dropped. `AttributionGraph` keeps the igraph graph (for
igraph's own census code and for users) together with those arrays and the drop counts.

Conventions (the null models depend on them, so they are fixed here):
- `kind` comes from the node's `feature_type` field, not from the id pattern: circuit-tracer error ids
  (`"0_{layer}_{pos}"`) look like layer-0 feature ids, and the two can even collide.
  "cross layer transcoder"/"transcoder" -> feature, "mlp reconstruction error" -> error,
  "embedding" -> embedding, "logit" -> logit.
- `layer`: features and errors keep the file's integer `layer`; embeddings get -1 (they sit before the
  first layer; the file says "E"); logits get (max feature/error layer in the file) + 1. circuit-tracer
  writes logits at n_layers + 1, leaving an empty layer n_layers, while the Claude 3.5 Haiku export writes
  16 after features 1..15; recomputing puts logits directly above the last layer either way, so
  layer-preserving nulls see the same block structure whatever wrote the file. The file's string is kept
  as `raw_layer`. (The Haiku export gives every error node layer "0": its true layer is not in the file.)
- `position` is the node's `ctx_idx` (token position).
- Duplicate links (same source and target) are summed: direct effects in an attribution graph are
  additive contributions, circuit-tracer never writes duplicates, and summing is what a merge of two
  exports would mean. The number merged is reported in `dropped["duplicate_links_merged"]`.
- Self-loops are dropped (motif classes are defined on loop-free digraphs) and counted.
- `weight_threshold`: a link is kept when |weight| > threshold, so the default 0 keeps every non-zero
  link; a zero (or summed-to-zero) weight has no sign and is dropped and counted.
- Nodes left without links are kept: they are part of the graph (they count in the 003 triads).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import igraph as ig
import numpy as np

from r1interp.errors import ArtifactError

KINDS = ("feature", "error", "embedding", "logit")
EMBEDDING_LAYER = -1

_FEATURE_TYPES = {
    "cross layer transcoder": "feature",
    "transcoder": "feature",
    "per layer transcoder": "feature",
    "feature": "feature",
    "mlp reconstruction error": "error",
    "error": "error",
    "embedding": "embedding",
    "logit": "logit",
}


@dataclass(frozen=True)
class AttributionGraph:
    """A loop-free, simple, signed digraph with per-vertex layer/position/kind.

    `graph` is an igraph.Graph with vertex attributes id, layer, position, kind (and raw_layer,
    feature_type when loaded from JSON) and edge attributes weight (float) and sign (+1/-1).
    """

    graph: ig.Graph
    source: str = "<memory>"
    metadata: dict[str, Any] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def n_nodes(self) -> int:
        return self.graph.vcount()

    @property
    def n_edges(self) -> int:
        return self.graph.ecount()

    def edges(self) -> np.ndarray:
        """Edge endpoints as an (m, 2) int64 array in edge-id order."""
        if self.graph.ecount() == 0:
            return np.zeros((0, 2), dtype=np.int64)
        return np.asarray(self.graph.get_edgelist(), dtype=np.int64)

    @property
    def signs(self) -> np.ndarray:
        return np.asarray(self.graph.es["sign"], dtype=np.int8) if self.n_edges else np.zeros(0, np.int8)

    @property
    def weights(self) -> np.ndarray:
        return np.asarray(self.graph.es["weight"], dtype=np.float64) if self.n_edges else np.zeros(0)

    @property
    def layers(self) -> np.ndarray:
        return np.asarray(self.graph.vs["layer"], dtype=np.int64)

    def kind_counts(self) -> dict[str, int]:
        kinds = self.graph.vs["kind"]
        return {k: kinds.count(k) for k in KINDS if k in kinds}

    @classmethod
    def from_edges(
        cls,
        edges: Iterable[Sequence[int]],
        *,
        n: int | None = None,
        weights: Sequence[float] | None = None,
        layers: Sequence[int] | None = None,
        source: str = "<edges>",
    ) -> AttributionGraph:
        """Build a graph from integer edges (hand-made test graphs, synthetic benchmarks).

        Weights default to +1; layers default to 0; every vertex is a "feature". Self-loops, duplicate
        edges and zero weights are rejected here: callers construct these graphs on purpose.
        """
        e = np.asarray(list(edges) if not isinstance(edges, np.ndarray) else edges, dtype=np.int64).reshape(-1, 2)
        if n is None:
            n = int(e.max()) + 1 if len(e) else 0
        w = np.ones(len(e)) if weights is None else np.asarray(weights, dtype=np.float64)
        if len(w) != len(e):
            raise ValueError(f"{len(w)} weights for {len(e)} edges")
        if len(e) and (e.min() < 0 or e.max() >= n):
            raise ValueError("edge endpoint out of range")
        if np.any(e[:, 0] == e[:, 1]):
            raise ValueError("self-loops are not allowed")
        if len(np.unique(e[:, 0] * max(n, 1) + e[:, 1])) != len(e):
            raise ValueError("duplicate edges are not allowed")
        if np.any(w == 0) or not np.all(np.isfinite(w)):
            raise ValueError("weights must be finite and non-zero")
        g = ig.Graph(n=n, edges=e.tolist(), directed=True)
        g.vs["id"] = [str(i) for i in range(n)]
        g.vs["layer"] = [0] * n if layers is None else [int(x) for x in layers]
        g.vs["position"] = [0] * n
        g.vs["kind"] = ["feature"] * n
        g.es["weight"] = w.tolist()
        g.es["sign"] = np.where(w > 0, 1, -1).tolist()
        return cls(graph=g, source=source)


@dataclass(frozen=True)
class GraphLimits:
    """Bounds on a graph file, so a huge or hostile one is refused instead of exhausting memory or time:
    bytes are checked before reading, node and link counts before anything is built from them."""

    max_mb: int = 1024
    max_nodes: int = 200_000
    max_links: int = 5_000_000


def check_graph_file(path: Path, max_mb: int, flag: str = "--max-mb") -> None:
    """A regular file (not a FIFO, device or folder, which would hang or never end) of at most `max_mb` MB."""
    import stat

    try:
        info = path.stat()
    except FileNotFoundError:
        raise ArtifactError(f"{path}: file not found") from None
    if not stat.S_ISREG(info.st_mode):
        raise ArtifactError(f"{path}: not a regular file (a folder, FIFO or device); give a graph JSON file")
    if info.st_size > max_mb * 1_000_000:
        raise ArtifactError(
            f"{path}: {info.st_size / 1e6:.0f} MB is over the {flag} limit of {max_mb} MB",
            hint=f"raise {flag} if the graph is meant to be this large",
        )


def load_neuronpedia(
    path: str | Path,
    *,
    drop_errors: bool = True,
    weight_threshold: float = 0.0,
    keep_embeddings: bool = True,
    keep_logits: bool = True,
    limits: GraphLimits = GraphLimits(),
    limit_names: tuple[str, str, str] = ("--max-mb", "--max-nodes", "--max-links"),
) -> AttributionGraph:
    """Load a Neuronpedia attribution-graph JSON (as circuit-tracer's `create_graph_files` writes it).

    Raises ArtifactError naming the file and the first problem: not a regular file or over the size
    limits, unreadable JSON, missing fields, unknown feature types, duplicate node ids, dangling link
    endpoints, non-numeric or non-finite weights, or a graph left empty by the filters.
    `limit_names` are how the caller's user sets the limits (CLI flags or params keys), for the messages.
    """
    path = Path(path)
    check_graph_file(path, limits.max_mb, limit_names[0])
    doc = _read_json(path)
    if not isinstance(doc, dict):
        raise ArtifactError(f"{path}: top level is {type(doc).__name__}, expected an object with nodes and links")
    for key in ("nodes", "links"):
        if key not in doc:
            raise ArtifactError(
                f"{path}: missing top-level field {key!r}",
                "expected a Neuronpedia graph JSON (metadata, qParams, nodes, links)",
            )
        if not isinstance(doc[key], list):
            raise ArtifactError(f"{path}: field {key!r} is {type(doc[key]).__name__}, expected a list")
    metadata = doc.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ArtifactError(f"{path}: field 'metadata' is {type(metadata).__name__}, expected an object")
    if weight_threshold < 0 or not math.isfinite(weight_threshold):
        raise ValueError(f"weight_threshold must be finite and >= 0, got {weight_threshold}")
    nodes, links = doc["nodes"], doc["links"]
    for what, count, limit, name in (("nodes", len(nodes), limits.max_nodes, limit_names[1]),
                                     ("links", len(links), limits.max_links, limit_names[2])):  # fmt: skip
        if count > limit:
            raise ArtifactError(
                f"{path}: {count} {what} is over the {name} limit of {limit}",
                hint=f"raise {name} if the graph is meant to be this large",
            )
    if not nodes:
        raise ArtifactError(f"{path}: graph has no nodes")
    if not links:
        raise ArtifactError(f"{path}: graph has no links")

    ids, kinds, raw_layers, positions, ftypes, features = _parse_nodes(path, nodes)
    layers = _assign_layers(path, ids, kinds, raw_layers)

    keep_kind = {"feature": True, "error": not drop_errors, "embedding": keep_embeddings, "logit": keep_logits}
    kept = [i for i, k in enumerate(kinds) if keep_kind[k]]
    dropped = {
        f"{k}_nodes": sum(1 for x in kinds if x == k) for k in ("error", "embedding", "logit") if not keep_kind[k]
    }
    if not kept:
        raise ArtifactError(
            f"{path}: no nodes left after dropping {', '.join(k for k in keep_kind if not keep_kind[k])}"
        )
    new_index = np.full(len(ids), -1, dtype=np.int64)
    new_index[kept] = np.arange(len(kept))

    src, tgt, w = _parse_links(path, links, {nid: i for i, nid in enumerate(ids)})
    s, t = new_index[src], new_index[tgt]
    inside = (s >= 0) & (t >= 0)
    dropped["links_to_dropped_nodes"] = int((~inside).sum())
    s, t, w = s[inside], t[inside], w[inside]

    loops = s == t
    dropped["self_loops"] = int(loops.sum())
    s, t, w = s[~loops], t[~loops], w[~loops]

    n = len(kept)
    key = s * n + t
    uniq, inverse = np.unique(key, return_inverse=True)
    summed = np.zeros(len(uniq))
    np.add.at(summed, inverse, w)
    dropped["duplicate_links_merged"] = int(len(key) - len(uniq))
    s, t, w = uniq // n, uniq % n, summed

    strong = np.abs(w) > weight_threshold
    dropped["below_threshold"] = int((~strong).sum())
    s, t, w = s[strong], t[strong], w[strong]
    if len(w) == 0:
        raise ArtifactError(
            f"{path}: no links left after filtering (|weight| > {weight_threshold}, dropped node kinds)",
            "lower --weight-threshold or keep more node kinds",
        )

    g = ig.Graph(n=n, edges=np.column_stack([s, t]).tolist(), directed=True)
    g.vs["id"] = [ids[i] for i in kept]
    g.vs["layer"] = [int(layers[i]) for i in kept]
    g.vs["raw_layer"] = [raw_layers[i] for i in kept]
    g.vs["position"] = [positions[i] for i in kept]
    g.vs["kind"] = [kinds[i] for i in kept]
    g.vs["feature_type"] = [ftypes[i] for i in kept]
    g.vs["feature"] = [features[i] for i in kept]
    g.es["weight"] = w.tolist()
    g.es["sign"] = np.where(w > 0, 1, -1).tolist()
    return AttributionGraph(graph=g, source=str(path), metadata=metadata, dropped=dropped)


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArtifactError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: cannot read ({exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _parse_nodes(path: Path, nodes: list) -> tuple[list, list, list, list, list, list]:
    ids, kinds, raw_layers, positions, ftypes, features = [], [], [], [], [], []
    seen: dict[str, int] = {}
    for i, node in enumerate(nodes):
        if not isinstance(node, dict):
            raise ArtifactError(f"{path}: node {i} is {type(node).__name__}, expected an object")
        for key in ("node_id", "feature_type", "ctx_idx"):
            if key not in node:
                raise ArtifactError(f"{path}: node {i} ({node.get('node_id', '?')}) is missing field {key!r}")
        nid, ftype, pos = node["node_id"], node["feature_type"], node["ctx_idx"]
        if not isinstance(nid, str) or not nid:
            raise ArtifactError(f"{path}: node {i} has node_id {nid!r}, expected a non-empty string")
        if nid in seen:
            raise ArtifactError(
                f"{path}: node id {nid!r} appears twice (nodes {seen[nid]} and {i})",
                "circuit-tracer error ids '0_{layer}_{pos}' can collide with layer-0 feature ids",
            )
        seen[nid] = i
        if not isinstance(ftype, str) or ftype.strip().lower() not in _FEATURE_TYPES:
            raise ArtifactError(
                f"{path}: node {nid!r} has unknown feature_type {ftype!r}",
                f"known: {', '.join(sorted(_FEATURE_TYPES))}",
            )
        kind = _FEATURE_TYPES[ftype.strip().lower()]
        if not _is_int(pos) or pos < 0:
            raise ArtifactError(f"{path}: node {nid!r} has ctx_idx {pos!r}, expected a non-negative integer")
        raw = node.get("layer")
        if kind in ("feature", "error"):
            if raw is None:
                raise ArtifactError(f"{path}: node {nid!r} is missing field 'layer'")
            if _parse_layer(raw) is None:
                raise ArtifactError(f"{path}: node {nid!r} has layer {raw!r}, expected an integer")
        feat = node.get("feature")
        ids.append(nid)
        kinds.append(kind)
        raw_layers.append(None if raw is None else str(raw))
        positions.append(int(pos))
        ftypes.append(ftype)
        features.append(int(feat) if _is_int(feat) else None)
    return ids, kinds, raw_layers, positions, ftypes, features


def _parse_layer(raw: Any) -> int | None:
    if _is_int(raw):
        return int(raw)
    if isinstance(raw, str):
        try:
            return int(raw.strip())
        except ValueError:
            return None
    return None


def _assign_layers(path: Path, ids: list, kinds: list, raw_layers: list) -> np.ndarray:
    body = [_parse_layer(r) for r, k in zip(raw_layers, kinds, strict=True) if k in ("feature", "error")]
    if any(x is not None and x < 0 for x in body):
        raise ArtifactError(f"{path}: a feature or error node has a negative layer (reserved for embeddings)")
    top = max(body, default=EMBEDDING_LAYER)
    out = np.empty(len(ids), dtype=np.int64)
    for i, (k, r) in enumerate(zip(kinds, raw_layers, strict=True)):
        if k == "embedding":
            out[i] = EMBEDDING_LAYER
        elif k == "logit":
            out[i] = top + 1
        else:
            out[i] = _parse_layer(r)
    return out


def _parse_links(path: Path, links: list, index: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = len(links)
    src = np.empty(m, dtype=np.int64)
    tgt = np.empty(m, dtype=np.int64)
    w = np.empty(m, dtype=np.float64)
    dangling: list[tuple[int, str, Any]] = []
    for j, link in enumerate(links):
        if not isinstance(link, dict):
            raise ArtifactError(f"{path}: link {j} is {type(link).__name__}, expected an object")
        for key in ("source", "target", "weight"):
            if key not in link:
                raise ArtifactError(f"{path}: link {j} is missing field {key!r}")
        weight = link["weight"]
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ArtifactError(
                f"{path}: link {j} ({link['source']} -> {link['target']}) has non-numeric weight {weight!r}"
            )
        if not math.isfinite(weight):
            raise ArtifactError(
                f"{path}: link {j} ({link['source']} -> {link['target']}) has non-finite weight {weight!r}"
            )
        for end in ("source", "target"):
            value = link[end]
            if not isinstance(value, str) or value not in index:
                dangling.append((j, end, value))
        if not dangling:
            src[j] = index[link["source"]]
            tgt[j] = index[link["target"]]
            w[j] = float(weight)
    if dangling:
        j, end, value = dangling[0]
        raise ArtifactError(
            f"{path}: link {j} has {end} {value!r} which is not a node id ({len(dangling)} dangling link endpoint(s) in all)"
        )
    return src, tgt, w
