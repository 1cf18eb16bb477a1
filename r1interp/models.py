"""Model profiles, loading, and an architecture description so no code hard-codes sizes.

A profile names a (reasoner, base) pair. Every later stage loads a model through
`load_model`, which returns the model, its tokenizer and an `Architecture` (layer
count, widths, MLP hook names); layers are chosen by fraction of depth.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from r1interp import paths
from r1interp.errors import ArtifactError, ConfigError

ROLES = ("reasoner", "base")


@dataclass(frozen=True)
class ModelSpec:
    role: str
    repo_id: str | None = None  # Hub repo for downloaded profiles
    revision: str | None = None  # pinned commit sha

    @property
    def local_dir(self) -> Path:
        """Where every stage after `organism@<role>` loads the model from, whatever the profile."""
        return paths.lm_dir(self.role)

    @property
    def download_dir(self) -> Path | None:
        """Where the `fetch` stage downloads a Hub model (None for trained organisms)."""
        return paths.hub_model_dir(self.role) if self.repo_id else None

    @property
    def rebuild_hint(self) -> str:
        if self.repo_id:
            return f"run `dvc repro organism@{self.role}` (fetch downloads {self.repo_id}@{self.revision})"
        return f"run `dvc repro organism@{self.role}`"


PROFILES: dict[str, dict[str, ModelSpec]] = {
    "organism": {
        "reasoner": ModelSpec("reasoner"),
        "base": ModelSpec("base"),
    },
    "r1-distill-qwen-1.5b": {
        "reasoner": ModelSpec(
            "reasoner",
            "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
            "ad9f0ae0864d7fbcd1cd905e3c6c5b069cc8b562",
        ),
        "base": ModelSpec(
            "base",
            "Qwen/Qwen2.5-Math-1.5B",
            "4a83ca6e4526a4f2da3aa259ec36c259f66b2ab2",
        ),
    },
}


def model_spec(profile: str, role: str) -> ModelSpec:
    if profile not in PROFILES:
        raise ConfigError(f"model.profile: {profile!r} is not allowed; allowed: {', '.join(PROFILES)}")
    if role not in ROLES:
        raise ConfigError(f"model role {role!r} is not allowed; allowed: {', '.join(ROLES)}")
    return PROFILES[profile][role]


@dataclass(frozen=True)
class Architecture:
    """What later stages need to know about a decoder-only model, read from its config."""

    model_type: str
    n_layers: int
    d_model: int
    d_mlp: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    max_positions: int

    @classmethod
    def from_config(cls, config) -> Architecture:
        return cls(
            model_type=config.model_type,
            n_layers=config.num_hidden_layers,
            d_model=config.hidden_size,
            d_mlp=config.intermediate_size,
            n_heads=config.num_attention_heads,
            n_kv_heads=getattr(config, "num_key_value_heads", config.num_attention_heads),
            vocab_size=config.vocab_size,
            max_positions=config.max_position_embeddings,
        )

    def mlp_hookpoint(self, layer: int) -> str:
        """sparsify's name for the MLP module of `layer` (relative to the base model)."""
        self.check_layer(layer)
        return f"layers.{layer}.mlp"

    @property
    def mlp_hookpoints(self) -> list[str]:
        return [self.mlp_hookpoint(i) for i in range(self.n_layers)]

    def check_layer(self, layer: int) -> None:
        if not 0 <= layer < self.n_layers:
            raise ConfigError(f"layer {layer} is outside the model: it has layers 0..{self.n_layers - 1}")

    def layer_at_fraction(self, fraction: float) -> int:
        """Layer index at a fraction of depth: 0.07/0.5/0.93 of 28 layers -> 2/14/26."""
        if not 0.0 <= fraction <= 1.0:
            raise ConfigError(f"depth fraction {fraction} must be within [0, 1]")
        return min(self.n_layers - 1, round(fraction * self.n_layers))

    def layers_at_fractions(self, fractions) -> list[int]:
        return sorted({self.layer_at_fraction(f) for f in fractions})


@dataclass
class LoadedModel:
    model: object  # transformers.PreTrainedModel
    tokenizer: object  # transformers.PreTrainedTokenizerBase
    arch: Architecture
    path: Path


def check_model_dir(path: Path, hint: str | None = None) -> None:
    if not path.is_dir():
        raise ArtifactError(f"{path}: model directory does not exist", hint=hint)
    for required in ("config.json", "tokenizer_config.json"):
        if not (path / required).is_file():
            raise ArtifactError(f"{path}: not a saved model directory (no {required})", hint=hint)
    if not any(path.glob("*.safetensors")):
        raise ArtifactError(f"{path}: no *.safetensors weights (only safetensors are loaded)", hint=hint)


def read_architecture(path: str | Path) -> Architecture:
    """The architecture from a model directory's config.json, without loading weights."""
    from transformers import AutoConfig

    path = Path(path)
    check_model_dir(path)
    return Architecture.from_config(AutoConfig.from_pretrained(path))


def check_vocab(tokenizer, arch: Architecture, source: str) -> None:
    if len(tokenizer) > arch.vocab_size:
        raise ArtifactError(
            f"{source}: tokenizer has {len(tokenizer)} tokens but the model's embedding has only {arch.vocab_size} rows"
        )


def load_model(path: str | Path, *, device: str = "cpu", hint: str | None = None) -> LoadedModel:
    """Load model + tokenizer from a local directory (safetensors only) in fp32, eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from r1interp import sdpa_mask

    sdpa_mask.install()  # the same attention masks, built without vmap (padded decoding 0.56-0.71x the time)
    path = Path(path)
    check_model_dir(path, hint)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, use_safetensors=True)
    model.to(device).eval()
    arch = Architecture.from_config(model.config)
    check_vocab(tokenizer, arch, str(path))
    return LoadedModel(model, tokenizer, arch, path)


def token_strings(tokenizer) -> list[str]:
    """Every token id decoded on its own: how tables, labels and prompts show tokens."""
    return [tokenizer.decode([i]) for i in range(len(tokenizer))]


def load_role(profile: str, role: str, *, root: Path = Path("."), device: str = "cpu") -> LoadedModel:
    spec = model_spec(profile, role)
    return load_model(root / spec.local_dir, device=device, hint=spec.rebuild_hint)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("model.device: 'cuda' requested but torch sees no CUDA device; allowed here: auto, cpu")
    return device


def describe(path: str | Path) -> dict:
    """JSON-able summary of a model directory (for metrics and model cards)."""
    arch = read_architecture(path)
    return {"path": str(path), **dataclasses.asdict(arch)}
