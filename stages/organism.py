"""Stage `organism@<role>`: the model of a role (reasoner | base) at models/lm/<role>, for every profile.

Profile `organism` trains it: the `base` on answers only, the `reasoner` fine-tuned on `<think>` traces.
Hub profiles install the `fetch` stage's verified download of the pinned revision (a copy: the download
stays where fetch keeps it, so switching profiles back and forth never downloads twice).
"""

import r1interp  # noqa: F401  first import: pins deterministic numerics before torch/numpy load

# isort: split

from r1interp import paths, stage, timings
from r1interp.fetch import install_model
from r1interp.models import model_spec, read_architecture
from r1interp.organism import build
from r1interp.schemas import CorpusSchema, read_parquet

CORPUS = paths.CORPUS_PARQUET


def add_args(parser):
    parser.add_argument("role", choices=["base", "reasoner"])


def main(params, args):
    spec = model_spec(params.model.profile, args.role)
    out = spec.local_dir
    if spec.repo_id:
        receipt = install_model(spec, spec.download_dir, out)
        arch = read_architecture(out)
        print(
            f"organism@{args.role}: profile {params.model.profile!r} uses {spec.repo_id}@{spec.revision[:12]} "
            f"({arch.n_layers} layers, hidden {arch.d_model}, {receipt['bytes'] / 1e9:.2f} GB), installed from "
            f"{spec.download_dir} -> {out}"
        )
        return
    corpus = read_parquet(CORPUS, CorpusSchema, rebuild_hint="run `dvc repro corpus`")
    if args.role == "base":
        log = build.train_base(corpus, params.organism, out)
    else:
        log = build.train_reasoner(corpus, params.organism, model_spec("organism", "base").local_dir, out)
    timings.record(f"organism@{args.role}", {"train_cpu_seconds": log["cpu_seconds"]})
    print(f"organism {args.role}: {log['steps']} steps, {log['cpu_seconds']} CPU-s, loss {log['final_loss']} -> {out}")


if __name__ == "__main__":
    stage.run(main, add_args)
