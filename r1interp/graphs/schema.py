"""Schema of the graph JSON this project writes (Neuronpedia's format as circuit-tracer emits it).

Checked on write and on read; every problem is one line naming the file and the node or link. The
motif loader (`r1interp.motifs.graph`) is deliberately more lenient: it reads graphs from elsewhere.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from r1interp.errors import ArtifactError

FEATURE_TYPES = ("cross layer transcoder", "mlp reconstruction error", "embedding", "logit")
_METADATA = {"slug": str, "scan": str, "prompt": str, "prompt_tokens": list}
_NODE = {
    "node_id": str,
    "feature": int,
    "layer": str,
    "ctx_idx": int,
    "feature_type": str,
    "clerp": str,
    "is_target_logit": bool,
    "token_prob": (int, float),
}


def _bad(source: str, msg: str) -> ArtifactError:
    return ArtifactError(f"{source}: {msg}", hint="rebuild it with `dvc repro graphs`")


def validate_graph(doc: Any, source: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise _bad(source, "top level must be a JSON object")
    for key in ("metadata", "qParams", "nodes", "links"):
        if key not in doc:
            raise _bad(source, f"missing top-level field {key!r}")
    meta = doc["metadata"]
    if not isinstance(meta, dict):
        raise _bad(source, "metadata must be an object")
    for key, tp in _METADATA.items():
        if not isinstance(meta.get(key), tp):
            raise _bad(source, f"metadata.{key} is missing or not a {tp.__name__}")
    n_pos = len(meta["prompt_tokens"])
    if not isinstance(doc["nodes"], list) or not doc["nodes"]:
        raise _bad(source, "nodes must be a non-empty list")
    if not isinstance(doc["links"], list):
        raise _bad(source, "links must be a list")

    ids: set[str] = set()
    kinds = dict.fromkeys(FEATURE_TYPES, 0)
    for i, node in enumerate(doc["nodes"]):
        where = f"nodes[{i}]"
        if not isinstance(node, dict):
            raise _bad(source, f"{where} is not an object")
        for key, tp in _NODE.items():
            value = node.get(key)
            if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
                raise _bad(source, f"{where} ({node.get('node_id')!r}): field {key!r} is missing or of the wrong type")
        nid = node["node_id"]
        if nid in ids:
            raise _bad(source, f"{where}: duplicate node_id {nid!r}")
        ids.add(nid)
        if node["feature_type"] not in FEATURE_TYPES:
            raise _bad(
                source, f"{where} ({nid!r}): feature_type {node['feature_type']!r}; allowed: {', '.join(FEATURE_TYPES)}"
            )
        kinds[node["feature_type"]] += 1
        if not 0 <= node["ctx_idx"] < n_pos:
            raise _bad(source, f"{where} ({nid!r}): ctx_idx {node['ctx_idx']} outside the {n_pos} prompt tokens")
        if node["feature_type"] == "cross layer transcoder":
            act = node.get("activation")
            if not isinstance(act, (int, float)) or not math.isfinite(act):
                raise _bad(source, f"{where} ({nid!r}): feature node without a finite activation")
    if not kinds["logit"]:
        raise _bad(source, "no logit node")

    for i, link in enumerate(doc["links"]):
        if not isinstance(link, dict):
            raise _bad(source, f"links[{i}] is not an object")
        for end in ("source", "target"):
            if link.get(end) not in ids:
                raise _bad(source, f"links[{i}]: {end} {link.get(end)!r} is not a node")
        w = link.get("weight")
        if not isinstance(w, (int, float)) or isinstance(w, bool) or not math.isfinite(w):
            raise _bad(source, f"links[{i}]: weight {w!r} is not a finite number")
        if link["source"] == link["target"]:
            raise _bad(source, f"links[{i}]: self-loop on {link['source']!r}")
    return doc


def read_graph(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise _bad(str(path), "file not found") from None
    except json.JSONDecodeError as e:
        raise _bad(str(path), f"invalid JSON at line {e.lineno}: {e.msg}") from None
    return validate_graph(doc, str(path))
