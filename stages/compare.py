"""Stage `compare`: motif profiles of reasoner vs base, think vs answer, correct vs incorrect, and vs
the reference graphs, with bootstrap confidence intervals over prompts; tables and figures."""

import r1interp  # noqa: F401  first import: pins deterministic numerics before torch/numpy load

# isort: split

import json

import pandas as pd

from r1interp import paths, stage
from r1interp.errors import ArtifactError
from r1interp.io import atomic_path, write_json
from r1interp.motifs import plots
from r1interp.motifs.compare import Bootstrap, category_profiles, compare_all, statistics_table

TABLES = paths.MOTIF_TABLES
OUT = paths.COMPARE_DIR
METRICS = paths.COMPARE_METRICS


def read_table(name: str) -> pd.DataFrame:
    path = TABLES / name
    if not path.is_file():
        raise ArtifactError(f"{path}: not found", hint="run `dvc repro motifs`")
    return pd.read_parquet(path)


def headline(diffs: pd.DataFrame) -> dict:
    """Per comparison: the statistics whose interval excludes 0, largest |difference| first."""
    out = {}
    for name, rows in diffs.groupby("comparison", sort=False):
        sig = rows[rows["significant"]].reindex(
            rows[rows["significant"]]["difference"].abs().sort_values(ascending=False).index
        )
        out[name] = {
            "statistics": int(len(rows)),
            "significant": int(len(sig)),
            "n": int(rows["n_a"].max()),
            "largest": [
                {
                    "statistic": r.statistic,
                    "difference": round(r.difference, 3),
                    "ci": [round(r.ci_low, 3), round(r.ci_high, 3)],
                }
                for r in sig.head(5).itertuples()
            ],
        }
    return out


def main(params, args):
    cfg = params.compare
    table, copies = statistics_table(read_table("zscores.parquet"), read_table("census.parquet"), cfg.null_model)
    boot = Bootstrap(cfg.bootstrap, cfg.confidence, cfg.seed)
    diffs = compare_all(table, boot, cfg.top_prompts)
    profiles = category_profiles(table)
    with atomic_path(OUT, directory=True) as tmp:
        table.to_csv(tmp / "per_graph.csv", index=False)
        diffs.to_csv(tmp / "differences.csv", index=False)
        profiles.to_csv(tmp / "profiles_by_category.csv", index=False)
        plots.heatmap(
            profiles, "z:", tmp / "zscores_by_category.png", f"motif z-scores by category ({cfg.null_model} null)"
        )
        plots.heatmap(
            profiles,
            "sp:",
            tmp / "significance_profile_by_category.png",
            f"significance profiles by category ({cfg.null_model} null)",
        )
        plots.differences(
            diffs,
            "sp:",
            tmp / "differences_sp.png",
            f"differences in significance profile, {int(cfg.confidence * 100)}% bootstrap CI",
        )
        plots.differences(
            diffs, "z:", tmp / "differences_z.png", f"differences in z, {int(cfg.confidence * 100)}% bootstrap CI"
        )
    metrics = {
        "null": cfg.null_model,
        "bootstrap": cfg.bootstrap,
        "confidence": cfg.confidence,
        "graphs": int((table["origin"] == "ours").sum()),
        "comparisons": headline(diffs),
        "dropped_as_copies": copies,
    }
    write_json(METRICS, metrics)
    print(json.dumps(metrics, indent=1)[:4000])


if __name__ == "__main__":
    stage.run(main)
