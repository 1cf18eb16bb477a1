"""Splicing transcoders into a model: replace MLP outputs through forward hooks.

Used by the spliced evaluation (CE/KL with one or all layers replaced) and by later
interventions. Replacement modes: the transcoder's output, zero (ablation), or a fixed
mean output (mean ablation) — all computed from the MLP's own input.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def mlp_modules(model) -> list[torch.nn.Module]:
    """The MLP module of every decoder layer (Qwen2/Llama layout: model.model.layers[i].mlp)."""
    return [layer.mlp for layer in model.base_model.layers]


def coder_forward(coder, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(output, top_acts, top_indices) of a sparsify transcoder for MLP input `x`."""
    flat = x.reshape(-1, x.shape[-1])
    top_acts, top_indices, _ = coder.encode(flat)
    out = coder.decode(top_acts, top_indices)
    if coder.W_skip is not None:
        out = out + flat.to(coder.dtype) @ coder.W_skip.mT
    return out.reshape(x.shape).to(x.dtype), top_acts, top_indices


def dense_features(coder, x: torch.Tensor) -> torch.Tensor:
    """Every feature's activation of a sparsify coder for MLP inputs x [..., d_model], 0 where the feature is not in
    the TopK: [..., latents], in the coder's dtype and on x's device."""
    flat = x.reshape(-1, x.shape[-1]).to(coder.dtype)
    acts, top, _ = coder.encode(flat)
    dense = torch.zeros(flat.shape[0], coder.num_latents, dtype=acts.dtype, device=acts.device).scatter_(1, top, acts)
    return dense.reshape(*x.shape[:-1], coder.num_latents)


@contextlib.contextmanager
def splice(
    model, replacements: dict[int, object], record: dict | None = None, keep: torch.Tensor | None = None
) -> Iterator[None]:
    """Replace the MLP output of each layer in `replacements`.

    A replacement is a sparsify coder, the string "zero", or a tensor (a mean output).
    `keep` ([batch, seq] bool) marks positions left untouched: the special tokens the coders
    were not trained on (BOS and chat tags carry outlier activations that act as attention sinks).
    If `record` is given, record[layer] receives (mlp_input, true_output, replaced_output,
    top_acts, top_indices) of the last forward pass, over the replaced positions only.
    """
    handles = []
    mlps = mlp_modules(model)
    for layer, replacement in replacements.items():

        def hook(module, inputs, output, layer=layer, replacement=replacement):
            x = inputs[0]
            if isinstance(replacement, str) and replacement == "zero":
                new = torch.zeros_like(output)
                acts = idx = None
            elif isinstance(replacement, torch.Tensor):
                new = replacement.to(output.dtype).expand_as(output)
                acts = idx = None
            else:
                new, acts, idx = coder_forward(replacement, x)
            if keep is not None:
                new = torch.where(keep[..., None], output, new)
            if record is not None:
                sel = slice(None) if keep is None else ~keep.reshape(-1)
                flat = lambda t: t.reshape(-1, t.shape[-1])[sel].detach()  # noqa: E731
                record[layer] = (
                    flat(x),
                    flat(output),
                    flat(new),
                    None if acts is None else acts[sel],
                    None if idx is None else idx[sel],
                )
            return new

        handles.append(mlps[layer].register_forward_hook(hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()
