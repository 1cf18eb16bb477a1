"""Stage `flaw`: find, localise and fix the planted flaw of the flawed organism (r1interp/flaw/experiment.py).

Writes reports/flaw/ (repairs.csv: every arm on every held-out group with Wilson intervals; rules.csv: the
finder's rules; neurons.csv and features.csv: the attribution rankings; arms.json: what each arm touched;
repairs.png) and the summary reports/metrics/flaw.json (find and localise scores, the repair table, which
techniques meet the bar). On a Hub profile it records that the flaw does not apply, before importing torch.
"""

import r1interp  # noqa: F401  first import: pins deterministic numerics before torch/numpy load

# isort: split

import json
import time

from r1interp import paths, stage, timings
from r1interp.flaw import applicable
from r1interp.io import atomic_path, write_json

SUMMARY_COLUMNS = ("arm", "kind", "params_changed", "lift", "worst_other_drop", "flaw_gold_nll")


def main(params, args):
    cfg = params.flaw
    if not applicable.applies(params.model.profile):
        reason = applicable.reason(params.model.profile)
        applicable.record(paths.FLAW_DIR, {"reason": reason})
        write_json(paths.FLAW_METRICS, {"applicable": False, "reason": reason})
        print(f"flaw: {reason}; skipped")
        return
    import numpy as np
    import pandas as pd

    from r1interp.flaw import experiment, plots
    from r1interp.models import load_model
    from r1interp.reasoning.steps import feature_index
    from r1interp.schemas import CorpusSchema, read_parquet
    from r1interp.transcoders import SET_ROOT, load_coders

    started = time.perf_counter()
    corpus = read_parquet(paths.CORPUS_PARQUET, CorpusSchema, rebuild_hint="run `dvc repro corpus`")
    lm = load_model(paths.FLAWED_LM, hint="run `dvc repro flawed-organism`")
    coders = load_coders(SET_ROOT / params.clusters.model / "sparsify")
    steps_table, profiles = pd.read_parquet(paths.CLUSTER_STEPS), np.load(paths.CLUSTER_PROFILES)
    digits = {t: (d.min_digits, d.max_digits) for t, d in params.corpus.tasks.items()}
    out = experiment.run(
        cfg,
        model=lm.model,
        tokenizer=lm.tokenizer,
        corpus=corpus,
        task_digits=digits,
        coders=coders,
        index=feature_index(coders),
        steps_table=steps_table,
        profiles=profiles,
    )
    groups = [c[: -len("_accuracy")] for c in out.rows.columns if c.endswith("_accuracy")]
    table = out.rows.round(4)
    with atomic_path(paths.FLAW_DIR, directory=True) as tmp:
        table.to_csv(tmp / "repairs.csv", index=False)
        out.rules.to_csv(tmp / "rules.csv", index=False)
        out.ranked.round(6).to_csv(tmp / "neurons.csv", index=False)
        out.features.round(6).to_csv(tmp / "features.csv", index=False)
        (tmp / "arms.json").write_text(json.dumps(out.arms, indent=1) + "\n")
        plots.repairs(out.rows, groups, tmp / "repairs.png")
    arms = {
        r["arm"]: {k: r[k] for k in SUMMARY_COLUMNS[1:]}
        | {
            g: {"accuracy": r[f"{g}_accuracy"], "ci": [r[f"{g}_ci_low"], r[f"{g}_ci_high"]], "n": r[f"{g}_n"]}
            for g in groups
        }
        for r in table.to_dict("records")
    }
    metrics = {
        "applicable": True,
        "pattern": cfg.pattern,
        "share": cfg.share,
        "find": out.find,
        "localise": out.localise | {"features": out.localise["features"] | {"transcoders_of": params.clusters.model}},
        "arms": arms,
        "verdicts": out.verdicts,
        "meets_bar": [t for t, v in out.verdicts.items() if v["meets_bar"]],
    }
    write_json(paths.FLAW_METRICS, json.loads(json.dumps(metrics, default=float)))
    timings.record("flaw", {"seconds": round(time.perf_counter() - started, 1)})
    print(table[[*SUMMARY_COLUMNS, *(f"{g}_accuracy" for g in groups)]].to_string(index=False))
    print(json.dumps(out.verdicts, indent=1))


if __name__ == "__main__":
    stage.run(main)
