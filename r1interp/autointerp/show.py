"""A feature on the terminal: its stats, label and scores, and example windows with the
activating tokens marked (what `r1interp features show` prints)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from r1interp import paths
from r1interp.autointerp.prompts import _mark, visible
from r1interp.errors import ArtifactError


def render_feature(
    root: Path, model: str, layer: int, feature: int, vocab: list[str], n: int = 5, highlight_threshold: float = 0.3
) -> str:
    """Tokens at or above `highlight_threshold` x the feature's max are marked (labels.highlight_threshold)."""
    acts_dir = root / paths.activations_dir(model)
    if not (acts_dir / "features.parquet").is_file():
        raise ArtifactError(f"{acts_dir}: no activation tables", hint="run `dvc repro activations`")
    features = pd.read_parquet(
        acts_dir / "features.parquet", filters=[("layer", "==", layer), ("feature", "==", feature)]
    )
    if features.empty:
        raise ArtifactError(f"{model}: no feature {feature} in layer {layer}")
    f = features.iloc[0]
    lines = [
        f"{model} layer {layer} feature {feature}: fires on {f['count']} of {f['n_tokens']} tokens "
        f"(density {f['density']:.4f}), max {f['max_act']:.2f}, mean {f['mean_act']:.2f}, "
        f"{100 * f['think_fraction']:.0f}% inside <think>",
        "promotes: "
        + ", ".join(
            f"{visible(t)!r} ({v:+.2f})" for t, v in zip(f["top_output_tokens"], f["top_output_logits"], strict=True)
        ),
    ]
    labels_file = root / paths.LABELS_PARQUET
    if labels_file.is_file():
        labels = pd.read_parquet(labels_file)
        row = labels[(labels["model"] == model) & (labels["layer"] == layer) & (labels["feature"] == feature)]
        if len(row):
            r = row.iloc[0]
            lines.append(f"label ({r['labeler']}, {r['explainer_model']}): {r['label']}")
            lines.append(
                f"scores: detection {r['detection_balanced_accuracy']:.2f}, fuzzing {r['fuzzing_balanced_accuracy']:.2f} "
                "(balanced accuracy, chance 0.5)"
            )
    examples = pd.read_parquet(
        acts_dir / "examples.parquet", filters=[("layer", "==", layer), ("feature", "==", feature)]
    )
    for kind in ("top", "quantile", "non_activating"):
        sub = examples[examples["kind"] == kind].sort_values(["quantile", "rank"], ascending=[False, True]).head(n)
        if sub.empty:
            continue
        lines.append(f"-- {kind}")
        for e in sub.itertuples():
            tokens = [vocab[t] if t < len(vocab) else f"<{t}>" for t in e.tokens]
            acts = np.asarray(e.acts)
            marked = acts >= highlight_threshold * f["max_act"]
            tag = f"q{e.quantile}" if e.quantile >= 0 else f"#{e.rank}"
            lines.append(f"{tag:>4} {e.activation:6.2f}  {_mark(tokens, marked)}")
    return "\n".join(lines)
