"""Autointerp: the evidence split, the offline rule labeler/scorer, scoring, prompts and the labels pipeline.

Example tables are built by hand with the ExampleSchema columns (and round-tripped through
parquet); the expected splits, rules and metrics are derived by hand or by simple brute force.
"""

from __future__ import annotations

import collections
import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch

from r1interp.autointerp.evidence import Example, FeatureEvidence, build_evidence, split_examples
from r1interp.autointerp.offline import DIGIT, Label, OfflineLabeler, OfflineScorer, Rule, learn_rule
from r1interp.autointerp.pipeline import label_and_score, summarize
from r1interp.autointerp.prompts import _mark, explanation_prompt, parse_binary_list, parse_explanation
from r1interp.autointerp.scoring import Sample, binary_metrics, detection_samples, fuzzing_samples
from r1interp.config import LabelsParams
from r1interp.schemas import ExampleSchema, FeatureSchema, LabelSchema, read_parquet, validate

torch.set_num_threads(1)

# ---------------------------------------------------------------------------- synthetic example tables

W, TARGET, VOCAB = 5, 2, 30


def _example(layer, feature, kind, rank, quantile, row, position, activation, tokens=None) -> dict:
    acts = np.zeros(W)
    if kind != "non_activating":
        acts[TARGET] = activation
    if tokens is None:
        tokens = [(row * 7 + position + j) % VOCAB for j in range(W)]
    return {
        "model": "m",
        "layer": layer,
        "kind": kind,
        "feature": feature,
        "rank": rank,
        "quantile": quantile,
        "row": row,
        "position": position,
        "activation": float(activation) if kind != "non_activating" else 0.0,
        "in_think": bool(row % 2),
        "target": TARGET,
        "tokens": np.asarray(tokens, dtype=np.int64),
        "acts": acts,
    }


def feature_examples(layer, feature, n_top, bin_sizes, n_neg, dup_top=0, row0=0) -> list[dict]:
    """One feature's examples as `example_table` writes them: a quantile sample with
    `bin_sizes[q]` examples in bin q (0 weakest; rank 0 = strongest overall), top examples
    (the last `dup_top` of them at the place of the strongest quantile examples, as happens
    when the uniform sample catches a top occurrence) and silent windows."""
    out, quant = [], []
    rank = 0
    for q in reversed(range(len(bin_sizes))):
        for j in range(bin_sizes[q]):
            act = 1 + q + (bin_sizes[q] - j) / (bin_sizes[q] + 1)
            quant.append(_example(layer, feature, "quantile", rank, q, row0 + 100 + rank, 3, act))
            rank += 1
    out += quant
    for r in range(n_top):
        if r < n_top - dup_top:
            out.append(_example(layer, feature, "top", r, -1, row0 + r, 4, 50 - r))
        else:
            src = quant[r - (n_top - dup_top)]
            out.append(_example(layer, feature, "top", r, -1, src["row"], src["position"], src["activation"]))
    out += [_example(layer, feature, "non_activating", r, -1, row0 + 200 + r, 1, 0) for r in range(n_neg)]
    return out


def to_table(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    # the order `example_table` writes: per layer, by feature, kind, rank
    return df.sort_values(["layer", "feature", "kind", "rank"], kind="stable").reset_index(drop=True)


def features_for(examples: pd.DataFrame) -> pd.DataFrame:
    keys = examples[["model", "layer", "feature"]].drop_duplicates().reset_index(drop=True)
    n = len(keys)
    df = keys.assign(
        n_tokens=np.int64(1000),
        count=np.arange(n, dtype=np.int64) + 10,
        max_act=[
            float(examples.loc[(examples.layer == l) & (examples.feature == f), "activation"].max())
            for l, f in zip(keys.layer, keys.feature, strict=True)
        ],
        think_fraction=np.linspace(0.1, 0.9, n),
        top_output_tokens=[[f"o{i}", f"p{i}"] for i in range(n)],
        top_output_logits=[[2.0, 1.0] for _ in range(n)],
    )
    df["density"] = df["count"] / df["n_tokens"]
    df["mean_act"] = df["max_act"] / 2
    cols = [
        "model",
        "layer",
        "feature",
        "n_tokens",
        "count",
        "density",
        "max_act",
        "mean_act",
        "think_fraction",
        "top_output_tokens",
        "top_output_logits",
    ]
    return df[cols]


CFG = LabelsParams(min_activating=6, explain_examples=5, test_activating=4, test_non_activating=3)


@pytest.fixture()
def examples(tmp_path) -> pd.DataFrame:
    rows = (
        feature_examples(0, 0, n_top=4, bin_sizes=[3, 3, 3, 3], n_neg=7, dup_top=2)
        + feature_examples(0, 1, n_top=2, bin_sizes=[1, 1, 1], n_neg=4)  # 5 activating < min_activating
        + feature_examples(0, 2, n_top=0, bin_sizes=[1, 2, 5], n_neg=2)
        + feature_examples(1, 0, n_top=4, bin_sizes=[3, 3, 3, 3], n_neg=7, dup_top=2)  # same places, other layer
    )
    df = to_table(rows)
    validate(df, ExampleSchema, "hand-made examples")
    df.to_parquet(tmp_path / "examples.parquet", index=False)
    return read_parquet(tmp_path / "examples.parquet", ExampleSchema)


def _roles(split: pd.DataFrame, layer: int, feature: int) -> dict[str, list[tuple[str, int]]]:
    sub = split[(split["layer"] == layer) & (split["feature"] == feature)]
    return {role: sorted(zip(g["kind"], g["rank"], strict=True)) for role, g in sub.groupby("role")}


# ---------------------------------------------------------------------------- evidence


def test_split_examples_hand_derived(examples):
    split = split_examples(examples, CFG)
    assert set(split["role"]) == {"explain", "explain_negative", "test_activating", "test_negative"}
    # feature 1 has 5 distinct activating examples < min_activating 6: skipped, negatives included
    assert split[(split["layer"] == 0) & (split["feature"] == 1)].empty
    for layer in (0, 1):
        roles = _roles(split, layer, 0)
        # 12 quantile examples in 4 bins of 3 (ranks 0-2 = bin 3 ... 9-11 = bin 0): the strongest of each bin
        assert roles["test_activating"] == [("quantile", 0), ("quantile", 3), ("quantile", 6), ("quantile", 9)]
        # explanation: the top examples not duplicated in the quantile sample, then the strongest remaining quantiles
        assert roles["explain"] == [("quantile", 1), ("quantile", 2), ("quantile", 4), ("top", 0), ("top", 1)]
        assert roles["test_negative"] == [("non_activating", r) for r in range(3)]
        assert roles["explain_negative"] == [("non_activating", r) for r in range(3, 7)]
    # bins [1, 2, 5] (ranks 0-4 bin 2, 5-6 bin 1, 7 bin 0): round robin strongest bin first -> 0, 5, 7, then 1
    roles = _roles(split, 0, 2)
    assert roles["test_activating"] == [("quantile", 0), ("quantile", 1), ("quantile", 5), ("quantile", 7)]
    assert roles["explain"] == [("quantile", 2), ("quantile", 3), ("quantile", 4), ("quantile", 6)]
    assert roles["test_negative"] == [("non_activating", 0)]  # 2 negatives: at most half (rounded up) for test
    assert roles["explain_negative"] == [("non_activating", 1)]


def _expected_test_ranks(bin_sizes: list[int], n_test: int) -> set[int]:
    """Brute-force round robin over the bins, strongest bin first, strongest example first."""
    ranks_by_bin, rank = {}, 0
    for q in reversed(range(len(bin_sizes))):
        ranks_by_bin[q] = list(range(rank, rank + bin_sizes[q]))
        rank += bin_sizes[q]
    picked, turn = [], 0
    while len(picked) < n_test:
        for q in reversed(range(len(bin_sizes))):
            if turn < len(ranks_by_bin[q]) and len(picked) < n_test:
                picked.append(ranks_by_bin[q][turn])
        turn += 1
    return set(picked)


def test_split_examples_invariants_on_random_features():
    rng = np.random.default_rng(0)
    cfg = LabelsParams(min_activating=8, explain_examples=7, test_activating=5, test_non_activating=4)
    specs, rows = {}, []
    for f in range(25):
        bins = [int(x) for x in rng.integers(0, 5, size=4)]
        n_top = int(rng.integers(0, 6))
        dup = int(rng.integers(0, min(n_top, sum(bins)) + 1))
        n_neg = int(rng.integers(0, 9))
        specs[f] = (bins, n_top, dup, n_neg)
        rows += feature_examples(0, f, n_top, bins, n_neg, dup_top=dup, row0=1000 * f)
    examples = to_table(rows)
    split = split_examples(examples, cfg)
    seen_eligible = 0
    for f, (bins, n_top, dup, n_neg) in specs.items():
        sub = split[split["feature"] == f]
        n_quant = sum(bins)
        n_act = n_quant + n_top - dup
        if n_act < cfg.min_activating:
            assert sub.empty
            continue
        seen_eligible += 1
        places = {role: set(zip(g["row"], g["position"], strict=True)) for role, g in sub.groupby("role")}
        test, explain = places.get("test_activating", set()), places.get("explain", set())
        assert not test & explain  # never the same window position
        n_test = min(cfg.test_activating, n_quant // 2)
        got = sub[sub["role"] == "test_activating"]
        assert len(got) == len(test) == n_test
        assert (got["kind"] == "quantile").all()
        assert set(got["rank"]) == _expected_test_ranks(bins, n_test)
        assert len(sub[sub["role"] == "explain"]) == len(explain) == min(cfg.explain_examples, n_act - n_test)
        # explanation: strongest first, top examples before quantile ones
        ex = sub[sub["role"] == "explain"]
        tops_left = n_top - dup
        assert (ex["kind"] == "top").sum() == min(tops_left, cfg.explain_examples)
        n_neg_test = min(cfg.test_non_activating, (n_neg + 1) // 2)
        neg_test = sub[sub["role"] == "test_negative"]
        assert sorted(neg_test["rank"]) == list(range(n_neg_test))
        assert len(sub[sub["role"] == "explain_negative"]) == n_neg - n_neg_test
        assert (sub.loc[sub["role"].str.endswith("negative"), "kind"] == "non_activating").all()
    assert 5 <= seen_eligible < len(specs)


def test_split_examples_test_spread_over_bins():
    cfg = LabelsParams(min_activating=2, explain_examples=10, test_activating=8)
    examples = to_table(feature_examples(0, 0, n_top=3, bin_sizes=[4] * 10, n_neg=2))
    test = split_examples(examples, cfg).query("role == 'test_activating'")
    # 8 test examples over 10 bins of 4: the 8 strongest bins give one each
    assert sorted(test["quantile"]) == list(range(2, 10))
    cfg = LabelsParams(min_activating=2, explain_examples=10, test_activating=20)
    test = split_examples(examples, cfg).query("role == 'test_activating'")
    assert test["quantile"].value_counts().tolist() == [2] * 10  # 20 = half of 40: two per bin


def test_build_evidence_fields(examples):
    features = features_for(examples)
    validate(features, FeatureSchema, "hand-made features")
    vocab = [f"v{i}" for i in range(VOCAB - 4)]  # some token ids fall outside: shown as "<?>"
    evidence = build_evidence(features, examples, vocab, CFG)
    assert [(ev.layer, ev.feature) for ev in evidence] == [(0, 0), (0, 2), (1, 0)]
    split = split_examples(examples, CFG)
    for ev in evidence:
        s = features[(features.layer == ev.layer) & (features.feature == ev.feature)].iloc[0]
        assert ev.model == "m" and ev.max_act == s["max_act"] and ev.density == s["density"]
        assert ev.think_fraction == s["think_fraction"] and ev.top_output_tokens == list(s["top_output_tokens"])
        sub = split[(split.layer == ev.layer) & (split.feature == ev.feature)]
        for role in ("explain", "explain_negative", "test_activating", "test_negative"):
            got = getattr(ev, role)
            want = sub[sub.role == role]
            assert len(got) == len(want)
            assert sorted(tuple(e.tokens) for e in got) == sorted(
                tuple(vocab[i] if i < len(vocab) else "<?>" for i in t) for t in want["tokens"]
            )
            for e in got:
                assert e.target == TARGET and len(e.acts) == len(e.tokens) == W
                assert e.activating == (role in ("explain", "test_activating"))
                if role != "explain":
                    assert (e.quantile >= 0) == (role == "test_activating")
        assert all(e.quantile >= 0 for e in ev.test_activating)
        assert all(e.quantile == -1 for e in ev.test_negative + ev.explain_negative)
    assert any("<?>" in e.tokens for ev in evidence for e in ev.explain + ev.test_activating + ev.test_negative)


def test_build_evidence_max_features_per_layer_is_seeded():
    rows = [
        *(r for f in range(6) for r in feature_examples(0, f, n_top=3, bin_sizes=[2, 2], n_neg=2, row0=100 * f)),
        *(r for f in range(4) for r in feature_examples(1, f, n_top=3, bin_sizes=[2, 2], n_neg=2, row0=100 * f)),
        *feature_examples(1, 9, n_top=1, bin_sizes=[1, 1], n_neg=2),  # too few activating examples
    ]
    ex = to_table(rows)
    features = features_for(ex)
    vocab = [f"v{i}" for i in range(VOCAB)]
    cfg = LabelsParams(
        min_activating=4, explain_examples=3, test_activating=2, test_non_activating=1, max_features_per_layer=2, seed=3
    )
    first = [(ev.layer, ev.feature) for ev in build_evidence(features, ex, vocab, cfg)]
    again = [(ev.layer, ev.feature) for ev in build_evidence(features, ex, vocab, cfg)]
    assert first == again
    assert [l for l, _ in first] == [0, 0, 1, 1]
    assert len(set(first)) == 4
    picks = {
        tuple((ev.layer, ev.feature) for ev in build_evidence(features, ex, vocab, dataclasses.replace(cfg, seed=s)))
        for s in range(8)
    }
    assert len(picks) > 1  # the seed matters
    assert all((1, 9) not in p for p in picks)  # only eligible features are sampled
    everything = [
        (ev.layer, ev.feature)
        for ev in build_evidence(features, ex, vocab, dataclasses.replace(cfg, max_features_per_layer=0))
    ]
    assert all(set(p) <= set(everything) for p in picks)
    assert [
        (ev.layer, ev.feature)
        for ev in build_evidence(features, ex, vocab, dataclasses.replace(cfg, max_features_per_layer=10))
    ] == everything


def test_build_evidence_sampling_without_eligible_features():
    ex = to_table(feature_examples(0, 0, n_top=2, bin_sizes=[1, 1], n_neg=3))
    cfg = LabelsParams(min_activating=20, max_features_per_layer=3)
    assert build_evidence(features_for(ex), ex, [f"v{i}" for i in range(VOCAB)], cfg) == []


def test_build_evidence_without_eligible_features():
    ex = to_table(feature_examples(0, 0, n_top=2, bin_sizes=[1, 1], n_neg=3))
    assert build_evidence(features_for(ex), ex, [f"v{i}" for i in range(VOCAB)], LabelsParams(min_activating=20)) == []


def test_negative_windows_are_not_shared_between_explain_and_test():
    rows = feature_examples(0, 0, n_top=4, bin_sizes=[3, 3], n_neg=6)
    dup = dict(rows[-1])  # the weakest-ranked silent window is a second copy of the first one
    first_neg = next(r for r in rows if r["kind"] == "non_activating" and r["rank"] == 0)
    dup.update(row=first_neg["row"], position=first_neg["position"], tokens=first_neg["tokens"])
    rows[-1] = dup
    split = split_examples(to_table(rows), LabelsParams(min_activating=2, test_non_activating=3))
    test = set(split.loc[split.role == "test_negative", ["row", "position"]].itertuples(index=False))
    explain = set(split.loc[split.role == "explain_negative", ["row", "position"]].itertuples(index=False))
    assert not test & explain


# ---------------------------------------------------------------------------- offline labeler


def _ex(tokens: list[str], acts, in_think=False) -> Example:
    acts = np.asarray(acts, dtype=np.float32)
    return Example(list(tokens), acts, int(np.argmax(acts)), in_think)


def _evidence(
    explain, explain_negative, test_activating, test_negative, feature=0, layer=0, max_act=5.0, think=0.8
) -> FeatureEvidence:
    return FeatureEvidence(
        model="m",
        layer=layer,
        feature=feature,
        max_act=max_act,
        density=0.01,
        think_fraction=think,
        top_output_tokens=["8", "9", "1"],
        explain=explain,
        explain_negative=explain_negative,
        test_activating=test_activating,
        test_negative=test_negative,
    )


DIGITS = [str(d) for d in range(10)]


def eq7_evidence(seed=0) -> FeatureEvidence:
    """A feature that fires exactly on "7" right after "=" ("3+4=7"); "7" also appears as an operand
    and "=" before other digits, in activating and silent windows alike."""
    rng = np.random.default_rng(seed)
    other = [d for d in DIGITS if d != "7"]

    def window(active: bool):
        first = [rng.choice(DIGITS), "+", rng.choice(DIGITS), "=", "7" if active else rng.choice(other)]
        second = ["7", "+", rng.choice(DIGITS), "=", rng.choice(other)]
        tokens = first + [";"] + second if rng.random() < 0.5 else second + [";"] + first
        acts = np.zeros(len(tokens))
        if active:
            i = next(i for i in range(1, len(tokens)) if tokens[i - 1] == "=" and tokens[i] == "7")
            acts[i] = rng.uniform(1, 5)
        return _ex(tokens, acts)

    return _evidence(
        [window(True) for _ in range(20)],
        [window(False) for _ in range(10)],
        [window(True) for _ in range(20)],
        [window(False) for _ in range(20)],
    )


def colon_digit_evidence(seed=0) -> FeatureEvidence:
    """A feature that fires on any digit right after ":"; explanation windows only use digits 0-5,
    the test windows 6-9 as well. Digits elsewhere and ":" before letters stay silent."""
    rng = np.random.default_rng(seed)
    letters = list("abcxyz")

    def window(active: bool, digits):
        tokens = [
            rng.choice(letters),
            ":",
            rng.choice(digits) if active else rng.choice(letters),
            " ",
            rng.choice(DIGITS),
            rng.choice(letters),
            ";",
            rng.choice(DIGITS),
            ":",
            rng.choice(letters),
        ]
        acts = np.zeros(len(tokens))
        if active:
            acts[2] = rng.uniform(1, 5)
        return _ex(tokens, acts)

    low = DIGITS[:6]
    return _evidence(
        [window(True, low) for _ in range(20)],
        [window(False, low) for _ in range(10)],
        [window(True, DIGITS) for _ in range(30)],
        [window(False, DIGITS) for _ in range(30)],
        feature=1,
        layer=1,
        think=0.2,
    )


def _rule_predicts_activations(rule: Rule, examples: list[Example]) -> bool:
    return all(rule.matches_at(e.tokens, i) == bool(e.acts[i] > 0) for e in examples for i in range(len(e.tokens)))


def test_learn_rule_recovers_seven_after_equals():
    ev = eq7_evidence()
    rule, stats = learn_rule(ev, 0.3)
    # ("=", "7") covers every example and no silent window; longer n-grams that do as well lose the tie
    assert rule.patterns == (("=", "7"),)
    # token by token, on windows the learner never saw, the rule fires exactly where the feature does
    assert _rule_predicts_activations(rule, ev.test_activating + ev.test_negative)
    assert rule.matches_at(["=", "7"], 1) and not rule.matches_at(["=", "8"], 1) and not rule.matches_at(["+", "7"], 1)
    assert stats["covered"] == 1.0 and stats["false_positive_rate"] == 0.0
    label = OfflineLabeler(0.3).label_all([ev])[0]
    assert label.status == "ok" and label.rule == rule
    assert '"7"' in label.text and '"="' in label.text
    assert "inside <think> (80%)" in label.text and '"8"' in label.text  # where it fires, what it promotes


def test_learn_rule_generalizes_digits():
    ev = colon_digit_evidence()
    rule, _ = learn_rule(ev, 0.3)
    assert any(DIGIT in p for p in rule.patterns)
    unseen = [e for e in ev.test_activating if e.tokens[2] in "6789"]
    assert unseen  # the test set has digits the explanation set never showed
    assert _rule_predicts_activations(rule, ev.test_activating + ev.test_negative)
    for d in DIGITS:
        assert rule.matches_at([":", d], 1)
    assert not rule.matches_at([":", "x"], 1) and not rule.matches_at(["b", "9"], 1)
    label = OfflineLabeler(0.3).label_all([ev])[0]
    assert "<digit>" in label.text and '":' in label.text
    assert "outside <think> (80%)" in label.text


def test_learn_rule_prefers_shorter_patterns_on_ties():
    """ "Q" always follows "@": ("Q",) and ("@", "Q") explain the data equally well; the shorter wins."""
    rng = np.random.default_rng(0)

    def window(active):
        tokens = list(rng.choice(list("abc"), size=6))
        if active:
            tokens[3:5] = ["@", "Q"]
        return _ex(tokens, np.eye(6)[4] if active else np.zeros(6))

    ev = _evidence([window(True) for _ in range(8)], [window(False) for _ in range(4)], [], [])
    assert learn_rule(ev, 0.3)[0].patterns == (("Q",),)


def test_no_rule_when_marked_tokens_look_like_everything_else():
    rng = np.random.default_rng(0)
    explain = [_ex(["x"] * 8, np.eye(8)[rng.integers(8)]) for _ in range(10)]
    ev = _evidence(explain, [_ex(["x"] * 8, np.zeros(8)) for _ in range(5)], explain[:2], [])
    rule, _ = learn_rule(ev, 0.3)
    assert rule.patterns == ()
    label = OfflineLabeler(0.3).label_all([ev])[0]
    assert label.text is None and label.status == "no_rule" and label.rule is None
    assert len(label.prompt_hash) == 64


def _detection_ba(ev: FeatureEvidence, seed=0) -> float:
    label = OfflineLabeler(0.3).label_all([ev])[0]
    samples = detection_samples(ev, np.random.default_rng(seed))
    pred = OfflineScorer().predict_all([(ev, label, "detection", samples)])[0]
    assert None not in pred
    return binary_metrics([s.truth for s in samples], pred)["balanced_accuracy"]


def test_fires_in_agrees_with_matches_at():
    """Detection matches the rule anywhere in the window: the same as matching at some position."""
    rng = np.random.default_rng(5)
    for ev in (eq7_evidence(), colon_digit_evidence()):
        rule, _ = learn_rule(ev, 0.3)
        windows = ev.test_activating + ev.test_negative
        windows += [_ex(list(rng.choice(DIGITS + ["=", ":", "+", "a"], size=8)), np.zeros(8)) for _ in range(200)]
        for e in windows:
            assert rule.fires_in(e.tokens) == any(rule.matches_at(e.tokens, i) for i in range(len(e.tokens)))
        assert any(rule.fires_in(e.tokens) for e in windows[-200:])  # random windows do hit the rule sometimes


def test_offline_detection_perfect_on_rule_features():
    assert _detection_ba(eq7_evidence()) == 1.0
    assert _detection_ba(colon_digit_evidence()) == 1.0


def test_offline_detection_chance_on_random_feature():
    """Activations independent of the tokens: whatever rule is learned fires as often in
    silent windows as in activating ones, so detection is at chance level."""
    letters = list("abcdef")
    scores = []
    for seed in range(3):
        rng = np.random.default_rng(100 + seed)

        def window(active: bool):
            tokens = list(rng.choice(letters, size=12))
            acts = np.zeros(12)
            if active:
                acts[rng.choice(12, size=int(rng.integers(1, 4)), replace=False)] = rng.uniform(1, 5, size=1)
            return _ex(tokens, acts)

        ev = _evidence(
            [window(True) for _ in range(40)],
            [window(False) for _ in range(20)],
            [window(True) for _ in range(150)],
            [window(False) for _ in range(150)],
        )
        assert learn_rule(ev, 0.3)[0].patterns  # a (spurious) rule is learned
        scores.append(_detection_ba(ev, seed))
    assert abs(np.mean(scores) - 0.5) < 0.1, scores
    assert all(abs(s - 0.5) < 0.2 for s in scores), scores


def test_offline_fuzzing_semantics():
    rule = Rule((("=", "7"),))
    tokens = ["1", "+", "6", "=", "7", ";", "7", "+", "2", "=", "9"]
    e = _ex(tokens, np.eye(len(tokens))[4])

    def fuzz(marked):
        highlight = np.zeros(len(tokens), dtype=bool)
        highlight[list(marked)] = True
        label = Label("x", "offline", "r", "0" * 64, rule)
        return OfflineScorer().predict_all([(None, label, "fuzzing", [Sample(e, highlight, True)])])[0][0]

    assert fuzz([4]) is True
    assert fuzz([4, 6]) is True  # half the marked tokens match: enough
    assert fuzz([4, 6, 0]) is False  # a third is not
    assert fuzz([6]) is False  # "7" not after "="
    assert fuzz([]) is False  # nothing marked
    # detection on the same window, and a label without a rule answers nothing
    label = Label("x", "offline", "r", "0" * 64, rule)
    assert OfflineScorer().predict_all([(None, label, "detection", [Sample(e, None, True)])]) == [[True]]
    no_rule = Label("text", "claude", "m", "0" * 64, None)
    assert OfflineScorer().predict_all([(None, no_rule, "detection", [Sample(e, None, True)] * 3)]) == [[None] * 3]


def test_offline_fuzzing_perfect_on_rule_feature():
    ev = eq7_evidence(seed=1)
    label = OfflineLabeler(0.3).label_all([ev])[0]
    samples = fuzzing_samples(ev, 0.3, np.random.default_rng(0))
    pred = OfflineScorer().predict_all([(ev, label, "fuzzing", samples)])[0]
    assert binary_metrics([s.truth for s in samples], pred)["balanced_accuracy"] == 1.0


# ---------------------------------------------------------------------------- scoring


def _confusion_metrics(tp, fp, fn, tn):
    recall = tp / (tp + fn)
    spec = tn / (tn + fp)
    precision = tp / (tp + fp)
    return (recall + spec) / 2, precision, recall, 2 * precision * recall / (precision + recall)


@pytest.mark.parametrize(
    "truth, pred, counts",
    [
        # tp=3, fn=1, fp=1, tn=2
        ([1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 0, 1, 0, 0], (3, 1, 1, 2)),
        # tp=1, fn=1, fp=2, tn=2
        ([1, 1, 0, 0, 0, 0], [1, 0, 1, 1, 0, 0], (1, 2, 1, 2)),
        # unanswered samples (None) are left out: same as the first case
        ([1, 1, 1, 1, 0, 0, 0, 1, 0], [1, 1, 1, 0, 1, 0, 0, None, None], (3, 1, 1, 2)),
    ],
)
def test_binary_metrics_hand_computed(truth, pred, counts):
    tp, fp, fn, tn = counts
    m = binary_metrics([bool(t) for t in truth], [None if p is None else bool(p) for p in pred])
    ba, precision, recall, f1 = _confusion_metrics(tp, fp, fn, tn)
    assert m["balanced_accuracy"] == pytest.approx(ba)
    assert m["precision"] == pytest.approx(precision)
    assert m["recall"] == pytest.approx(recall)
    assert m["f1"] == pytest.approx(f1)
    assert m["answered"] == sum(p is not None for p in pred) and m["samples"] == len(truth)


def test_binary_metrics_refuses_answers_that_do_not_line_up_with_the_samples():
    """One answer per sample: a missing or extra answer would silently shift the score of every later sample."""
    with pytest.raises(ValueError, match="zip"):
        binary_metrics([True, False, True], [True, False])
    with pytest.raises(ValueError, match="zip"):
        binary_metrics([True, False], [True, False, None])


def test_binary_metrics_degenerate_cases():
    # only activating samples, all found: specificity undefined, balanced accuracy = recall
    m = binary_metrics([True] * 3, [True] * 3)
    assert m["balanced_accuracy"] == 1.0 and m["precision"] == 1.0 and m["recall"] == 1.0 and m["f1"] == 1.0
    # only activating samples, none found
    m = binary_metrics([True] * 3, [False] * 3)
    assert m["balanced_accuracy"] == 0.0 and m["recall"] == 0.0 and m["f1"] == 0.0
    # only silent samples: recall undefined, balanced accuracy = specificity
    m = binary_metrics([False] * 4, [False, True, False, False])
    assert m["balanced_accuracy"] == 0.75 and math.isnan(m["recall"])
    # a scorer that always says yes: chance
    m = binary_metrics([True, True, False, False], [True] * 4)
    assert m["balanced_accuracy"] == 0.5 and m["precision"] == 0.5 and m["recall"] == 1.0
    assert m["f1"] == pytest.approx(2 * 0.5 / 1.5)
    # never answered: no balanced accuracy or recall
    m = binary_metrics([True, False], [None, None])
    assert math.isnan(m["balanced_accuracy"]) and math.isnan(m["recall"]) and m["answered"] == 0 and m["samples"] == 2


def test_binary_metrics_edges():
    # as many true negatives as false positives: specificity 1/2, not undefined
    m = binary_metrics([True, False, False], [True, True, False])
    assert (m["balanced_accuracy"], m["precision"], m["recall"]) == (0.75, 0.5, 1.0)
    assert m["f1"] == pytest.approx(2 / 3)
    # nothing predicted positive: precision 0 (answered), f1 0
    m = binary_metrics([True, False], [False, False])
    assert (m["balanced_accuracy"], m["precision"], m["recall"], m["f1"]) == (0.5, 0.0, 0.0, 0.0)


def test_binary_metrics_unanswered_precision_is_undefined():
    m = binary_metrics([True, False], [None, None])
    assert math.isnan(m["precision"])


def test_detection_samples_balanced_permutation():
    ev = eq7_evidence()
    samples = detection_samples(ev, np.random.default_rng(0))
    assert len(samples) == len(ev.test_activating) + len(ev.test_negative)
    assert sum(s.truth for s in samples) == len(ev.test_activating) == len(ev.test_negative)
    assert {id(s.example) for s in samples if s.truth} == {id(e) for e in ev.test_activating}
    assert {id(s.example) for s in samples if not s.truth} == {id(e) for e in ev.test_negative}
    assert all(s.highlight is None for s in samples)
    assert [s.truth for s in samples] != sorted((s.truth for s in samples), reverse=True)  # shuffled
    again = detection_samples(ev, np.random.default_rng(0))
    assert [id(s.example) for s in again] == [id(s.example) for s in samples]


def test_fuzzing_samples_mark_only_silent_tokens():
    acts = [
        [0, 0, 5, 1, 0, 0, 0],  # threshold 3 (0.3 x max 10): token 2 marked, token 3 active but below
        [0, 9, 0, 4, 0, 2, 0],  # tokens 1 and 3 marked
        [1, 2, 0.5, 0, 0],  # nothing reaches 3: the strongest (1) is marked anyway
        [4, 5, 6],  # active everywhere: no silent token to mis-mark
    ]
    tests = [_ex([f"t{i}" for i in range(len(a))], a) for a in acts]
    ev = _evidence([], [], tests, [], max_act=10.0)
    expected_right = [[2], [1, 3], [1], [0, 1, 2]]
    for seed in range(30):
        samples = fuzzing_samples(ev, 0.3, np.random.default_rng(seed))
        assert sum(s.truth for s in samples) == 4 and sum(not s.truth for s in samples) == 3
        for s in samples:
            i = next(j for j, e in enumerate(tests) if e is s.example)
            marked = np.flatnonzero(s.highlight).tolist()
            if s.truth:
                assert marked == expected_right[i]
            else:
                assert len(marked) == len(expected_right[i])
                assert all(s.example.acts[j] == 0 for j in marked)  # only silent tokens


def test_fuzzing_samples_edges():
    """Exactly as many silent tokens as marked ones still gives a wrong sample (>=, not >); an activation equal
    to the threshold is marked (>=); one silent token too few gives none; the samples are a seeded permutation."""
    acts = [
        [0, 3, 1],  # threshold 3: token 1 (== threshold) marked; one silent token for one mark: wrong = [0]
        [3, 3, 0],  # two marked, one silent: no wrong sample
        [2, 0, 0, 0],  # below the threshold: the strongest token alone; wrong = one of the three silent ones
    ]
    tests = [_ex([f"t{i}" for i in range(len(a))], a) for a in acts]
    ev = _evidence([], [], tests, [], max_act=10.0)
    seen_wrong = set()
    for seed in range(20):
        samples = fuzzing_samples(ev, 0.3, np.random.default_rng(seed))
        by_window = collections.defaultdict(list)
        for s in samples:
            by_window[next(j for j, e in enumerate(tests) if e is s.example)].append(s)
        assert sorted(by_window) == [0, 1, 2]
        right = {i: [np.flatnonzero(s.highlight).tolist() for s in v if s.truth] for i, v in by_window.items()}
        wrong = {i: [np.flatnonzero(s.highlight).tolist() for s in v if not s.truth] for i, v in by_window.items()}
        assert right == {0: [[1]], 1: [[0, 1]], 2: [[0]]}
        assert wrong[0] == [[0]] and wrong[1] == [] and len(wrong[2]) == 1 and wrong[2][0][0] in (1, 2, 3)
        assert all(s.highlight.dtype == bool and len(s.highlight) == len(s.example.acts) for s in samples)
        seen_wrong.add(wrong[2][0][0])
        again = fuzzing_samples(ev, 0.3, np.random.default_rng(seed))
        assert [(id(s.example), s.truth, s.highlight.tolist()) for s in again] == [
            (id(s.example), s.truth, s.highlight.tolist()) for s in samples
        ]
    assert seen_wrong == {1, 2, 3}  # the wrong marks are drawn at random among the silent tokens
    orders = {
        tuple((id(s.example), s.truth) for s in fuzzing_samples(ev, 0.3, np.random.default_rng(seed)))
        for seed in range(20)
    }
    assert len(orders) > 1  # shuffled
    # the threshold is a fraction of the feature's max activation
    assert [
        np.flatnonzero(s.highlight).tolist()
        for s in fuzzing_samples(ev, 0.1, np.random.default_rng(0))
        if s.truth and s.example is tests[2]
    ] == [[0]]
    assert sorted(
        np.flatnonzero(s.highlight).tolist()
        for s in fuzzing_samples(ev, 0.1, np.random.default_rng(0))
        if s.truth and s.example is tests[0]
    ) == [[1, 2]]


# ---------------------------------------------------------------------------- prompts


def test_parse_explanation():
    text = "Reasoning...\n[EXPLANATION]: first try\nMore thinking.\n[EXPLANATION]:  the carry digit in addition  \n"
    assert parse_explanation(text) == "the carry digit in addition"
    assert parse_explanation("no label here") is None
    assert parse_explanation("EXPLANATION: close but no brackets") is None
    assert parse_explanation("[EXPLANATION]:   ") is None


def test_parse_binary_list():
    assert parse_binary_list("[1, 0, 1]", 3) == [True, False, True]
    assert parse_binary_list("draft [0, 0, 0]\nfinal: [1,1,0]", 3) == [True, True, False]  # the last one
    assert parse_binary_list("[1, 0, 1] and a shorter one [1, 0]", 3) == [True, False, True]  # right length only
    assert parse_binary_list("[1, 0]", 3) is None
    assert parse_binary_list("[1, 0, 2]", 3) is None
    assert parse_binary_list("[1, 0, 1, 1]", 3) is None
    assert parse_binary_list("yes, no, yes", 3) is None
    assert parse_binary_list("[1,,0, 1]", 3) is None
    assert parse_binary_list("[]", 0) == []


def test_mark_merges_runs():
    tokens = ["a", "b", "c", "d", "e"]
    assert _mark(tokens, np.array([0, 1, 1, 0, 1], dtype=bool)) == "a<<bc>>d<<e>>"
    assert _mark(tokens, np.array([1, 1, 1, 1, 1], dtype=bool)) == "<<abcde>>"
    assert _mark(tokens, np.zeros(5, dtype=bool)) == "abcde"
    # newlines are shown escaped, so an excerpt stays on one line
    assert _mark(["a\n", "b", "c"], np.array([1, 1, 0], dtype=bool)) == "<<a\\nb>>c"


def test_explanation_prompt():
    ev = _evidence(
        [_ex(["a", "b", "c", "d"], [0, 5, 10, 0]), _ex(["w", "x", "y", "z"], [0, 1, 0, 2])],
        [],
        [],
        [],
        feature=7,
        layer=2,
        max_act=10.0,
    )
    text = explanation_prompt(ev, 0.3)
    lines = text.splitlines()
    assert lines[0].startswith("Feature 7 of layer 2")
    i = lines.index("Example 1: a<<bc>>d")
    assert lines[i + 1] == 'Activations: ("b", 5), ("c", 10)'
    # below the threshold (3): only the strongest token is marked, level round(10 * 2 / 10)
    i = lines.index("Example 2: wxy<<z>>")
    assert lines[i + 1] == 'Activations: ("z", 2)'
    assert '"8", "9", "1"' in lines[-1]


# ---------------------------------------------------------------------------- pipeline


def _no_rule_evidence():
    rng = np.random.default_rng(0)
    explain = [_ex(["x"] * 8, np.eye(8)[rng.integers(8)]) for _ in range(10)]
    return _evidence(explain, [_ex(["x"] * 8, np.zeros(8))], explain[:2], [_ex(["x"] * 8, np.zeros(8))], feature=5)


def test_label_and_score_offline(tmp_path):
    evidence = [eq7_evidence(), colon_digit_evidence(), _no_rule_evidence()]
    labels_df, scores_df = label_and_score(evidence, OfflineLabeler(0.3), OfflineScorer(), 0.3, seed=0)
    labels_df.to_parquet(tmp_path / "labels.parquet", index=False)
    labels_df = read_parquet(tmp_path / "labels.parquet", LabelSchema)
    assert list(zip(labels_df.layer, labels_df.feature, labels_df.status, strict=True)) == [
        (0, 0, "ok"),
        (1, 1, "ok"),
        (0, 5, "no_rule"),
    ]
    ok = labels_df[labels_df.status == "ok"]
    assert (ok["detection_balanced_accuracy"] == 1.0).all() and (ok["fuzzing_balanced_accuracy"] == 1.0).all()
    assert (ok["detection_recall"] == 1.0).all() and (ok["detection_precision"] == 1.0).all()
    bad = labels_df[labels_df.status == "no_rule"].iloc[0]
    assert pd.isna(bad["label"])
    assert all(
        math.isnan(bad[f"{m}_{k}"])
        for m in ("detection", "fuzzing")
        for k in ("balanced_accuracy", "precision", "recall", "f1")
    )
    assert (labels_df["labeler"] == "offline").all() and (labels_df["scorer_model"] == OfflineScorer.model).all()
    for ev, row in zip(evidence, labels_df.itertuples(), strict=True):
        assert (row.n_explain, row.n_test_activating, row.n_test_negative) == (
            len(ev.explain),
            len(ev.test_activating),
            len(ev.test_negative),
        )
        assert row.density == ev.density and row.think_fraction == ev.think_fraction
    # per-sample scores: every detection and fuzzing sample of the labeled features, none of the unlabeled one
    n_det = sum(len(ev.test_activating) + len(ev.test_negative) for ev in evidence[:2])
    assert (scores_df["method"] == "detection").sum() == n_det
    assert (scores_df["method"] == "fuzzing").sum() == 2 * sum(len(ev.test_activating) for ev in evidence[:2])
    assert (scores_df["truth"] == scores_df["prediction"]).all()
    assert not ((scores_df["layer"] == 0) & (scores_df["feature"] == 5)).any()
    again, again_scores = label_and_score(evidence, OfflineLabeler(0.3), OfflineScorer(), 0.3, seed=0)
    pd.testing.assert_frame_equal(again_scores, scores_df)

    summary = summarize(labels_df)
    m = summary["m"]
    assert m["features"] == 3 and m["labeled"] == 2
    assert m["detection_balanced_accuracy"] == 1.0 and m["detection_balanced_accuracy_ge_0.75"] == 1.0
    assert m["by_layer"]["0"]["features"] == 2 and m["by_layer"]["0"]["labeled"] == 1
    assert m["by_layer"]["1"]["fuzzing_balanced_accuracy"] == 1.0


def test_summarize_averages_only_ok_rows():
    metrics = {
        f"{m}_{k}": np.nan for m in ("detection", "fuzzing") for k in ("balanced_accuracy", "precision", "recall", "f1")
    }
    rows = [
        {
            "model": "a",
            "layer": 0,
            "feature": 0,
            "status": "ok",
            **metrics,
            "detection_balanced_accuracy": 0.6,
            "fuzzing_balanced_accuracy": 0.8,
        },
        {"model": "a", "layer": 1, "feature": 1, "status": "ok", **metrics, "detection_balanced_accuracy": 0.9},
        {
            "model": "a",
            "layer": 1,
            "feature": 2,
            "status": "unparsed",
            **metrics,
            "detection_balanced_accuracy": 0.0,
            "fuzzing_balanced_accuracy": 0.0,
        },
        {"model": "a", "layer": 1, "feature": 3, "status": "no_rule", **metrics},
        {"model": "b", "layer": 0, "feature": 0, "status": "unparsed", **metrics, "detection_balanced_accuracy": 0.2},
    ]
    s = summarize(pd.DataFrame(rows))
    a = s["a"]
    assert a["features"] == 4 and a["labeled"] == 2
    assert a["detection_balanced_accuracy"] == pytest.approx(0.75)
    assert a["fuzzing_balanced_accuracy"] == pytest.approx(0.8)  # NaN (unscored) rows are left out too
    assert a["detection_balanced_accuracy_ge_0.75"] == 0.5
    assert a["detection_precision"] is None
    assert a["by_layer"]["1"] == {**a["by_layer"]["1"], "features": 3, "labeled": 1, "detection_balanced_accuracy": 0.9}
    assert s["b"]["labeled"] == 0 and s["b"]["detection_balanced_accuracy"] is None


def test_label_and_score_without_evidence():
    labels_df, scores_df = label_and_score([], OfflineLabeler(0.3), OfflineScorer(), 0.3, seed=0)
    assert scores_df.empty
    validate(labels_df, LabelSchema, "empty labels")
    assert summarize(labels_df) == {}


def tied_evidence() -> FeatureEvidence:
    """Every marked token is "7" after "=": ("7",) and (DIGIT,) and the bigrams tie exactly."""
    act = [_ex(["x", "=", "7", "y"], [0, 0, 4.0, 0]) for _ in range(6)]
    neg = [_ex(["p", "q", "r", "s"], [0, 0, 0, 0]) for _ in range(6)]
    return _evidence(act, neg, act[:3], neg[:3])


def test_offline_labels_do_not_depend_on_the_hash_seed(tmp_path):
    """Candidate n-grams come out of sets; the greedy tie-breaking must not follow set order. The evidence is built
    here and handed to each child process, which imports only the labeler (not this module, torch or pytest)."""
    import pickle
    import subprocess
    import sys

    evidence = tmp_path / "evidence.pkl"
    evs = [tied_evidence()] + [eq7_evidence(s) for s in range(3)] + [colon_digit_evidence(s) for s in range(3)]
    evidence.write_bytes(pickle.dumps(evs))  # our own test data, written just now
    code = (
        "import pickle, sys; from r1interp.autointerp.offline import OfflineLabeler;"
        "evs = pickle.loads(open(sys.argv[1], 'rb').read());"
        "print([l.text for l in OfflineLabeler(0.3).label_all(evs)])"
    )
    outputs = set()
    for seed in map(str, range(1, 9)):
        env = {**__import__("os").environ, "PYTHONHASHSEED": seed}
        proc = subprocess.run(
            [sys.executable, "-c", code, str(evidence)], capture_output=True, text=True, env=env, check=True
        )
        outputs.add(proc.stdout)
    assert len(outputs) == 1 and "=" in outputs.pop()  # one labeling, with real labels in it
