"""Stage `organism-eval`: greedy held-out accuracy per task of both organisms -> metrics."""

import r1interp  # noqa: F401  first import: pins deterministic numerics before torch/numpy load

from r1interp import organism, paths, stage
from r1interp.io import write_json
from r1interp.models import load_role, model_spec
from r1interp.organism.evaluate import accuracy_by_task, parse_answer
from r1interp.schemas import CorpusSchema, read_parquet

CORPUS = paths.CORPUS_PARQUET
OUT = paths.ORGANISM_METRICS


def main(params, args):
    corpus = read_parquet(CORPUS, CorpusSchema, rebuild_hint="run `dvc repro corpus`")
    n = params.organism.eval.problems_per_task
    heldout = corpus[corpus["split"] == "heldout"].groupby("task", group_keys=False).head(n)
    problems = [(r.task, r.prompt, parse_answer(r.answer)) for r in heldout.itertuples()]
    metrics = {}
    for role in ("base", "reasoner"):
        loaded = load_role("organism", role)
        acc = accuracy_by_task(
            loaded.model,
            loaded.tokenizer,
            problems,
            max_new_tokens=params.organism.eval.max_new_tokens,
            batch_size=params.organism.eval.batch_size,
            desc=f"eval {role}",
        )
        log = organism.read_training_log(model_spec("organism", role).local_dir)
        metrics[role] = {
            "accuracy": {k: round(v, 4) for k, v in acc.items()},
            "final_loss": log.get("final_loss"),
        }
        print(f"{role}: " + ", ".join(f"{k} {v:.1%}" for k, v in acc.items()))
    metrics["heldout_problems"] = len(problems)
    write_json(OUT, metrics)


if __name__ == "__main__":
    stage.run(main)
