"""Stage `transcoders@<model>`: assemble one model's coders from all layer groups.

Writes the sparsify layout (`sparsify/layers.N.mlp/`) and the circuit-tracer layout
(`circuit-tracer/config.yaml` + `layer_N.safetensors`, keys renamed), after checking
every coder against the model and that every layer is covered (circuit-tracer needs all).
"""

import r1interp  # noqa: F401  first import: pins deterministic numerics before torch/numpy load

# isort: split

import os
import shutil
from pathlib import Path

from r1interp import stage
from r1interp.errors import ArtifactError
from r1interp.io import atomic_path
from r1interp.models import model_spec, read_architecture
from r1interp.transcoders import SET_ROOT, TRAIN_ROOT
from r1interp.transcoders.layout import (
    check_sparsify_coder,
    find_coders,
    layer_of,
    write_circuit_tracer_config,
    write_circuit_tracer_layer,
)


def add_args(parser):
    parser.add_argument("model", choices=["reasoner", "base"])


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)  # real-scale coders are ~1 GB each: don't duplicate them
    except OSError:
        shutil.copy2(src, dst)


def main(params, args):
    spec = model_spec(params.model.profile, args.model)
    arch = read_architecture(spec.local_dir)
    coders = {}
    for group in params.train.layer_groups:
        for coder_dir in find_coders(TRAIN_ROOT / group / args.model):
            coders[layer_of(coder_dir.name)] = coder_dir
    missing = [layer for layer in range(arch.n_layers) if layer not in coders]
    partial = params.train.source == "pull" and params.train.pull.missing_layers == "skip"
    if missing and partial:
        print(
            f"transcoders {args.model}: no coder for layers {missing} (pulled release, missing_layers: skip); "
            "the circuit-tracer layout needs every layer and is not written"
        )
    elif missing:
        raise ArtifactError(
            f"{TRAIN_ROOT}: no {args.model} transcoder for layers {missing} (of {arch.n_layers})",
            hint="check train.layer_groups covers every layer, then `dvc repro train`",
        )
    out = SET_ROOT / args.model
    with atomic_path(out, directory=True) as tmp:
        layer_files, k = {}, None
        for layer, coder_dir in sorted(coders.items()):
            info = check_sparsify_coder(coder_dir, d_model=arch.d_model)
            k = info.k
            for name in ("cfg.json", "sae.safetensors"):
                _link_or_copy(coder_dir / name, tmp / "sparsify" / coder_dir.name / name)
            if not missing:
                layer_files[layer] = f"layer_{layer}.safetensors"
                write_circuit_tracer_layer(coder_dir, tmp / "circuit-tracer" / layer_files[layer])
        if not missing:
            write_circuit_tracer_config(
                tmp / "circuit-tracer", layer_files, scan=f"r1interp/{params.model.profile}-{args.model}", k=k
            )
    print(f"transcoders {args.model}: {len(coders)} layers -> {out}")


if __name__ == "__main__":
    stage.run(main, add_args)
