"""Stage `organism@<role>`: train the `base` (answers only) or `reasoner` (traces) organism."""

import r1interp  # noqa: F401  first import: pins deterministic numerics before torch/numpy load

from pathlib import Path

from r1interp import organism, paths, stage, timings
from r1interp.errors import ConfigError
from r1interp.models import model_spec
from r1interp.schemas import CorpusSchema, read_parquet

CORPUS = paths.CORPUS_PARQUET


def add_args(parser):
    parser.add_argument("role", choices=["base", "reasoner"])


def main(params, args):
    if params.model.profile != "organism":
        raise ConfigError(
            f"model.profile is {params.model.profile!r}: organisms are only trained for profile 'organism'",
            hint="the real profile downloads its models with the fetch stage",
        )
    corpus = read_parquet(CORPUS, CorpusSchema, rebuild_hint="run `dvc repro corpus`")
    out = model_spec("organism", args.role).local_dir
    if args.role == "base":
        log = organism.train_base(corpus, params.organism, out)
    else:
        log = organism.train_reasoner(corpus, params.organism, model_spec("organism", "base").local_dir, out)
    timings.record(f"organism@{args.role}", {"train_cpu_seconds": log["cpu_seconds"]})
    print(f"organism {args.role}: {log['steps']} steps, {log['cpu_seconds']} CPU-s, loss {log['final_loss']} -> {out}")


if __name__ == "__main__":
    stage.run(main, add_args)
