"""Motif-profile comparisons: bootstrap intervals, pairing, references, and degenerate copies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from r1interp.motifs.compare import (
    Bootstrap,
    against_reference,
    compare_all,
    drop_copies,
    paired,
    statistics_table,
    unpaired,
)

BOOT = Bootstrap(resamples=2000, confidence=0.95, seed=0)


def _group(values, prompts=None):
    prompts = prompts or [f"p{i}" for i in range(len(values))]
    return pd.DataFrame({"prompt_id": prompts, "z:030T": values})


def test_paired_interval_covers_the_shift_and_names_the_largest_prompts():
    rng = np.random.default_rng(1)
    b = rng.normal(0, 3, 30)  # prompt-to-prompt spread is large ...
    a = b + 1.0 + rng.normal(0, 0.2, 30)  # ... but every prompt moves by ~1
    a[7] += 5
    (row,) = paired("x", _group(a), _group(b), ["z:030T"], BOOT, top=2)
    assert row["ci_low"] < 1.0 + 5 / 30 < row["ci_high"] and row["ci_low"] > 0 and row["significant"]
    assert row["top_prompts"].startswith("p7 (+")
    # unpaired, the same data cannot separate the groups: the spread between prompts swamps the shift
    (loose,) = unpaired("x", _group(a), _group(b), ["z:030T"], BOOT)
    assert loose["ci_low"] < 0 < loose["ci_high"] and not loose["significant"]
    assert loose["difference"] == pytest.approx(row["difference"])


def test_pairs_only_prompts_present_in_both_and_skips_missing_values():
    a = _group([1.0, 2.0, np.nan, 4.0], ["p0", "p1", "p2", "p3"])
    b = _group([0.0, 0.0, 0.0], ["p0", "p2", "p3"])
    (row,) = paired("x", a, b, ["z:030T"], BOOT, top=3)
    assert row["n_a"] == 2 and row["difference"] == pytest.approx(2.5)


def test_intervals_are_reproducible_and_seeded():
    a, b = _group(list(range(10))), _group([0.5] * 10)
    first = unpaired("x", a, b, ["z:030T"], BOOT)
    assert first == unpaired("x", a, b, ["z:030T"], BOOT)
    other = unpaired("x", a, b, ["z:030T"], Bootstrap(2000, 0.95, seed=1))
    assert other[0]["ci_low"] != first[0]["ci_low"]


def test_single_observation_gets_no_interval():
    (row,) = unpaired("x", _group([1.0]), _group([0.0, 1.0]), ["z:030T"], BOOT)
    assert np.isnan(row["ci_low"]) and not row["significant"]


def test_against_reference():
    ours = _group([10.0, 11.0, 12.0, 13.0])
    ref = pd.Series({"z:030T": 2.0})
    (row,) = against_reference("ours_vs_ref", ours, ref, ["z:030T"], BOOT, top=1)
    assert row["difference"] == pytest.approx(9.5) and row["significant"] and row["n_b"] == 1
    assert row["top_prompts"] == "p3 (+11.00)"


def test_drop_copies_finds_exact_signed_copies_only():
    rng = np.random.default_rng(0)
    x = rng.normal(size=12)
    stats = pd.DataFrame(
        {
            "z:003": -x,
            "z:030T": x,
            "z:012": x * 1.0,
            "z:021C": 2 * x,
            "z:+++": rng.normal(size=12),
            "sp:030T": x / 10,
            "sp:003": -x / 10,
        }
    )
    copies = drop_copies(stats)
    # the FFL 030T is kept over the sparser classes that mirror it; a scaled column is not a copy
    assert copies == {"z:003": "= -z:030T", "z:012": "= z:030T", "sp:003": "= -sp:030T"}


def _tables():
    rows, census = [], []
    rng = np.random.default_rng(3)
    for model in ("reasoner", "base"):
        for i in range(6):
            graph = f"{model}-p{i}-answer"
            shift = 3.0 if model == "reasoner" else 0.0
            z = {"030T": rng.normal(shift, 0.5), "coherent": rng.normal(shift, 0.5)}
            z["021C"] = -z["030T"]
            for label, value in z.items():
                family = "ffl" if label == "coherent" else "triad"
                rows.append(
                    {
                        "graph": graph,
                        "null": "layer_configuration",
                        "family": family,
                        "label": label,
                        "z": value,
                        "sp": np.nan if label == "coherent" else value / 10,
                    }
                )
                rows.append(
                    {"graph": graph, "null": "configuration", "family": family, "label": label, "z": 0.0, "sp": 0.0}
                )
            census.append(
                {
                    "graph": graph,
                    "origin": "ours",
                    "model": model,
                    "kind": "answer",
                    "prompt_id": f"p{i}",
                    "category": "c",
                    "correct": i % 2 == 0,
                    "ffl_coherent_fraction": 0.7,
                }
            )
    census.append(
        {
            "graph": "haiku",
            "origin": "reference",
            "model": "haiku",
            "kind": "reference",
            "prompt_id": "haiku",
            "category": "reference",
            "correct": None,
            "ffl_coherent_fraction": 0.68,
        }
    )
    for label, value in (("030T", 12.0), ("021C", -12.0), ("coherent", 19.0)):
        rows.append(
            {"graph": "haiku", "null": "layer_configuration", "family": "x", "label": label, "z": value, "sp": np.nan}
        )
    return pd.DataFrame(rows), pd.DataFrame(census)


def test_statistics_table_and_all_comparisons():
    zscores, census = _tables()
    table, copies = statistics_table(zscores, census, "layer_configuration")
    assert copies == {"z:021C": "= -z:030T", "sp:021C": "= -sp:030T"}
    assert set(table.columns) >= {"z:030T", "z:coherent", "sp:030T", "coherent_fraction"}
    diffs = compare_all(table, BOOT, top=2)
    rb = diffs[(diffs["comparison"] == "reasoner_vs_base") & (diffs["statistic"] == "z:030T")].iloc[0]
    assert rb["significant"] and 2 < rb["difference"] < 4 and rb["n_a"] == 6
    assert {"correct_vs_incorrect:reasoner", "reasoner_vs_haiku", "base_vs_haiku"} <= set(diffs["comparison"])
    ref = diffs[(diffs["comparison"] == "base_vs_haiku") & (diffs["statistic"] == "z:030T")].iloc[0]
    assert ref["mean_b"] == 12.0 and ref["difference"] < -10
