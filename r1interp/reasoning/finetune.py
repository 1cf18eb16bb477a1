"""Cluster-specific fine-tuning: train only the part of the MLPs that a cluster's features write through.

For every layer with chosen features, the update is confined to the span U of their decoder rows:
down_proj <- down_proj + U B, with U (d_model x r, orthonormal, frozen) and B (r x d_mlp, trainable, zero at
the start, so the model is unchanged before training). Everything else stays frozen. This is a masked,
low-rank update whose rank and directions come from the features instead of from a generic LoRA.
`subspace_finetune` returns the trained deltas; `applied` adds them to the weights inside a `with` block.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, Mapping

import torch
from tqdm.auto import tqdm

from r1interp.organism.train import _batch
from r1interp.reasoning.benchmark import Item, examples
from r1interp.reasoning.interventions import orthonormal_basis
from r1interp.transcoders.splice import mlp_modules


def subspace_finetune(
    model,
    tokenizer,
    directions: Mapping[int, torch.Tensor],
    items: list[Item],
    *,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
) -> tuple[dict[int, torch.Tensor], list[float]]:
    """Train B for each layer on the gold completions of `items`; returns ({layer: delta W}, loss per step)."""
    mlps = mlp_modules(model)
    bases = {layer: orthonormal_basis(d) for layer, d in directions.items() if len(d)}
    coeffs = {
        layer: torch.zeros(u.shape[1], mlps[layer].down_proj.weight.shape[1], requires_grad=True)
        for layer, u in bases.items()
    }
    data = examples(tokenizer, items)
    rng = random.Random(seed)
    frozen = {p: p.requires_grad for p in model.parameters()}
    for p in frozen:
        p.requires_grad_(False)
    opt = torch.optim.Adam(list(coeffs.values()), lr=lr)

    def make_hook(layer):
        u, b = bases[layer], coeffs[layer]

        def hook(module, inputs, output):
            # down_proj's input is the MLP's hidden activation h; the update adds (U B) h
            return output + inputs[0] @ (u @ b).T.to(output.dtype)

        return hook

    handles = [mlps[layer].down_proj.register_forward_hook(make_hook(layer)) for layer in bases]
    losses = []
    was_training = model.training
    model.train()
    try:
        for _ in tqdm(range(steps), desc="cluster fine-tune", unit="step", leave=False):
            ids, labels, mask = _batch(rng.sample(data, min(batch_size, len(data))), tokenizer.pad_token_id)
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
        for p, flag in frozen.items():
            p.requires_grad_(flag)
    return {layer: (bases[layer] @ coeffs[layer]).detach() for layer in bases}, losses


@contextlib.contextmanager
def applied(model, deltas: Mapping[int, torch.Tensor]) -> Iterator[None]:
    """down_proj += delta for each layer inside the block; the original weights come back on exit."""
    mlps = mlp_modules(model)
    saved = {}
    try:
        with torch.no_grad():
            for layer, delta in deltas.items():
                weight = mlps[layer].down_proj.weight
                saved[layer] = weight.detach().clone()
                weight += delta.to(weight.dtype)
        yield
    finally:
        with torch.no_grad():
            for layer, weight in saved.items():
                mlps[layer].down_proj.weight.copy_(weight)
