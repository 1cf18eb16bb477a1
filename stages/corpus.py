"""Stage `corpus`: synthetic R1-style arithmetic (organism) or OpenR1-Math (real profile) -> parquet."""

import r1interp  # noqa: F401  first import: pins deterministic numerics before torch/numpy load

# isort: split

from r1interp import corpus, paths, stage
from r1interp.io import write_parquet
from r1interp.schemas import CorpusSchema, validate

OUT = paths.CORPUS_PARQUET


def main(params, args):
    if params.model.profile == "organism":
        df = corpus.synthetic_corpus(params.corpus)
    else:
        df = corpus.openr1_corpus(params.corpus.hub, seed=params.corpus.seed)
    write_parquet(OUT, validate(df, CorpusSchema, str(OUT)))
    counts = df.groupby(["task", "split"]).size().to_dict()
    print(f"corpus: {len(df)} problems -> {OUT} {counts}")


if __name__ == "__main__":
    stage.run(main)
