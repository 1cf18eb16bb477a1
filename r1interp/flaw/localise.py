"""Localise the flaw to MLP neurons and to transcoder features: attribution of the flawed decision, scored by what
fires on the flawed step.

Attribution: teacher-force a corrected trace up to the first token where the flawed trace differs (the decision
token), take m = logit(right token) - logit(flawed token) there, and credit every MLP neuron (an input unit of
`down_proj`) with sum over positions of activation x dm/dactivation — the first-order effect of removing it, as in
attribution patching. Transcoder features get the same credit through their decoder rows: sum over positions of
activation x (W_dec[f] . dm/d mlp_output), the first-order effect of removing the feature's share of the
transcoder's reconstruction of the MLP output. The model runs unspliced (the transcoders, trained on the reasoner,
only read its MLP inputs), so the gradient is the flawed organism's own. Units are ranked by the magnitude of their
mean attribution over the examples; negative attribution pushes toward the flaw.

Scoring against the planted rule (not used to rank): a unit *fires on the flawed step* when its activation at the
decision token of pattern steps separates from its activation at the same token of matched steps without the
pattern (carry-in columns whose digits do not sum to 9) with AUROC >= `selective_auroc` (or <= 1 - it). The share
of units that do is the precision a random ranking would get.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import torch

from r1interp import chat
from r1interp.organism.train import encode
from r1interp.transcoders.splice import dense_features, mlp_modules


def _ids(tokenizer, question: str, completion: str) -> list[int]:
    return encode(tokenizer, chat.prompt_text(question), completion).input_ids


def decision(tokenizer, question: str, right: str, wrong: str) -> tuple[list[int], int, int, int]:
    """(right ids, position whose next token decides, the right token, the flawed token)."""
    a, b = _ids(tokenizer, question, right), _ids(tokenizer, question, wrong)
    j = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
    if j is None or j == 0:
        raise ValueError(f"{question!r}: the corrected and the flawed trace do not differ")
    return a, j - 1, a[j], b[j]


@contextlib.contextmanager
def frozen(model) -> Iterator[None]:
    """No weight of `model` takes gradients inside the block; the flags come back on exit."""
    flags = {p: p.requires_grad for p in model.parameters()}
    for p in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)


def _capture(model):
    """Hooks that keep every layer's down_proj input (with its gradient)."""
    acts: dict[int, torch.Tensor] = {}

    def make(layer):
        def hook(module, args):
            h = args[0]
            if h.requires_grad:
                h.retain_grad()
            acts[layer] = h

        return hook

    handles = [m.down_proj.register_forward_pre_hook(make(layer)) for layer, m in enumerate(mlp_modules(model))]
    return acts, handles


def _prefix_batches(decisions: list, pad_id: int, batch_size: int) -> Iterator[tuple[list, torch.Tensor, torch.Tensor]]:
    """(decisions, ids, mask) per batch: each corrected trace teacher-forced up to its decision token."""
    for start in range(0, len(decisions), batch_size):
        chunk = decisions[start : start + batch_size]
        width = max(pos + 1 for _, pos, _, _ in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, (a, pos, _, _) in enumerate(chunk):
            ids[row, : pos + 1] = torch.tensor(a[: pos + 1])
            mask[row, : pos + 1] = 1
        yield chunk, ids, mask


def _backward_margin(model, chunk: list, ids: torch.Tensor, mask: torch.Tensor, handles: list) -> None:
    """Forward with the capture hooks `handles` (removed after), then backpropagate the summed margins."""
    embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)  # so activations carry grads
    try:
        logits = model(inputs_embeds=embeds, attention_mask=mask).logits
    finally:
        for h in handles:
            h.remove()
    rows = torch.arange(len(chunk))
    last = torch.tensor([pos for _, pos, _, _ in chunk])
    right = torch.tensor([r for _, _, r, _ in chunk])
    wrong = torch.tensor([w for _, _, _, w in chunk])
    (logits[rows, last, right] - logits[rows, last, wrong]).sum().backward()


def _ranked(
    per_case_batches: Iterator[np.ndarray], n_cases: int, unit: str, layer_ids: list[int] | None = None
) -> pd.DataFrame:
    """Rows layer, `unit`, attribution (mean over cases), positive_share, ranked by |attribution| (ties stable)
    from batches of case x layer x unit attributions (`layer_ids`: the layer of each index, default 0..n-1)."""
    total: np.ndarray | None = None
    positive: np.ndarray | None = None
    for per_case in per_case_batches:
        total = per_case.sum(0) if total is None else total + per_case.sum(0)
        positive = (per_case > 0).sum(0) if positive is None else positive + (per_case > 0).sum(0)
    assert total is not None and positive is not None
    mean = total / n_cases
    layers, units = np.indices(mean.shape)
    if layer_ids is not None:
        layers = np.asarray(layer_ids)[layers]
    table = pd.DataFrame(
        {
            "layer": layers.ravel(),
            unit: units.ravel(),
            "attribution": mean.ravel(),
            "positive_share": (positive / n_cases).ravel(),
        }
    )
    table["magnitude"] = table["attribution"].abs()
    return (
        table.sort_values("magnitude", ascending=False, kind="stable").reset_index(drop=True).drop(columns="magnitude")
    )


def attribution(model, tokenizer, cases: list[tuple[str, str, str]], batch_size: int = 32) -> pd.DataFrame:
    """cases: (question, corrected completion, flawed completion). One row per neuron, ranked: layer, neuron,
    attribution (mean over cases), positive_share (cases where it helps the right token)."""
    decisions = [decision(tokenizer, *c) for c in cases]

    def batches() -> Iterator[np.ndarray]:
        for chunk, ids, mask in _prefix_batches(decisions, tokenizer.pad_token_id, batch_size):
            acts, handles = _capture(model)
            _backward_margin(model, chunk, ids, mask, handles)
            yield (
                torch.stack([(acts[l] * acts[l].grad * mask[..., None]).sum(1) for l in sorted(acts)], 1)
                .detach()
                .numpy()
            )  # case x layer x neuron

    model.eval()
    with frozen(model):
        return _ranked(batches(), len(decisions), "neuron")


def _capture_mlp(model, layers) -> tuple[dict[int, tuple[torch.Tensor, torch.Tensor]], list]:
    """Hooks that keep the input and the output (with its gradient) of the MLP of each of `layers`."""
    seen: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def make(layer):
        def hook(module, inputs, output):
            if output.requires_grad:
                output.retain_grad()
            seen[layer] = (inputs[0], output)

        return hook

    mlps = mlp_modules(model)
    return seen, [mlps[layer].register_forward_hook(make(layer)) for layer in layers]


def capture_mlp_inputs(model, layers) -> tuple[dict[int, torch.Tensor], list]:
    """Hooks that keep the input of the MLP of each of `layers` (what its transcoder reads), detached."""
    kept: dict[int, torch.Tensor] = {}
    mlps = mlp_modules(model)
    return kept, [
        mlps[layer].register_forward_pre_hook(lambda m, args, layer=layer: kept.__setitem__(layer, args[0].detach()))
        for layer in layers
    ]


def feature_attribution(
    model, tokenizer, cases: list[tuple[str, str, str]], coders: dict[int, Any], batch_size: int = 32
) -> pd.DataFrame:
    """Like `attribution`, over the transcoder features of `coders` (layer -> sparsify coder of that layer's MLP):
    rows layer, feature, attribution, positive_share."""
    layers = sorted(coders)
    decisions = [decision(tokenizer, *c) for c in cases]

    def batches() -> Iterator[np.ndarray]:
        for chunk, ids, mask in _prefix_batches(decisions, tokenizer.pad_token_id, batch_size):
            seen, handles = _capture_mlp(model, layers)
            _backward_margin(model, chunk, ids, mask, handles)
            per_layer = []
            for layer in layers:
                x, out = seen[layer]
                assert out.grad is not None  # the margin depends on every MLP output before the decision
                dense = dense_features(coders[layer], x.detach())  # case x pos x feature
                # each feature's share of the reconstruction, dotted with the margin's gradient at the MLP output
                along = out.grad.to(dense.dtype) @ coders[layer].W_dec.detach().T  # case x pos x feature
                per_layer.append((dense * along * mask[..., None]).sum(1))
            yield torch.stack(per_layer, 1).detach().numpy()  # case x layer x feature

    model.eval()
    with frozen(model):
        return _ranked(batches(), len(decisions), "feature", layers)


def layer_mass(ranked: pd.DataFrame) -> dict[int, float]:
    """Share of the total attribution magnitude in each layer (which MLP weights the flaw lives in)."""
    mass = ranked.assign(m=ranked["attribution"].abs()).groupby("layer")["m"].sum()
    return {int(l): round(float(v / mass.sum()), 4) for l, v in mass.items()}


def token_at_char(tokenizer, text: str, char: int) -> int:
    """Index of the token of `text` that holds character `char`."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    for i, (lo, hi) in enumerate(enc["offset_mapping"]):
        if lo <= char < hi:
            return i
    raise ValueError(f"character {char} is in no token")


@torch.no_grad()
def _captured_at_token(
    model, tokenizer, texts_and_chars: list[tuple[str, int]], capture
) -> list[dict[int, torch.Tensor]]:
    """Per text, layer -> what `capture(model)` keeps (a [1, pos, width] tensor) at the token holding the given
    character."""
    out = []
    for text, char in texts_and_chars:
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        pos = token_at_char(tokenizer, text, char)
        kept, handles = capture(model)
        try:
            model(input_ids=ids)
        finally:
            for h in handles:
                h.remove()
        out.append({layer: v[0, pos] for layer, v in kept.items()})
    return out


def activations_at(model, tokenizer, texts_and_chars: list[tuple[str, int]]) -> np.ndarray:
    """Every neuron's activation at one token per text: array case x layer x neuron."""
    per_text = _captured_at_token(model, tokenizer, texts_and_chars, _capture)
    return np.stack([np.stack([t[l].numpy() for l in sorted(t)]) for t in per_text])


def feature_activations_at(
    model, tokenizer, texts_and_chars: list[tuple[str, int]], coders: dict[int, Any]
) -> np.ndarray:
    """Every transcoder feature's activation (0 outside its TopK) at one token per text: case x layer x feature."""
    layers = sorted(coders)
    per_text = _captured_at_token(model, tokenizer, texts_and_chars, lambda m: capture_mlp_inputs(m, layers))
    with torch.no_grad():
        return np.stack([np.stack([dense_features(coders[l], t[l]).numpy() for l in layers]) for t in per_text])


def auroc(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """Per-column AUROC of positive vs negative rows (ties count half)."""
    both = np.concatenate([positive, negative])
    ranks = pd.DataFrame(both).rank(axis=0).to_numpy()
    r_pos = ranks[: len(positive)].sum(0)
    return (r_pos - len(positive) * (len(positive) + 1) / 2) / (len(positive) * len(negative))


def selectivity(
    pattern_acts: np.ndarray, control_acts: np.ndarray, unit: str = "neuron", layer_ids: list[int] | None = None
) -> pd.DataFrame:
    """layer, `unit`, auroc (pattern decision tokens vs matched control tokens), per unit (`layer_ids` as in
    `_ranked`)."""
    n_layers, n_units = pattern_acts.shape[1:]
    score = auroc(pattern_acts.reshape(len(pattern_acts), -1), control_acts.reshape(len(control_acts), -1))
    layers, units = np.indices((n_layers, n_units))
    if layer_ids is not None:
        layers = np.asarray(layer_ids)[layers]
    return pd.DataFrame({"layer": layers.ravel(), unit: units.ravel(), "auroc": score})


def score_ranking(
    ranked: pd.DataFrame, selective: pd.DataFrame, *, threshold: float, top: int, unit: str = "neuron"
) -> dict:
    """Where the units that fire on the flawed step (AUROC >= threshold, or <= 1 - threshold: selectively silent)
    land in the attribution ranking; `selective_share` is the precision a random ranking would expect."""
    sel = selective[(selective["auroc"] >= threshold) | (selective["auroc"] <= 1 - threshold)]
    keys = set(zip(sel["layer"], sel[unit], strict=True))
    hits = [((int(l), int(n)) in keys) for l, n in zip(ranked["layer"], ranked[unit], strict=True)]
    first = next((i + 1 for i, h in enumerate(hits) if h), None)
    return {
        f"selective_{unit}s": len(keys),
        "selective_share": round(len(keys) / len(ranked), 4) if len(ranked) else 0.0,
        "first_selective_rank": first,
        f"precision_at_{top}": round(sum(hits[:top]) / top, 4),
        "recall_at_top": round(sum(hits[:top]) / len(keys), 4) if keys else 0.0,
        f"{unit}s_ranked": len(ranked),
    }
