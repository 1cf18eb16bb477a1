"""Targeted modifications of a model, each a context manager that restores the model on exit.

- `ablate`: subtract chosen transcoder features' contributions (activation x decoder row, with the encoder's
  TopK computed on the real MLP input) from the real MLP output. The transcoder's reconstruction error stays in
  place, so only the chosen features change — not the whole MLP (splicing the transcoder in would also add its
  error everywhere, and every arm of the comparison would pay for it).
- `steer`: add a fixed vector (alpha x a feature-built direction) to an MLP's output at every position.
- `edit_down_proj`: scale the span of some directions inside an MLP's output weights (scale 0 projects them
  out): W <- W + (scale - 1) Q Q^T W with Q an orthonormal basis of the directions.

All work on Qwen2/Llama-style models (`model.model.layers[i].mlp.down_proj`), organism or real.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import torch

from r1interp.transcoders.splice import dense_features, mlp_modules

FeatureSet = Mapping[int, list[int]]  # layer -> feature indices


@contextlib.contextmanager
def _hooks(model, per_layer: Mapping[int, object], make_hook) -> Iterator[None]:
    mlps = mlp_modules(model)
    handles = [mlps[layer].register_forward_hook(make_hook(layer, item)) for layer, item in per_layer.items()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def ablate(model, coders: Mapping[int, object], features: FeatureSet):
    """Zero the chosen features: the MLP output loses exactly their decoded contribution."""
    chosen = {layer: torch.tensor(sorted(set(f)), dtype=torch.long) for layer, f in features.items() if len(f)}

    def make_hook(layer, idx):
        coder = coders[layer]
        w_dec = coder.W_dec.detach()[idx]  # [n, d_model]

        def hook(module, inputs, output):
            # activation of each chosen feature where it made the TopK, else 0
            chosen_acts = dense_features(coder, inputs[0])[..., idx.to(inputs[0].device)]  # [..., n]
            return output - (chosen_acts @ w_dec).reshape(output.shape).to(output.dtype)

        return hook

    return _hooks(model, chosen, make_hook)


def steer(model, vectors: Mapping[int, torch.Tensor], alpha: float):
    """Add alpha x vectors[layer] to the MLP output of each layer, at every position."""

    def make_hook(layer, vec):
        def hook(module, inputs, output):
            return output + alpha * vec.to(output.device, output.dtype)

        return hook

    return _hooks(model, dict(vectors), make_hook)


def orthonormal_basis(directions: torch.Tensor) -> torch.Tensor:
    """Columns spanning the rows of `directions` ([n, d] -> [d, r], r = numerical rank)."""
    q, r = torch.linalg.qr(directions.float().T)
    keep = r.diagonal().abs() > 1e-6 * r.diagonal().abs().max().clamp_min(1e-12)
    return q[:, keep]


@contextlib.contextmanager
def edit_down_proj(model, directions: Mapping[int, torch.Tensor], scale: float) -> Iterator[None]:
    """Scale the span of directions[layer] ([n, d_model]) in that layer's MLP output weights; restored on exit."""
    mlps = mlp_modules(model)
    saved = {}
    try:
        with torch.no_grad():
            for layer, dirs in directions.items():
                if not len(dirs):
                    continue
                weight = mlps[layer].down_proj.weight  # [d_model, d_mlp]
                saved[layer] = weight.detach().clone()
                q = orthonormal_basis(dirs).to(weight.device, weight.dtype)
                weight += (scale - 1.0) * q @ (q.T @ weight)
        yield
    finally:
        with torch.no_grad():
            for layer, weight in saved.items():
                mlps[layer].down_proj.weight.copy_(weight)


def decoder_rows(coders: Mapping[int, object], features: FeatureSet) -> dict[int, torch.Tensor]:
    """The decoder rows (what each feature writes into the residual stream) of a feature set, per layer."""
    return {layer: coders[layer].W_dec.detach()[sorted(f)].float() for layer, f in features.items() if len(f)}


def feature_vector(coders: Mapping[int, object], weights: Mapping[int, Mapping[int, float]]) -> dict[int, torch.Tensor]:
    """Per layer, sum_f weight_f x W_dec[f] (e.g. weight = the feature's mean activation: its typical output)."""
    out = {}
    for layer, per_feature in weights.items():
        if not per_feature:
            continue
        idx = torch.tensor(list(per_feature), dtype=torch.long)
        w = torch.tensor([float(v) for v in per_feature.values()])
        out[layer] = w @ coders[layer].W_dec.detach()[idx].float()
    return out
