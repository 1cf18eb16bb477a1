"""Skip transcoders: training (sparsify), on-disk layouts and checks, splicing, evaluation."""

from __future__ import annotations

from pathlib import Path

from r1interp import paths
from r1interp.errors import ArtifactError, ConfigError

TRAIN_ROOT = paths.TRANSCODERS_TRAIN_DIR  # train@<group> outputs: <group>/<model>/<hookpoint>/
SET_ROOT = paths.TRANSCODERS_DIR  # assembled sets: <model>/{sparsify,circuit-tracer}/


def excluded_token_ids(tokenizer) -> list[int]:
    """BOS/EOS/pad and the chat role tags: not trained on, and left unspliced in evaluation."""
    from r1interp import chat

    ids = [tokenizer.convert_tokens_to_ids(t) for t in (chat.BOS, chat.EOS, chat.PAD, chat.USER, chat.ASSISTANT)]
    ids += [tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id]
    return sorted({i for i in ids if i is not None and i != tokenizer.unk_token_id})


def group_layers(group: str, n_layers: int) -> list[int]:
    """'all' | 'N' | 'A-B' (inclusive) -> layer indices, checked against the model's depth."""
    if group == "all":
        return list(range(n_layers))
    try:
        start, _, end = group.partition("-")
        layers = list(range(int(start), int(end or start) + 1))
    except ValueError:
        raise ConfigError(f"train.layer_groups: {group!r} is not 'all', 'N' or 'A-B'") from None
    bad = [layer for layer in layers if not 0 <= layer < n_layers]
    if bad:
        raise ConfigError(
            f"train.layer_groups: {group!r} names layers {bad} outside the model (layers 0..{n_layers - 1})"
        )
    return layers


def load_coders(sparsify_root: str | Path, layers: list[int] | None = None, device: str = "cpu") -> dict[int, object]:
    """Validated sparsify coders by layer, read from disk (never from a trainer's memory)."""
    from sparsify import SparseCoder

    from r1interp.transcoders.layout import check_sparsify_coder, find_coders, layer_of

    root = Path(sparsify_root)
    dirs = find_coders(root)
    if not dirs:
        raise ArtifactError(f"{root}: no transcoder checkpoints (layers.N.mlp/)", hint="run `dvc repro transcoders`")
    found = {layer_of(d.name): d for d in dirs}
    wanted = sorted(found) if layers is None else layers
    missing = [layer for layer in wanted if layer not in found]
    if missing:
        raise ArtifactError(f"{root}: no transcoder for layers {missing}")
    coders = {}
    for layer in wanted:
        check_sparsify_coder(found[layer])
        coders[layer] = SparseCoder.load_from_disk(found[layer], device=device).eval()
    return coders
