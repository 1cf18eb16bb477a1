"""circuit-tracer Graph -> Neuronpedia JSON, with our labels as `clerp` and collision-free node ids.

We reuse circuit-tracer's own pruning and node/link builders (`prune_graph`, `create_nodes`,
`create_used_nodes_and_edges`, `build_model`) and change two things:
- node ids: circuit-tracer names layer-0 features "0_{feature}_{pos}" and error nodes "0_{layer}_{pos}",
  so feature 2 at layer 0 and the layer-2 error node at the same position get the same id and links
  become ambiguous. Colliding error nodes are renamed "0_{layer}_{pos}_err" (their `feature_type`
  still says what they are) and the count is recorded in metadata.info.id_collisions;
- `clerp` of feature nodes is the feature's label from the `labels` stage (when there is one).
The document is validated (`schema.validate_graph`) before it is written, atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from r1interp.graphs.schema import validate_graph
from r1interp.io import write_json


def neuronpedia_document(
    graph,
    slug: str,
    tokenizer,
    *,
    node_threshold: float,
    edge_threshold: float,
    labels: dict[tuple[int, int], str] | None = None,
    info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    from circuit_tracer.graph import prune_graph
    from circuit_tracer.utils.create_graph_files import build_model, create_nodes, create_used_nodes_and_edges

    node_mask, edge_mask, cumulative = (t.cpu() for t in prune_graph(graph, node_threshold, edge_threshold))
    nodes = create_nodes(graph, node_mask, tokenizer, cumulative)
    n_features = len(graph.selected_features)
    feature_ids = {n.node_id for i, n in nodes.items() if i < n_features}
    collisions = 0
    for i, node in nodes.items():
        if i < n_features:
            layer, _, feature = graph.active_features[graph.selected_features[i]].tolist()
            node.clerp = (labels or {}).get((int(layer), int(feature)), "")
        elif node.feature_type == "mlp reconstruction error" and node.node_id in feature_ids:
            node.node_id = f"{node.node_id}_err"
            collisions += 1
    used_nodes, used_links = create_used_nodes_and_edges(graph, nodes, edge_mask)
    model = build_model(graph, used_nodes, used_links, slug, graph.scan, node_threshold, tokenizer)
    doc = model.model_dump()
    doc["metadata"]["info"] = {**(info or {}), "id_collisions": collisions, "edge_threshold": edge_threshold}
    return doc


def write_graph(path: str | Path, doc: dict[str, Any]) -> None:
    validate_graph(doc, str(path))
    write_json(path, doc)
