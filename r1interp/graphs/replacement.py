"""Load a local model + our circuit-tracer transcoder layout as a circuit-tracer ReplacementModel.

Two things circuit-tracer 0.5.0 does not do for us (see LIBRARY-NOTES):
- TransformerLens only loads names in its OFFICIAL_MODEL_NAMES list, so the absolute model directory is
  registered there first;
- the transcoder set is built with a ReLU activation; sparsify's coders are TopK, so every layer's
  activation is replaced by ReLU-then-TopK(k) after loading (outputs then match sparsify to ~1e-7).
Widths and layer counts are checked against the model before circuit-tracer sees the files, so a
mismatched set fails with one line naming the file instead of a shape error deep in a matmul.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from r1interp.errors import ArtifactError
from r1interp.models import read_architecture
from r1interp.transcoders.layout import read_circuit_tracer_config


class TopK(torch.nn.Module):
    """sparsify's activation: ReLU, then keep the k largest latents per token."""

    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(x)
        values, indices = x.topk(min(self.k, x.shape[-1]), dim=-1)
        return torch.zeros_like(x).scatter(-1, indices, values)


def check_transcoder_set(model_dir: str | Path, ct_dir: str | Path) -> dict:
    """The circuit-tracer config of `ct_dir`, after checking it fits the model in `model_dir`."""
    arch = read_architecture(model_dir)
    config = read_circuit_tracer_config(ct_dir)
    files = config["transcoders"]
    if len(files) != arch.n_layers:
        raise ArtifactError(
            f"{ct_dir}: {len(files)} transcoder layers for a model with {arch.n_layers} layers ({model_dir})"
        )
    for layer, name in enumerate(files):
        path = Path(name)
        if not path.is_file():
            raise ArtifactError(f"{path}: transcoder file of layer {layer} not found")
        try:
            with safe_open(str(path), framework="pt") as f:
                keys = set(f.keys())
                missing = {"W_enc", "b_enc", "W_dec", "b_dec"} - keys
                if missing:
                    raise ArtifactError(f"{path}: missing tensors {', '.join(sorted(missing))}")
                latents, d_in = f.get_slice("W_enc").get_shape()
                dec_latents, d_out = f.get_slice("W_dec").get_shape()
        except SafetensorError as exc:
            raise ArtifactError(
                f"{path}: not a readable safetensors file (truncated or corrupt: {exc})",
                hint="rebuild the transcoder set (`dvc repro transcoders`) or pull it again",
            ) from None
        if d_in != arch.d_model or d_out != arch.d_model:
            raise ArtifactError(
                f"{path}: transcoder width d_in={d_in}, d_out={d_out} does not match the model's "
                f"hidden size {arch.d_model} ({model_dir})"
            )
        if dec_latents != latents:
            raise ArtifactError(f"{path}: W_enc has {latents} latents but W_dec has {dec_latents}")
    activation = config.get("activation") or {}
    if activation.get("kind") != "topk" or not int(activation.get("k", 0)) > 0:
        raise ArtifactError(f"{ct_dir}/config.yaml: expected activation {{kind: topk, k: N}}, got {activation!r}")
    return config


def load_replacement_model(model_dir: str | Path, ct_dir: str | Path, *, device: str = "cpu"):
    """circuit-tracer ReplacementModel (TransformerLens backend) with TopK activations, fp32."""
    import transformer_lens.supported_models as supported

    model_dir = str(Path(model_dir).resolve())
    ct_dir = str(Path(ct_dir).resolve())
    config = check_transcoder_set(model_dir, ct_dir)
    if model_dir not in supported.OFFICIAL_MODEL_NAMES:
        supported.OFFICIAL_MODEL_NAMES.append(model_dir)

    from circuit_tracer import ReplacementModel

    model = ReplacementModel.from_pretrained(
        model_dir, ct_dir, backend="transformerlens", device=torch.device(device), dtype=torch.float32
    )
    k = int(config["activation"]["k"])
    for transcoder in model.transcoders.transcoders:
        transcoder.activation_function = TopK(k)
    return model
