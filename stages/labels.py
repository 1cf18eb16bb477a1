"""Stage `labels`: label features (offline rules or Claude) and score the labels on held-out examples."""

import r1interp  # noqa: F401  first import: pins deterministic numerics before torch/numpy load

# isort: split

import functools
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

import pandas as pd

from r1interp import paths, stage, timings
from r1interp.autointerp.evidence import build_evidence
from r1interp.autointerp.pipeline import label_and_score, layer_rows, plot_scores, summarize
from r1interp.io import write_json, write_parquet, write_text
from r1interp.models import model_spec
from r1interp.schemas import ExampleSchema, FeatureSchema, LabelSchema, read_parquet, validate
from r1interp.vocab import vocabulary

LABELS = paths.LABELS_PARQUET
SCORES = paths.SCORES_PARQUET
CACHE = paths.LABEL_CACHE  # Claude answers: kept across runs (persist), so nothing is paid twice
METRICS = paths.LABELS_METRICS
CACHE_README = """# Claude answer cache

`responses.jsonl`: one line per Messages-API answer, keyed by a hash of (model, system, prompt,
max_tokens), appended and fsynced as each answer arrives. The `labels` stage reads it first and only
sends requests that have no answer here, so an interrupted or repeated run never pays twice.
`batches.json`: Message Batches in flight (resumed by the next run). No secrets are stored here.
"""
PLOT = paths.LABELS_BY_LAYER
FIGURE = paths.LABELS_SCORES_PNG


def labeler_and_scorer(cfg):
    """Built before any work, so a missing API key fails fast."""
    if cfg.labeler == "offline":
        from r1interp.autointerp.offline import OfflineLabeler, OfflineScorer

        return OfflineLabeler(cfg.highlight_threshold), OfflineScorer(), None
    from r1interp.autointerp.claude import ClaudeLabeler, ClaudeScorer
    from r1interp.autointerp.client import ClaudeClient

    client = ClaudeClient(cfg.claude, CACHE)
    labeler = ClaudeLabeler(client, cfg.claude.explainer_model, cfg.claude.max_tokens, cfg.highlight_threshold)
    return labeler, ClaudeScorer(client, cfg.claude.scorer_model, cfg.examples_per_prompt), client


def label_role(role: str, params, labeler, scorer) -> tuple[pd.DataFrame, pd.DataFrame]:
    cfg, hint = params.labels, "run `dvc repro activations`"
    features = read_parquet(paths.features_parquet(role), FeatureSchema, hint)
    examples = read_parquet(paths.examples_parquet(role), ExampleSchema, hint)
    evidence = build_evidence(features, examples, vocabulary(model_spec(params.model.profile, role).local_dir), cfg)
    print(f"{role}: labeling {len(evidence)} features with the {cfg.labeler} labeler", flush=True)
    return label_and_score(evidence, labeler, scorer, cfg.highlight_threshold, cfg.seed)


def main(params, args):
    cfg = params.labels
    CACHE.mkdir(parents=True, exist_ok=True)
    readme = CACHE / "README.md"
    if not readme.exists():  # also keeps the DVC output non-empty for the offline labeler
        write_text(readme, CACHE_README)
    labeler, scorer, client = labeler_and_scorer(cfg)
    started = time.perf_counter()
    roles = list(params.train.models)
    label = functools.partial(label_role, params=params, labeler=labeler, scorer=scorer)
    workers = min(len(roles), params.model.threads) if client is None else 1  # Claude: one rate-limited client
    print(f"labeling {len(roles)} model(s) in {workers} process(es)", flush=True)
    if workers > 1:  # the offline labeler is pure Python: one process per model
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            results = list(pool.map(label, roles))
    else:
        results = [label(role) for role in roles]
    tables, scores = [r[0] for r in results], [r[1] for r in results]
    labels_df = validate(pd.concat(tables, ignore_index=True), LabelSchema, str(LABELS))
    write_parquet(SCORES, pd.concat(scores, ignore_index=True))
    write_parquet(LABELS, labels_df)
    metrics = summarize(labels_df)
    metrics["labeler"] = cfg.labeler
    write_json(METRICS, metrics)
    # retries and waits depend on the network, times on the machine: never in the hashed metrics
    timings.record(
        "labels",
        {
            "seconds": round(time.perf_counter() - started, 1),
            **({"requests": client.stats} if client is not None else {}),
        },
    )
    write_json(PLOT, layer_rows(labels_df))
    plot_scores(labels_df, FIGURE)
    for role in params.train.models:
        m = metrics.get(role, {})
        print(
            f"{role}: {m.get('labeled')} labeled; detection balanced accuracy {m.get('detection_balanced_accuracy')}, "
            f"fuzzing {m.get('fuzzing_balanced_accuracy')}"
        )


if __name__ == "__main__":
    stage.run(main)
