"""Stage `organism-eval`: greedy held-out accuracy per task of both models -> metrics.

Profile `organism`: exact match of the final integer, per task. Hub profiles: the real benchmark, held-out
corpus problems per problem type graded by math-verify against their gold answers, with Wilson 95% intervals.
"""

import r1interp  # noqa: F401  first import: pins deterministic numerics before torch/numpy load

# isort: split

from r1interp import paths, stage
from r1interp.io import write_json
from r1interp.models import ROLES, load_role, model_spec, resolve_device
from r1interp.organism.build import read_training_log
from r1interp.organism.evaluate import accuracy_by_task, parse_answer
from r1interp.reasoning import benchmark
from r1interp.schemas import CorpusSchema, read_parquet

CORPUS = paths.CORPUS_PARQUET
OUT = paths.ORGANISM_METRICS


def organism_metrics(corpus, cfg) -> dict:
    heldout = corpus[corpus["split"] == "heldout"].groupby("task", group_keys=False).head(cfg.problems_per_task)
    problems = [(r.task, r.prompt, parse_answer(r.answer)) for r in heldout.itertuples()]
    metrics = {}
    for role in ("base", "reasoner"):
        loaded = load_role("organism", role)
        acc = accuracy_by_task(loaded.model, loaded.tokenizer, problems, max_new_tokens=cfg.max_new_tokens,
                               batch_size=cfg.batch_size, desc=f"eval {role}")  # fmt: skip
        log = read_training_log(model_spec("organism", role).local_dir)
        metrics[role] = {"accuracy": {k: round(v, 4) for k, v in acc.items()}, "final_loss": log.get("final_loss")}
        print(f"{role}: " + ", ".join(f"{k} {v:.1%}" for k, v in acc.items()))
    metrics["heldout_problems"] = len(problems)
    return metrics


def graded_metrics(corpus, cfg, profile: str, device: str) -> dict:
    groups = benchmark.real_groups(corpus, cfg.problems_per_task)
    n = sum(len(items) for items in groups.values())
    metrics = {}
    for role in ROLES[::-1]:  # base first, as for the organism
        loaded = load_role(profile, role, device=device)
        result = benchmark.accuracy(loaded.model, loaded.tokenizer, groups, max_new_tokens=cfg.max_new_tokens,
                                    batch_size=cfg.batch_size)  # fmt: skip
        correct = sum(r["correct"] for r in result.values())
        lo, hi = benchmark.wilson(correct, n)
        acc = {g: round(r["accuracy"], 4) for g, r in result.items()} | {"overall": round(correct / n, 4)}
        ci = {g: [round(r["ci_low"], 4), round(r["ci_high"], 4)] for g, r in result.items()}
        metrics[role] = {
            "accuracy": acc,
            "ci95": ci | {"overall": [round(lo, 4), round(hi, 4)]},
            "correct": correct,
            "final_loss": None,
        }
        print(
            f"{role}: {correct}/{n} graded correct (math-verify), " + ", ".join(f"{k} {v:.1%}" for k, v in acc.items())
        )
    metrics["heldout_problems"] = n
    metrics["grader"] = "math-verify"
    return metrics


def main(params, args):
    corpus = read_parquet(CORPUS, CorpusSchema, rebuild_hint="run `dvc repro corpus`")
    if params.model.profile == "organism":
        metrics = organism_metrics(corpus, params.organism.eval)
    else:
        metrics = graded_metrics(
            corpus, params.organism.eval, params.model.profile, resolve_device(params.model.device)
        )
    write_json(OUT, metrics)


if __name__ == "__main__":
    stage.run(main)
