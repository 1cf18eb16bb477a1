"""Stage `interventions`: what targeted modifications do to held-out reasoning accuracy.

Every arm is evaluated on the same problem groups (organism: task x carry, out-of-distribution operand length;
Hub profiles: held-out problems by problem type, graded by math-verify, plus behaviour metrics: backtracking and
uncertainty sentences per trace, finished traces, think length) and every feature-based arm has random controls of
equal size per layer (r1interp/reasoning/experiment.py). Feature sets come from the clusters whose steps are mostly
`target_step_type`. Rows go to reports/interventions/results.csv, the summary to reports/metrics/interventions.json,
plots next to the table.
"""

import r1interp  # noqa: F401  first import: pins deterministic numerics before torch/numpy load

# isort: split

import json
import time

import numpy as np
import pandas as pd

from r1interp import paths, stage, timings
from r1interp.io import atomic_path, write_json
from r1interp.models import load_role, resolve_device
from r1interp.reasoning import benchmark, experiment
from r1interp.reasoning import intervention_plots as plots
from r1interp.reasoning.intervention_summary import summarize
from r1interp.reasoning.steps import feature_index
from r1interp.schemas import CorpusSchema, LabelSchema, read_parquet
from r1interp.transcoders import SET_ROOT, load_coders


def main(params, args):
    cfg, profile = params.interventions, params.model.profile
    started = time.perf_counter()
    real = profile != "organism"
    device = resolve_device(params.model.device)
    corpus = read_parquet(paths.CORPUS_PARQUET, CorpusSchema, "run `dvc repro corpus`")
    steps = pd.read_parquet(paths.CLUSTER_STEPS)
    profiles = np.load(paths.CLUSTER_PROFILES)
    lm = load_role(profile, cfg.model, device=device)
    coders = load_coders(SET_ROOT / cfg.model / "sparsify", device=device)
    index = feature_index(coders)
    experiment.check_inputs(steps, profiles, index, str(paths.CLUSTER_STEPS), str(paths.CLUSTER_PROFILES))
    if real:
        groups = benchmark.real_groups(corpus, cfg.problems_per_group)
    else:
        groups = benchmark.organism_groups(corpus, cfg.problems_per_group, cfg.ood_digits, cfg.seed)
    outcome = experiment.run(
        cfg,
        lm=lm,
        coders=coders,
        index=index,
        steps=steps,
        profiles=profiles,
        corpus=corpus,
        groups=groups,
        real=real,
        load_base=lambda: load_role(profile, "base", device=device),
    )

    labels = _labels(cfg.model)
    top = outcome.ranked.head(20).merge(labels, on=["layer", "feature"], how="left")
    metrics = summarize(outcome.results, cfg, outcome.ranking, top, outcome.finetune)
    timings.record("interventions", {"seconds": round(time.perf_counter() - started, 1)})
    with atomic_path(paths.INTERVENTIONS_DIR, directory=True) as tmp:
        outcome.results.to_csv(tmp / "results.csv", index=False)
        outcome.ranked.head(max(cfg.ablation_sizes)).merge(labels, on=["layer", "feature"], how="left").to_csv(
            tmp / "ranked_features.csv", index=False
        )
        plots.ablation_by_size(outcome.results, tmp / "ablation_size.png")
        plots.steering_by_alpha(outcome.results, tmp / "steering_alpha.png")
        plots.edits_and_finetune(outcome.results, tmp / "edits_finetune.png")
    write_json(paths.INTERVENTIONS_METRICS, json.loads(json.dumps(metrics, default=float)))
    print(json.dumps(metrics, indent=1, default=float)[:4000])


def _labels(model: str) -> pd.DataFrame:
    """The labels stage's feature labels for `model` (none if labels were not built)."""
    if not paths.LABELS_PARQUET.exists():
        return pd.DataFrame(columns=["layer", "feature", "label"])
    lab = read_parquet(paths.LABELS_PARQUET, LabelSchema)
    return lab[(lab["model"] == model)][["layer", "feature", "label"]]


if __name__ == "__main__":
    stage.run(main)
