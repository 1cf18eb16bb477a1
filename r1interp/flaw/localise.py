"""Localise the flaw to MLP neurons: attribution of the flawed decision, scored by what fires on the flawed step.

Attribution: teacher-force a corrected trace up to the first token where the flawed trace differs (the decision
token), take m = logit(right token) - logit(flawed token) there, and credit every MLP neuron (an input unit of
`down_proj`) with sum over positions of activation x dm/dactivation — the first-order effect of removing it, as in
attribution patching. Neurons are ranked by the magnitude of their mean attribution over the examples; negative
attribution pushes toward the flaw.

Scoring against the planted rule (not used to rank): a neuron *fires on the flawed step* when its activation at the
decision token of pattern steps separates from its activation at the same token of matched steps without the
pattern (carry-in columns whose digits do not sum to 9) with AUROC >= `selective_auroc`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch

from r1interp import chat
from r1interp.organism.train import encode
from r1interp.transcoders.splice import mlp_modules


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


def attribution(model, tokenizer, cases: list[tuple[str, str, str]], batch_size: int = 32) -> pd.DataFrame:
    """cases: (question, corrected completion, flawed completion). One row per neuron, ranked: layer, neuron,
    attribution (mean over cases), positive_share (cases where it helps the right token)."""
    decisions = [decision(tokenizer, *c) for c in cases]
    total: np.ndarray | None = None
    positive: np.ndarray | None = None
    model.eval()
    with frozen(model):
        for start in range(0, len(decisions), batch_size):
            chunk = decisions[start : start + batch_size]
            width = max(pos + 1 for _, pos, _, _ in chunk)
            ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for row, (a, pos, _, _) in enumerate(chunk):
                ids[row, : pos + 1] = torch.tensor(a[: pos + 1])
                mask[row, : pos + 1] = 1
            acts, handles = _capture(model)
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
            margin = logits[rows, last, right] - logits[rows, last, wrong]
            margin.sum().backward()
            per_case = (
                torch.stack([(acts[l] * acts[l].grad * mask[..., None]).sum(1) for l in sorted(acts)], 1)
                .detach()
                .numpy()
            )  # case x layer x neuron
            total = per_case.sum(0) if total is None else total + per_case.sum(0)
            positive = (per_case > 0).sum(0) if positive is None else positive + (per_case > 0).sum(0)
    assert total is not None and positive is not None
    mean = total / len(decisions)
    layers, neurons = np.indices(mean.shape)
    table = pd.DataFrame(
        {
            "layer": layers.ravel(),
            "neuron": neurons.ravel(),
            "attribution": mean.ravel(),
            "positive_share": (positive / len(decisions)).ravel(),
        }
    )
    table["magnitude"] = table["attribution"].abs()
    return (
        table.sort_values("magnitude", ascending=False, kind="stable").reset_index(drop=True).drop(columns="magnitude")
    )


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
def activations_at(model, tokenizer, texts_and_chars: list[tuple[str, int]]) -> np.ndarray:
    """Every neuron's activation at one token per text: array case x layer x neuron."""
    out = []
    for text, char in texts_and_chars:
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        pos = token_at_char(tokenizer, text, char)
        acts, handles = _capture(model)
        try:
            model(input_ids=ids)
        finally:
            for h in handles:
                h.remove()
        out.append(np.stack([acts[l][0, pos].numpy() for l in sorted(acts)]))
    return np.stack(out)


def auroc(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """Per-column AUROC of positive vs negative rows (ties count half)."""
    both = np.concatenate([positive, negative])
    ranks = pd.DataFrame(both).rank(axis=0).to_numpy()
    r_pos = ranks[: len(positive)].sum(0)
    return (r_pos - len(positive) * (len(positive) + 1) / 2) / (len(positive) * len(negative))


def selectivity(pattern_acts: np.ndarray, control_acts: np.ndarray) -> pd.DataFrame:
    """layer, neuron, auroc (pattern decision tokens vs matched control tokens), per neuron."""
    n_layers, n_neurons = pattern_acts.shape[1:]
    score = auroc(pattern_acts.reshape(len(pattern_acts), -1), control_acts.reshape(len(control_acts), -1))
    layers, neurons = np.indices((n_layers, n_neurons))
    return pd.DataFrame({"layer": layers.ravel(), "neuron": neurons.ravel(), "auroc": score})


def score_ranking(ranked: pd.DataFrame, selective: pd.DataFrame, *, threshold: float, top: int) -> dict:
    """Where the neurons that fire on the flawed step (AUROC >= threshold, or <= 1 - threshold: selectively silent)
    land in the attribution ranking."""
    sel = selective[(selective["auroc"] >= threshold) | (selective["auroc"] <= 1 - threshold)]
    keys = set(zip(sel["layer"], sel["neuron"], strict=True))
    hits = [((int(l), int(n)) in keys) for l, n in zip(ranked["layer"], ranked["neuron"], strict=True)]
    first = next((i + 1 for i, h in enumerate(hits) if h), None)
    return {
        "selective_neurons": len(keys),
        "first_selective_rank": first,
        f"precision_at_{top}": round(sum(hits[:top]) / top, 4),
        "recall_at_top": round(sum(hits[:top]) / len(keys), 4) if keys else 0.0,
        "neurons_ranked": len(ranked),
    }
