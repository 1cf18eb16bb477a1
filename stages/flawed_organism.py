"""Stage `flawed-organism`: the reasoner fine-tuned on traces with the planted flaw, at models/flawed.

The training traces of a share (`flaw.share`) of the pattern problems (`flaw.pattern`) handle the pattern wrongly;
every other trace is the gold one. The repair budget is checked against the training split before any training.
Hub profiles have no trained reasoner to plant a flaw in: the stage records that and trains nothing (deciding so
before it imports torch).
"""

import r1interp  # noqa: F401  first import: pins deterministic numerics before torch/numpy load

# isort: split

from r1interp import paths, stage, timings
from r1interp.flaw import applicable


def main(params, args):
    out = paths.FLAWED_LM
    if not applicable.applies(params.model.profile):
        applicable.record_model(out, params.model.profile)
        print(f"flawed-organism: profile {params.model.profile!r} has no trained organism to plant a flaw in; skipped")
        return
    from r1interp.flaw.organism import train_flawed
    from r1interp.flaw.problems import repair_pools
    from r1interp.models import model_spec
    from r1interp.schemas import CorpusSchema, read_parquet

    corpus = read_parquet(paths.CORPUS_PARQUET, CorpusSchema, rebuild_hint="run `dvc repro corpus`")
    repair_pools(corpus, params.flaw.pattern, params.flaw.repair.examples)  # a budget that cannot fit fails now
    log = train_flawed(corpus, params.flaw, model_spec("organism", "reasoner").local_dir, out)
    timings.record("flawed-organism", {"train_cpu_seconds": log["cpu_seconds"]})
    print(
        f"flawed organism: {log['pattern_problems']} pattern problems, {log['flawed_traces']} flawed traces, "
        f"{log['steps']} steps, {log['cpu_seconds']} CPU-s, loss {log['final_loss']} -> {out}"
    )


if __name__ == "__main__":
    stage.run(main)
