"""Critical weights and features.

(a) Weight diff between reasoner and base: per tensor, the Frobenius norm of the change relative to the base
    weight. For every MLP, the top singular directions of the change are compared with the transcoder
    features: decoder rows (what a feature writes) against the top left singular vectors of the change of
    down_proj (what the fine-tune changed in the MLP's output), encoder rows (what a feature reads) against
    the top right singular vectors of the change of gate_proj/up_proj. Alignment is the fraction of a unit
    feature direction inside the top-r subspace; a random direction scores r / d_model on average.
(b) Attribution ranking: how much each feature influences the answer logits in the attribution graphs,
    with circuit-tracer's definition of influence (logit probabilities propagated backwards through the
    row-normalised |adjacency| of the pruned graph), averaged over correct and over incorrect answers.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open

LAYER_RE = re.compile(r"layers\.(\d+)\.(.+)\.weight$")


def _tensors(model_dir: Path) -> dict[str, tuple[Path, str]]:
    out = {}
    for shard in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(shard), framework="pt") as f:
            out.update({k: (shard, k) for k in f.keys()})
    return out


def _load(ref: tuple[Path, str]) -> torch.Tensor:
    with safe_open(str(ref[0]), framework="pt") as f:
        return f.get_tensor(ref[1]).float()


def weight_diff(reasoner_dir: Path, base_dir: Path) -> pd.DataFrame:
    """One row per weight present in both models (streamed one tensor at a time: fits real scale)."""
    r, b = _tensors(reasoner_dir), _tensors(base_dir)
    rows = []
    for name in sorted(set(r) & set(b)):
        wr, wb = _load(r[name]), _load(b[name])
        if wr.shape != wb.shape:
            continue
        m = LAYER_RE.search(name)
        diff = float((wr - wb).norm())
        base = float(wb.norm())
        rows.append(
            {
                "tensor": name,
                "layer": int(m.group(1)) if m else None,
                "module": m.group(2) if m else name,
                "shape": "x".join(map(str, wr.shape)),
                "norm_base": base,
                "norm_change": diff,
                "relative_change": diff / base if base else float("inf"),
            }
        )
    return pd.DataFrame(rows)


def _subspace_fraction(directions: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Fraction of each unit row of `directions` that lies in span(basis columns, orthonormal)."""
    unit = directions / directions.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return ((unit @ basis) ** 2).sum(1)


def aligned_features(reasoner_dir: Path, base_dir: Path, coders: dict[int, object], rank: int) -> pd.DataFrame:
    r, b = _tensors(reasoner_dir), _tensors(base_dir)
    rows = []
    for layer, coder in sorted(coders.items()):
        prefix = f"model.layers.{layer}.mlp."
        d_down = _load(r[prefix + "down_proj.weight"]) - _load(b[prefix + "down_proj.weight"])  # d_model x d_mlp
        u, s, _ = torch.linalg.svd(d_down, full_matrices=False)
        out_basis = u[:, :rank]
        d_in = torch.cat([_load(r[prefix + n]) - _load(b[prefix + n]) for n in ("gate_proj.weight", "up_proj.weight")])
        _, s_in, vh = torch.linalg.svd(d_in, full_matrices=False)
        in_basis = vh[:rank].T
        dec = coder.W_dec.detach().float()
        enc = coder.encoder.weight.detach().float()
        write = _subspace_fraction(dec, out_basis)
        read = _subspace_fraction(enc, in_basis)
        chance = rank / dec.shape[1]
        for f in range(dec.shape[0]):
            rows.append(
                {
                    "layer": layer,
                    "feature": f,
                    "decoder_alignment": float(write[f]),
                    "encoder_alignment": float(read[f]),
                    "chance": chance,
                    "top_singular_values_down": ",".join(f"{x:.3g}" for x in s[:rank].tolist()),
                }
            )
    return pd.DataFrame(rows)


def node_influence(adjacency: np.ndarray, logit_weights: np.ndarray) -> np.ndarray:
    """circuit-tracer's influence: logit weights pushed back through the row-normalised |adjacency|
    (rows: targets, cols: sources): x W + x W^2 + ... = x W (I - W)^-1."""
    a = np.abs(adjacency)
    sums = a.sum(1, keepdims=True)
    w = np.divide(a, sums, out=np.zeros_like(a), where=sums > 0)
    n = len(w)
    return logit_weights @ w @ np.linalg.inv(np.eye(n) - w)


def graph_feature_influence(doc: dict) -> pd.DataFrame:
    nodes = doc["nodes"]
    index = {n["node_id"]: i for i, n in enumerate(nodes)}
    adj = np.zeros((len(nodes), len(nodes)))
    for link in doc["links"]:
        adj[index[link["target"]], index[link["source"]]] += link["weight"]
    weights = np.array([n.get("token_prob", 0.0) if n["feature_type"] == "logit" else 0.0 for n in nodes])
    if weights.sum() > 0:
        weights = weights / weights.sum()
    infl = node_influence(adj, weights)
    rows = []
    for i, n in enumerate(nodes):
        if n["feature_type"] == "cross layer transcoder":
            rows.append(
                {"layer": int(n["layer"]), "feature": int(n["node_id"].split("_")[1]), "influence": float(infl[i])}
            )
    df = pd.DataFrame(rows, columns=["layer", "feature", "influence"])
    return df.groupby(["layer", "feature"], as_index=False)["influence"].sum()  # a feature at several positions


def attribution_ranking(graphs: list[tuple[dict, bool | None]]) -> pd.DataFrame:
    """graphs: (document, answer correct). Mean influence per feature over correct and incorrect graphs
    (0 where a feature is absent), and how often it appears."""
    per = []
    for i, (doc, correct) in enumerate(graphs):
        per.append(graph_feature_influence(doc).assign(graph=i, correct=correct))
    if not per:
        return pd.DataFrame(columns=["layer", "feature", "influence_correct", "influence_incorrect", "graphs_present"])
    df = pd.concat(per, ignore_index=True)
    n_correct = sum(1 for _, c in graphs if c is True)
    n_incorrect = sum(1 for _, c in graphs if c is False)
    agg = df.groupby(["layer", "feature"]).agg(graphs_present=("graph", "nunique")).reset_index()
    for name, flag, n in (("influence_correct", True, n_correct), ("influence_incorrect", False, n_incorrect)):
        sums = df[df["correct"] == flag].groupby(["layer", "feature"])["influence"].sum()
        agg[name] = agg.set_index(["layer", "feature"]).index.map(lambda key: sums.get(key, 0.0) / n if n else np.nan)
    agg["difference"] = agg["influence_correct"] - agg["influence_incorrect"]
    return agg.sort_values("influence_correct", ascending=False).reset_index(drop=True)
