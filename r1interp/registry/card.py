"""Model card (README.md) of a published transcoder set: YAML front matter for the Hub, then what a
user needs to trust and load the coders."""

from __future__ import annotations

from typing import Any

import yaml

LICENSE = "mit"


def model_card(
    *,
    repo_id: str,
    profile: str,
    model: str,
    base_model: str | None,
    datasets: list[str],
    coders: list[dict[str, Any]],
    training: dict[str, Any],
    metrics: dict[str, Any],
    params_hash: str,
) -> str:
    """coders: one dict per layer (hookpoint, layer, d_in, num_latents, k, skip, transcode)."""
    front: dict[str, Any] = {
        "license": LICENSE,
        "library_name": "sparsify",
        "tags": [
            "sparse-autoencoder",
            "skip-transcoder",
            "transcoder",
            "mechanistic-interpretability",
            "circuit-tracer",
            "r1interp",
        ],
    }
    if base_model:
        front["base_model"] = base_model
    if datasets:
        front["datasets"] = datasets
    k = sorted({c["k"] for c in coders})
    widths = sorted({c["num_latents"] for c in coders})
    d_in = sorted({c["d_in"] for c in coders})
    per_layer = metrics.get("per_layer", {})
    rows = "\n".join(
        f"| {c['layer']} | `{c['hookpoint']}` | {c['num_latents']} | {c['k']} | "
        f"{_fmt(per_layer.get(str(c['layer']), {}).get('fvu'))} | {_fmt(per_layer.get(str(c['layer']), {}).get('ce_increase'))} | "
        f"{_fmt(per_layer.get(str(c['layer']), {}).get('dead_pct'))} |"
        for c in coders
    )
    summary = metrics.get("all_layers", {})
    body = f"""# Skip transcoders for `{base_model or f"{profile}/{model}"}`

Sparse skip transcoders (EleutherAI [sparsify](https://github.com/EleutherAI/sparsify), TopK) for every MLP of
the **{model}** model of the r1interp `{profile}` profile, trained and evaluated by the r1interp DVC pipeline.

- hooks: input `layers.N.mlp` input (post-attention RMSNorm output) -> output `layers.N.mlp` output
  (circuit-tracer: `mlp.hook_in` -> `mlp.hook_out`); skip connection `W_skip`
- layers: {len(coders)}; d_in {", ".join(map(str, d_in))}; latents {", ".join(map(str, widths))}; k {", ".join(map(str, k))}
- training tokens: {training.get("tokens", "n/a")}
- params hash: `{params_hash}`

## Evaluation (spliced into the model)

All layers spliced at once: CE increase {_fmt(summary.get("ce_increase"))} nats, KL {_fmt(summary.get("kl"))},
fraction of CE recovered vs zero-ablation {_fmt(summary.get("frac_recovered_zero"))}.

| layer | hookpoint | latents | k | FVU | CE increase (alone) | dead % |
|---|---|---|---|---|---|---|
{rows}

## Files

- `layers.N.mlp/{{cfg.json,sae.safetensors}}`: sparsify's layout
- `circuit-tracer/config.yaml` + `circuit-tracer/layer_N.safetensors`: circuit-tracer's layout (TopK activation:
  circuit-tracer 0.5 builds ReLU, apply TopK(k) after loading, as r1interp does)
- `r1interp.json`: profile, model, metrics and params hash of this release

## Load

```python
from sparsify import SparseCoder
coder = SparseCoder.load_from_hub("{repo_id}", hookpoint="layers.0.mlp")

# or every layer, through r1interp (verifies sha256 against releases.yaml, converts layouts)
#   r1interp pull {repo_id} --revision <sha>
```

```python
from huggingface_hub import snapshot_download
from circuit_tracer import ReplacementModel
path = snapshot_download("{repo_id}")
model = ReplacementModel.from_pretrained("<model dir>", f"{{path}}/circuit-tracer", backend="transformerlens")
```
"""
    return "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n\n" + body


def dataset_card(*, repo_id: str, profile: str, model: str, labeler: str, n_labels: int, n_features: int) -> str:
    front = {"license": LICENSE, "tags": ["mechanistic-interpretability", "feature-labels", "r1interp"]}
    return (
        "---\n"
        + yaml.safe_dump(front, sort_keys=False)
        + f"""---

# Feature labels for the `{model}` transcoders of the r1interp `{profile}` profile

- `labels.parquet`: {n_labels} labeled features (labeler `{labeler}`), with detection and fuzzing scores
- `features.parquet`: activation summary of all {n_features} features (density, max/mean activation,
  `<think>` share, top output tokens)

```python
import pandas as pd
from huggingface_hub import hf_hub_download
labels = pd.read_parquet(hf_hub_download("{repo_id}", "labels.parquet", repo_type="dataset"))
```
"""
    )


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    return f"{v:.4g}" if isinstance(v, float) else str(v)
