"""Transcoder files on disk: sparsify's layout, circuit-tracer's layout, and their checks.

sparsify: `<root>/<hookpoint>/{cfg.json, sae.safetensors}` with `encoder.weight [M,d]`,
`encoder.bias [M]`, `W_dec [M,d]`, `b_dec [d]`, optional `W_skip [d,d]`.
circuit-tracer: `<dir>/config.yaml` + `layer_{i}.safetensors` with the encoder keys renamed
to `W_enc`/`b_enc` (everything else is unchanged), hooks `mlp.hook_in` -> `mlp.hook_out`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from r1interp.errors import ArtifactError
from r1interp.io import atomic_path

HOOKPOINT_RE = re.compile(r"^layers\.(\d+)\.mlp$")
CFG_REQUIRED = ("d_in", "k")
SPARSIFY_TO_CT = {
    "encoder.weight": "W_enc",
    "encoder.bias": "b_enc",
    "W_dec": "W_dec",
    "b_dec": "b_dec",
    "W_skip": "W_skip",
}
CT_INPUT_HOOK = "mlp.hook_in"
CT_OUTPUT_HOOK = "mlp.hook_out"


@dataclass(frozen=True)
class CoderInfo:
    hookpoint: str
    layer: int
    d_in: int
    num_latents: int
    k: int
    skip: bool
    transcode: bool


def layer_of(hookpoint: str) -> int:
    match = HOOKPOINT_RE.match(hookpoint)
    if not match:
        raise ArtifactError(f"hookpoint {hookpoint!r} is not an MLP hookpoint of the form layers.N.mlp")
    return int(match.group(1))


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ArtifactError(f"{path}: file not found")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: unreadable safetensors file (truncated?): {exc}") from None


def check_sparsify_coder(coder_dir: str | Path, d_model: int | None = None) -> CoderInfo:
    """Validate one sparsify checkpoint: cfg fields, tensor keys and shapes, finiteness."""
    coder_dir = Path(coder_dir)
    cfg_path = coder_dir / "cfg.json"
    try:
        cfg = json.loads(cfg_path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{cfg_path}: file not found (not a sparsify checkpoint)") from None
    except ValueError as exc:
        raise ArtifactError(f"{cfg_path}: not valid JSON ({exc})") from None
    missing = [k for k in CFG_REQUIRED if k not in cfg]
    if missing:
        raise ArtifactError(f"{cfg_path}: missing fields {missing}")
    d_in, k = int(cfg["d_in"]), int(cfg["k"])
    if d_model is not None and d_in != d_model:
        raise ArtifactError(f"{cfg_path}: d_in is {d_in} but the model's hidden size is {d_model}")
    tensors = _read_tensors(coder_dir / "sae.safetensors")
    for key in ("encoder.weight", "encoder.bias", "W_dec", "b_dec"):
        if key not in tensors:
            raise ArtifactError(f"{coder_dir / 'sae.safetensors'}: missing tensor {key!r}")
    m = tensors["encoder.weight"].shape[0]
    expected = {"encoder.weight": (m, d_in), "encoder.bias": (m,), "W_dec": (m, d_in), "b_dec": (d_in,)}
    skip = "W_skip" in tensors
    if skip:
        expected["W_skip"] = (d_in, d_in)
    for key, shape in expected.items():
        if tuple(tensors[key].shape) != shape:
            raise ArtifactError(
                f"{coder_dir / 'sae.safetensors'}: {key} has shape {tuple(tensors[key].shape)}, expected {shape}"
            )
        if not torch.isfinite(tensors[key]).all():
            raise ArtifactError(f"{coder_dir / 'sae.safetensors'}: {key} contains NaN or inf")
    # sparsify sizes the coder from the cfg (num_latents, else expansion_factor x d_in, default 32):
    # a cfg that disagrees with the tensors would fail later inside load_state_dict
    declared = int(cfg.get("num_latents") or 0) or int(cfg.get("expansion_factor", 32)) * d_in
    if declared != m:
        raise ArtifactError(
            f"{cfg_path}: the cfg sizes the coder at {declared} latents (num_latents / expansion_factor x d_in) "
            f"but the encoder has {m} rows"
        )
    if not 0 < k <= m:
        raise ArtifactError(f"{cfg_path}: k={k} must be within 1..{m} (the number of latents)")
    return CoderInfo(coder_dir.name, layer_of(coder_dir.name), d_in, m, k, skip, bool(cfg.get("transcode", False)))


def find_coders(root: str | Path) -> list[Path]:
    """Hookpoint directories under a sparsify root, in layer order."""
    root = Path(root)
    dirs = [p for p in root.iterdir() if p.is_dir() and HOOKPOINT_RE.match(p.name)] if root.is_dir() else []
    return sorted(dirs, key=lambda p: layer_of(p.name))


def write_circuit_tracer_layer(coder_dir: Path, out_file: Path) -> None:
    tensors = _read_tensors(coder_dir / "sae.safetensors")
    renamed = {SPARSIFY_TO_CT[k]: v.contiguous() for k, v in tensors.items() if k in SPARSIFY_TO_CT}
    with atomic_path(out_file) as tmp:
        save_file(renamed, str(tmp))


def write_circuit_tracer_config(out_dir: Path, layer_files: dict[int, str], scan: str, k: int) -> None:
    """config.yaml for circuit-tracer; paths are relative to `out_dir` (resolved by our loader)."""
    config = {
        "model_kind": "transcoder_set",
        "feature_input_hook": CT_INPUT_HOOK,
        "feature_output_hook": CT_OUTPUT_HOOK,
        "scan": scan,
        "activation": {"kind": "topk", "k": k},  # circuit-tracer 0.5 builds ReLU: we apply TopK after loading
        "transcoders": [layer_files[i] for i in sorted(layer_files)],
    }
    with atomic_path(out_dir / "config.yaml") as tmp:
        tmp.write_text(yaml.safe_dump(config, sort_keys=False))


def read_circuit_tracer_config(ct_dir: str | Path) -> dict:
    """config.yaml with the layer paths made absolute, ready for circuit-tracer's loaders."""
    ct_dir = Path(ct_dir)
    path = ct_dir / "config.yaml"
    if not path.is_file():
        raise ArtifactError(f"{path}: file not found")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: not valid YAML text ({str(exc).splitlines()[0]})") from None
    if not isinstance(config, dict):
        raise ArtifactError(f"{path}: expected a mapping (model_kind, transcoders, ...), got {type(config).__name__}")
    for key in ("model_kind", "feature_input_hook", "feature_output_hook", "scan", "transcoders"):
        if key not in config:
            raise ArtifactError(f"{path}: missing key {key!r}")
    layers = config["transcoders"]
    if not isinstance(layers, list) or not all(isinstance(p, str) and p for p in layers):
        raise ArtifactError(f"{path}: 'transcoders' must be a list of layer file names")
    root = Path(os.path.abspath(ct_dir))
    resolved = []
    for name in layers:
        # by name, not by following links: DVC may check files out as links into its cache
        inside = Path(os.path.normpath(root / name))
        if Path(name).is_absolute() or root not in inside.parents:
            raise ArtifactError(f"{path}: layer file {name!r} is outside {ct_dir}; only files inside the set are read")
        resolved.append(str((ct_dir / name).resolve()))
    config["transcoders"] = resolved
    return config
