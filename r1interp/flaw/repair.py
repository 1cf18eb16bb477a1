"""Repairs of a localised flaw, each against a random set of equal size, plus an unconstrained fine-tune.

Techniques (all from the same corrected examples and replay problems, the same number of optimisation steps):
- `steer`: inference-time and gated. In the layer with the most attribution, a logistic gate on the top
  localised neurons' activations detects the flawed step's decision token; where it fires, a trained offset is
  added to those neurons. Elsewhere the model runs untouched.
- `feature_steer`: the same on transcoder features: in the layer with the most feature attribution, a gate on the
  top localised features' activations (the transcoder reading the MLP input), and where it fires a trained offset
  to each feature's activation, written through its decoder row into the MLP output.
- `neuron_edit`: a weight edit of rank <= k: only the `down_proj` columns of the top-k localised neurons train.
- `cluster_finetune`: the interventions stage's cluster-specific fine-tune (the update confined to the span of the
  decoder rows of one step cluster's top transcoder features), aimed at the step type where traces go wrong.
Controls: each technique on random neurons / features of equal size per layer (the next draws of the seed), and
`unconstrained`: every weight of the model trains on the same examples for the same steps.
"""

from __future__ import annotations

import contextlib
import copy
import random
from collections.abc import Iterator, Mapping

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from tqdm.auto import tqdm

from r1interp.flaw.localise import capture_mlp_inputs, decision, frozen
from r1interp.organism.train import _batch
from r1interp.reasoning.benchmark import Item, examples
from r1interp.transcoders.splice import dense_features, mlp_modules

NeuronSet = Mapping[int, list[int]]  # layer -> neuron indices


def top_neurons(ranked: pd.DataFrame, k: int, layer: int | None = None, unit: str = "neuron") -> dict[int, list[int]]:
    """The first k units of a ranking (of one layer, if given), by layer."""
    rows = ranked if layer is None else ranked[ranked["layer"] == layer]
    out: dict[int, list[int]] = {}
    for l, n in zip(rows["layer"].head(k), rows[unit].head(k), strict=True):
        out.setdefault(int(l), []).append(int(n))
    return {l: sorted(v) for l, v in sorted(out.items())}


def random_neurons(chosen: NeuronSet, width: int, rng: np.random.Generator) -> dict[int, list[int]]:
    """As many random neurons per layer as `chosen`, none of the chosen ones."""
    return {
        l: sorted(int(i) for i in rng.choice(np.setdiff1d(np.arange(width), v), size=len(v), replace=False))
        for l, v in chosen.items()
    }


def _train_loop(
    model,
    tokenizer,
    trainable: list[torch.Tensor],
    items: list[Item],
    *,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    desc: str,
) -> list[float]:
    data = examples(tokenizer, items)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(trainable, lr=lr)
    losses = []
    model.train()
    try:
        for _ in tqdm(range(steps), desc=desc, unit="step", leave=False):
            ids, labels, mask = _batch(rng.sample(data, min(batch_size, len(data))), tokenizer.pad_token_id)
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    finally:
        model.eval()
    return losses


def neuron_edit(
    model, tokenizer, neurons: NeuronSet, items: list[Item], *, steps: int, lr: float, batch_size: int, seed: int
) -> tuple[dict[int, torch.Tensor], list[float]]:
    """Train only the down_proj columns of `neurons`; returns ({layer: delta down_proj}, losses)."""
    mlps = mlp_modules(model)
    cols = {l: torch.tensor(v, dtype=torch.long) for l, v in neurons.items() if v}
    deltas = {l: torch.zeros(mlps[l].down_proj.weight.shape[0], len(c), requires_grad=True) for l, c in cols.items()}

    def make(l):
        def hook(module, inputs, output):
            return output + inputs[0][..., cols[l]] @ deltas[l].T.to(output.dtype)

        return hook

    with frozen(model):
        handles = [mlps[l].down_proj.register_forward_hook(make(l)) for l in cols]
        try:
            losses = _train_loop(
                model,
                tokenizer,
                list(deltas.values()),
                items,
                steps=steps,
                lr=lr,
                batch_size=batch_size,
                seed=seed,
                desc="neuron edit",
            )
        finally:
            for h in handles:
                h.remove()
    full = {}
    for l, c in cols.items():
        w = torch.zeros_like(mlps[l].down_proj.weight)
        w[:, c] = deltas[l].detach()
        full[l] = w
    return full, losses


def unconstrained(model, tokenizer, items: list[Item], *, steps: int, lr: float, batch_size: int, seed: int):
    """A copy of the model with every weight fine-tuned on `items`; returns (copy, losses)."""
    tuned = copy.deepcopy(model)
    for p in tuned.parameters():
        p.requires_grad_(True)
    losses = _train_loop(
        tuned,
        tokenizer,
        list(tuned.parameters()),
        items,
        steps=steps,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        desc="unconstrained fine-tune",
    )
    for p in tuned.parameters():
        p.requires_grad_(False)
    return tuned, losses


class Gate:
    """Logistic gate on a layer's chosen neurons; fires where score > threshold."""

    def __init__(self, weight: torch.Tensor, bias: float, threshold: float):
        self.weight, self.bias, self.threshold = weight, bias, threshold

    def fires(self, acts: torch.Tensor) -> torch.Tensor:
        return (acts @ self.weight + self.bias) > self.threshold


def _layer_acts(model, layer: int, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    store = {}
    mlp = mlp_modules(model)[layer]
    handle = mlp.down_proj.register_forward_pre_hook(lambda m, args: store.__setitem__("h", args[0].detach()))
    try:
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)
    finally:
        handle.remove()
    return store["h"]


def _decision_batch(tokenizer, cases, replay: list[Item]):
    """Gold ids of the corrected cases and the replay problems, with the decision position of each case (-1: none)."""
    rows, where = [], []
    for question, right, wrong in cases:
        gold, pos, _, _ = decision(tokenizer, question, right, wrong)
        rows.append(gold)
        where.append(pos)
    for ex in examples(tokenizer, replay):
        rows.append(ex.input_ids)
        where.append(-1)
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask, torch.tensor(where)


def fit_gate(
    model, tokenizer, layer: int, neurons: list[int], cases, replay: list[Item], seed: int
) -> tuple[Gate, dict]:
    """Logistic regression (balanced classes) of 'this token is a decision token' on the neurons' activations over
    every real token of the examples; the threshold maximises F1 on those tokens."""
    ids, mask, where = _decision_batch(tokenizer, cases, replay)
    return _gate_on(_layer_acts(model, layer, ids, mask)[..., neurons], mask, where, seed)


def _gate_on(acts: torch.Tensor, mask: torch.Tensor, where: torch.Tensor, seed: int) -> tuple[Gate, dict]:
    """The gate of `fit_gate` from the units' activations (batch x position x unit) of a decision batch."""
    label = torch.zeros(mask.shape, dtype=torch.bool)
    for row, pos in enumerate(where.tolist()):
        if pos >= 0:
            label[row, pos] = True
    x, y = acts[mask.bool()].numpy().astype(np.float64), label[mask.bool()].numpy()
    clf = LogisticRegression(class_weight="balanced", max_iter=2000, random_state=seed).fit(x, y)
    score = clf.decision_function(x)
    best = (0.0, 0.0)
    for t in np.unique(np.quantile(score, np.linspace(0.9, 1.0, 201))):
        pred = score > t
        tp = int((pred & y).sum())
        f1 = 2 * tp / max(1, int(pred.sum()) + int(y.sum()))
        if f1 > best[0]:
            best = (f1, float(t))
    gate = Gate(torch.tensor(clf.coef_[0], dtype=torch.float32), float(clf.intercept_[0]), best[1])
    pred = score > best[1]
    return gate, {
        "gate_f1": round(best[0], 4),
        "gate_recall": round(float((pred & y).sum() / max(1, y.sum())), 4),
        "gate_false_positive_rate": round(float((pred & ~y).sum() / max(1, (~y).sum())), 5),
    }


def train_offset(
    model, tokenizer, layer: int, neurons: list[int], cases, *, steps: int, lr: float, seed: int
) -> torch.Tensor:
    """The offset added to the neurons at decision tokens, trained to make the corrected token likely there."""
    idx = torch.tensor(neurons, dtype=torch.long)

    def install(at: torch.Tensor, offset: torch.Tensor):
        def hook(module, args):
            h = args[0].clone()
            h[..., idx] = h[..., idx] + at[..., None].to(h.dtype) * offset
            return (h,)

        return mlp_modules(model)[layer].down_proj.register_forward_pre_hook(hook)

    return _train_offset(model, tokenizer, len(neurons), install, cases, steps=steps, lr=lr, seed=seed)


def _train_offset(model, tokenizer, size: int, install, cases, *, steps: int, lr: float, seed: int) -> torch.Tensor:
    """Train an offset of `size` values, applied at each case's decision token by the hook `install(at, offset)`
    registers (`at`: batch x position, true at decision tokens), to make the corrected token likely there."""
    ids, mask, where = _decision_batch(tokenizer, cases, [])
    right = torch.tensor([ids[i, p + 1] for i, p in enumerate(where.tolist())])
    offset = torch.zeros(size, requires_grad=True)
    at = torch.zeros(ids.shape, dtype=torch.bool)
    at[torch.arange(len(where)), where] = True
    torch.manual_seed(seed)
    opt = torch.optim.Adam([offset], lr=lr)
    with frozen(model):
        handle = install(at, offset)
        try:
            for _ in tqdm(range(steps), desc="steering offset", unit="step", leave=False):
                logits = model(input_ids=ids, attention_mask=mask).logits[torch.arange(len(where)), where]
                loss = torch.nn.functional.cross_entropy(logits, right)
                opt.zero_grad()
                loss.backward()
                opt.step()
        finally:
            handle.remove()
    return offset.detach()


@contextlib.contextmanager
def gated_steering(model, layer: int, neurons: list[int], gate: Gate, offset: torch.Tensor) -> Iterator[None]:
    """Add `offset` to the neurons wherever the gate fires (during generation too: one token at a time)."""
    idx = torch.tensor(neurons, dtype=torch.long)

    def hook(module, args):
        h = args[0]
        fires = gate.fires(h[..., idx].float())
        if not bool(fires.any()):
            return None
        h = h.clone()
        h[..., idx] = h[..., idx] + fires[..., None].to(h.dtype) * offset.to(h.dtype)
        return (h,)

    handle = mlp_modules(model)[layer].down_proj.register_forward_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()


# ------------------------------------------------------------------------------ the same on transcoder features


def _feature_acts(model, coder, layer: int, features: list[int], ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The features' activations (0 outside their TopK) at every position: batch x position x feature."""
    kept, handles = capture_mlp_inputs(model, [layer])
    try:
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)
            return dense_features(coder, kept[layer].detach())[..., features].float()
    finally:
        for h in handles:
            h.remove()


def fit_feature_gate(
    model, tokenizer, coder, layer: int, features: list[int], cases, replay: list[Item], seed: int
) -> tuple[Gate, dict]:
    """`fit_gate` on transcoder features of `layer` (their activations as `coder` reads the MLP input)."""
    ids, mask, where = _decision_batch(tokenizer, cases, replay)
    return _gate_on(_feature_acts(model, coder, layer, features, ids, mask), mask, where, seed)


def train_feature_offset(
    model, tokenizer, coder, layer: int, features: list[int], cases, *, steps: int, lr: float, seed: int
) -> torch.Tensor:
    """The offset to the features' activations at decision tokens (written through their decoder rows into the
    MLP output), trained to make the corrected token likely there."""
    rows = coder.W_dec.detach()[features].float()  # feature x d_model

    def install(at: torch.Tensor, offset: torch.Tensor):
        def hook(module, inputs, output):
            return output + at[..., None].to(output.dtype) * (offset @ rows).to(output.dtype)

        return mlp_modules(model)[layer].register_forward_hook(hook)

    return _train_offset(model, tokenizer, len(features), install, cases, steps=steps, lr=lr, seed=seed)


@contextlib.contextmanager
def gated_feature_steering(
    model, coder, layer: int, features: list[int], gate: Gate, offset: torch.Tensor
) -> Iterator[None]:
    """Add offset @ W_dec[features] to the MLP output wherever the gate on the features' activations fires."""
    rows = coder.W_dec.detach()[features].float()

    def hook(module, inputs, output):
        with torch.no_grad():
            fires = gate.fires(dense_features(coder, inputs[0].detach())[..., features].float())
        if not bool(fires.any()):
            return None
        return output + fires[..., None].to(output.dtype) * (offset @ rows).to(output.dtype)

    handle = mlp_modules(model)[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
