"""The interventions experiment (r1interp/reasoning/experiment.py) arm by arm on a tiny model, and its summary
(r1interp/reasoning/intervention_summary.py) on rows whose numbers are known."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from r1interp.config import InterventionsParams, parse_section
from r1interp.errors import ArtifactError, ConfigError
from r1interp.reasoning import benchmark, experiment, feature_sets
from r1interp.reasoning.intervention_summary import controls, ood_improvement, specificity, summarize
from r1interp.reasoning.steps import feature_index

CFG = {
    "max_new_tokens": 8, "batch_size": 64, "ood_digits": 4, "seed": 3,
    "target_step_type": "column_sum_carry", "contrast_step_type": "column_sum",
    "ablation_sizes": [2, 3], "random_controls": 2,
    "steering": {"features": 3, "alphas": [1.0, 4.0], "base_toward_reasoner": True},
    "edit": {"sizes": [2], "scales": [0.0, 2.0]},
    "finetune": {"step_type": "column_sum", "features": 3, "task": "add", "problems": 8, "replay": 0.5, "steps": 15, "lr": 0.05,
                 "batch_size": 8},
}  # fmt: skip


def _cfg(**override) -> InterventionsParams:
    return parse_section(InterventionsParams, {**CFG, **override}, "interventions")


@pytest.fixture()
def setting(tokenizer, tiny_model_kwargs):
    """A tiny untrained reasoner with random transcoders, step profiles with a planted carry feature (layer 1,
    feature 3), two problem groups and a training split for replay."""
    from sparsify import SparseCoder, SparseCoderConfig

    from r1interp.organism.train import build_model

    torch.manual_seed(0)
    model = build_model(len(tokenizer), **tiny_model_kwargs).eval()
    coders = {layer: SparseCoder(model.config.hidden_size, SparseCoderConfig(num_latents=16, k=4, transcode=True,
                                                                             skip_connection=True)).eval()
              for layer in range(model.config.num_hidden_layers)}  # fmt: skip
    for coder in coders.values():
        torch.nn.init.normal_(coder.W_dec.data, std=0.2)
    index = feature_index(coders)
    rng = np.random.default_rng(0)
    types = ["column_sum"] * 20 + ["column_sum_carry"] * 20 + ["final_carry"] * 10
    steps = pd.DataFrame({"true_type": types, "cluster_kmeans": [0] * 20 + [1] * 20 + [2] * 10})
    profiles = rng.random((len(steps), len(index))) * 0.1
    profiles[20:40, index.index((1, 3))] += 2.0
    profiles[:20, index.index((0, 5))] += 1.0  # a column-sum feature (the fine-tune's cluster)
    groups = {"add_carry": benchmark.ood_problems("add", 3, 2, 0), "ood_add": benchmark.ood_problems("add", 3, 4, 0)}
    corpus = pd.DataFrame({"split": "train", "task": "add", "id": [f"add-{10 + i}-{21 + i}" for i in range(10)]})
    return SimpleNamespace(
        lm=SimpleNamespace(model=model, tokenizer=tokenizer),
        coders=coders,
        index=index,
        steps=steps,
        profiles=profiles,
        groups=groups,
        corpus=corpus,
    )


class Recorder(experiment.Experiment):
    """The experiment, remembering every random control set it draws."""

    def control(self, chosen):
        drawn = super().control(chosen)
        self.drawn = [*getattr(self, "drawn", []), (chosen, drawn)]
        return drawn


def _experiment(s, cfg, progress=None) -> experiment.Experiment:
    runner = experiment.Runner(cfg, s.groups)
    return Recorder(cfg, s.lm, s.coders, s.index, s.steps, s.profiles, runner, progress=progress or (lambda _: None))


def _ranked(s, cfg):
    return feature_sets.ranked_features(s.steps, s.profiles, s.index, cfg.target_step_type, cfg.contrast_step_type)[0]


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_ablation_measures_each_size_and_as_many_matched_random_sets(setting):
    cfg = _cfg()
    ex = _experiment(setting, cfg)
    ranked = _ranked(setting, cfg)
    assert tuple(ranked.iloc[0][["layer", "feature"]]) == (1, 3)
    experiment.ablation_arm(ex, ranked)
    rows = pd.DataFrame(ex.runner.rows)
    assert len(rows) == len(cfg.ablation_sizes) * (1 + cfg.random_controls) * len(setting.groups)
    target = rows[rows["intervention"] == "ablation"]
    assert sorted(target["size"].unique()) == [2, 3] and set(target["target"]) == {"column_sum_carry clusters"}
    control = rows[rows["intervention"] == "ablation_random"]
    assert sorted(control.groupby(["size", "draw"]).size().index) == [(2, 0), (2, 1), (3, 0), (3, 1)]
    assert set(control["target"]) == {"random features"} and set(rows["n"]) == {3}
    # each control: as many features per layer as the chosen set, none of them chosen, fresh per draw
    assert len(ex.drawn) == 4
    for chosen, drawn in ex.drawn:
        assert {l: len(f) for l, f in drawn.items()} == {l: len(f) for l, f in chosen.items()}
        assert all(not set(drawn[l]) & set(chosen[l]) for l in chosen)
    assert ex.drawn[0][1] != ex.drawn[1][1]


def test_weight_edits_run_every_scale_and_restore_the_weights(setting, monkeypatch):
    cfg = _cfg()
    ex = _experiment(setting, cfg)
    before = _weights(setting.lm.model)
    applied, original = [], experiment.edit_down_proj

    def spy(model, directions, scale):
        applied.append(({l: len(d) for l, d in directions.items()}, scale))
        return original(model, directions, scale)

    monkeypatch.setattr(experiment, "edit_down_proj", spy)
    experiment.edit_arm(ex, _ranked(setting, cfg))
    assert [scale for _, scale in applied] == [0.0, 2.0, 0.0, 0.0]  # the random spans are edited at the first scale
    assert all(sum(rows.values()) == 2 for rows, _ in applied)
    rows = pd.DataFrame(ex.runner.rows)
    edits = rows[rows["intervention"] == "weight_edit"]
    assert sorted(edits["scale"].unique()) == [0.0, 2.0] and set(edits["size"]) == {2}
    random = rows[rows["intervention"] == "weight_edit_random"]
    assert set(random["scale"]) == {0.0} and sorted(random["draw"].unique()) == [0, 1]  # controls at the first scale
    after = _weights(setting.lm.model)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_steering_control_is_a_random_direction_of_the_same_norm(setting, monkeypatch):
    cfg = _cfg()
    ex = _experiment(setting, cfg)
    ranked = _ranked(setting, cfg)
    captured = []
    original = experiment.steer

    def spy(model, vectors, alpha):
        captured.append((dict(vectors), alpha))
        return original(model, vectors, alpha)

    monkeypatch.setattr(experiment, "steer", spy)
    experiment.steering_arm(ex, ranked)
    assert [a for _, a in captured] == [1.0, 1.0, 4.0, 4.0]  # target, control per alpha
    vector, control = captured[0][0], captured[1][0]
    assert vector.keys() == control.keys()
    for layer in vector:
        assert torch.allclose(vector[layer].norm(), control[layer].norm(), rtol=1e-5)
        cos = torch.nn.functional.cosine_similarity(vector[layer], control[layer], dim=0)
        assert cos < 0.99  # another direction
    # the target direction is the chosen features' decoder rows weighted by their mean activation on carry steps
    chosen = feature_sets.as_sets(ranked.head(cfg.steering.features))
    means = dict(zip(zip(ranked["layer"], ranked["feature"], strict=True), ranked["mean_in_target"], strict=True))
    expected = sum(means[(1, f)] * setting.coders[1].W_dec[f] for f in chosen[1])
    assert torch.allclose(vector[1], expected.detach(), atol=1e-5)
    rows = pd.DataFrame(ex.runner.rows)
    assert rows.groupby(["intervention", "alpha"]).size().to_dict() == {
        ("steering", 1.0): 2,
        ("steering", 4.0): 2,
        ("steering_random", 1.0): 2,
        ("steering_random", 4.0): 2,
    }


def test_match_norms_keeps_the_direction_and_takes_the_reference_norm():
    control = {0: torch.tensor([3.0, 4.0]), 1: torch.tensor([1.0, 0.0]), 2: torch.tensor([0.0, 2.0])}
    experiment.match_norms(control, {0: torch.tensor([0.0, 10.0]), 1: torch.tensor([0.0, 0.5])})
    assert torch.allclose(control[0], torch.tensor([6.0, 8.0])) and torch.allclose(control[1], torch.tensor([0.5, 0.0]))
    assert torch.equal(control[2], torch.tensor([0.0, 2.0]))  # no reference at this layer: untouched


def test_finetune_trains_two_spans_on_failing_problems_and_leaves_the_model_as_it_was(setting):
    cfg = _cfg()
    ex = _experiment(setting, cfg)
    before = _weights(setting.lm.model)
    info = experiment.finetune_arm(ex, setting.corpus)
    # the untrained model fails every fresh 4-digit problem; replay is half as many training-split problems
    assert info["training_problems"] == {"failing_ood": 8, "replay_in_distribution": 4}
    assert info["clusters"] == [0] and "skipped" not in info
    for name in ("finetune", "finetune_random"):
        assert info[name]["loss_last"] < info[name]["loss_first"]
        assert all(1 <= r <= cfg.finetune.features for r in info["rank"][name].values())
    rows = pd.DataFrame(ex.runner.rows)
    assert list(rows["intervention"].unique()) == ["finetune", "finetune_random"] and rows["gold_nll"].notna().all()
    chosen, drawn = ex.drawn[0]
    assert {l: len(f) for l, f in drawn.items()} == {l: len(f) for l, f in chosen.items()}
    assert (0, 5) in {(l, f) for l, fs in chosen.items() for f in fs}
    assert sum(len(f) for f in chosen.values()) == cfg.finetune.features
    after = _weights(setting.lm.model)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_run_takes_as_many_steps_as_planned_and_is_reproducible(setting):
    cfg = _cfg()
    labels: list[str] = []
    ex = _experiment(setting, cfg, progress=labels.append)
    ranked = _ranked(setting, cfg)
    ex.runner.measure(ex.lm, "baseline", nll=True)
    labels.append("baseline")
    experiment.ablation_arm(ex, ranked)
    experiment.edit_arm(ex, ranked)
    experiment.steering_arm(ex, ranked)
    experiment.base_steering_arm(ex, setting.lm)
    experiment.finetune_arm(ex, setting.corpus)
    assert len(labels) == experiment.plan_size(cfg)
    first = experiment.run(cfg, lm=setting.lm, coders=setting.coders, index=setting.index, steps=setting.steps,
                           profiles=setting.profiles, corpus=setting.corpus, groups=setting.groups,
                           load_base=lambda: setting.lm)  # fmt: skip
    pd.testing.assert_frame_equal(
        first.results.drop(columns="gold_nll"), pd.DataFrame(ex.runner.rows).drop(columns="gold_nll")
    )
    assert set(first.results["model"]) == {"reasoner", "base"}
    with pytest.raises(ConfigError, match="needs the base model"):
        experiment.run(
            cfg,
            lm=setting.lm,
            coders=setting.coders,
            index=setting.index,
            steps=setting.steps,
            profiles=setting.profiles,
            corpus=setting.corpus,
            groups=setting.groups,
        )


def test_inputs_that_do_not_fit_fail_before_any_arm(setting):
    cfg = _cfg(ablation_sizes=[2, 40])
    with pytest.raises(ConfigError, match=r"feature-set sizes \[40\] exceed the 32 features"):
        experiment.check_sizes(cfg, _ranked(setting, cfg))
    with pytest.raises(ArtifactError, match=r"profiles.npy has shape \(50, 31\); expected \(50, 32\)"):
        experiment.check_inputs(setting.steps, setting.profiles[:, :31], setting.index, profiles_file="profiles.npy")
    with pytest.raises(ArtifactError, match="steps.parquet has no reference step types"):
        experiment.check_inputs(
            setting.steps.drop(columns="true_type"), setting.profiles, setting.index, steps_file="steps.parquet"
        )


# ---------------------------------------------------------------- the summary, on rows with known numbers


def _row(intervention, group, correct, n=20, model="reasoner", **settings):
    low, high = benchmark.wilson(correct, n)
    return {"intervention": intervention, "target": "t", "model": model, "size": np.nan, "alpha": np.nan,
            "scale": np.nan, "draw": 0, "group": group, "n": n, "accuracy": correct / n, "ci_low": low, "ci_high": high,
            **settings}  # fmt: skip


def _results() -> pd.DataFrame:
    return pd.DataFrame([
        _row("baseline", "add_carry", 18), _row("baseline", "ood_add", 2),
        _row("ablation", "add_carry", 4, size=50), _row("ablation", "ood_add", 2, size=50),
        _row("ablation_random", "add_carry", 17, size=50, draw=0), _row("ablation_random", "add_carry", 15, size=50, draw=1),
        _row("ablation_random", "ood_add", 2, size=50, draw=0), _row("ablation_random", "ood_add", 1, size=50, draw=1),
        _row("steering", "add_carry", 18, alpha=2.0), _row("steering", "ood_add", 5, alpha=2.0),
        _row("finetune", "add_carry", 18, gold_nll=0.5), _row("finetune", "ood_add", 14, gold_nll=0.4),
        _row("baseline", "add_carry", 10, model="base"), _row("baseline", "ood_add", 0, model="base"),
    ])  # fmt: skip


def test_specificity_is_the_drop_against_the_mean_of_the_random_draws():
    rows = _results()
    baseline = {"add_carry": {"accuracy": 0.9}, "ood_add": {"accuracy": 0.1}}
    from r1interp.reasoning.intervention_summary import by_setting

    spec = specificity(by_setting(rows, "ablation", "size"), controls(rows, "ablation_random", "size"), baseline)
    assert spec == [{"size": 50.0, "drop_add_carry": 0.7, "random_drop_add_carry": 0.1, "drop_ood_add": 0.0,
                     "random_drop_ood_add": 0.025}]  # fmt: skip
    drawn = controls(rows, "ablation_random", "size")[0]["groups"]["add_carry"]
    assert drawn == {"draws": 2, "n": 20, "mean_accuracy": 0.8, "min_accuracy": 0.75, "max_accuracy": 0.85}


def test_an_improvement_counts_only_when_its_interval_clears_the_baseline():
    rows = _results()
    reasoner = rows[rows["model"] == "reasoner"]
    low, high = benchmark.wilson(2, 20)
    baseline = {"add_carry": {"ci95": [0.0, 1.0]}, "ood_add": {"accuracy": 0.1, "ci95": [low, high]}}
    (best,) = ood_improvement(reasoner, baseline)
    assert best["best"]["intervention"] == "finetune" and best["best"]["accuracy"] == 0.7 and best["improved"]
    weaker = reasoner[reasoner["intervention"] != "finetune"]
    (best,) = ood_improvement(weaker, baseline)  # steering: 5/20, whose interval overlaps the baseline's 2/20
    assert best["best"]["intervention"] == "steering" and best["best"]["alpha"] == 2.0 and not best["improved"]


def test_summary_puts_every_arm_next_to_the_baseline():
    cfg = _cfg()
    top = pd.DataFrame({"layer": [1], "feature": [3], "effect": [2.0], "label": ["carry"]})
    info = {"features": 3, "finetune": {"loss_first": 2.0, "loss_last": 1.0}}
    summary = summarize(_results(), cfg, {"target_clusters": [1]}, top, info)
    assert summary["groups"] == {"add_carry": 20, "ood_add": 20}
    assert summary["baseline"]["add_carry"]["accuracy"] == 0.9
    assert summary["baseline"]["add_carry"]["ci95"] == [round(v, 4) for v in benchmark.wilson(18, 20)]
    assert summary["ablation"][0]["groups"]["add_carry"]["accuracy"] == 0.2
    assert summary["finetune"]["finetune"] == {
        "loss_first": 2.0,
        "loss_last": 1.0,
        "groups": {
            "add_carry": {**summary["baseline"]["add_carry"], "gold_nll": 0.5},
            "ood_add": {
                "n": 20,
                "accuracy": 0.7,
                "ci95": [round(v, 4) for v in benchmark.wilson(14, 20)],
                "gold_nll": 0.4,
            },
        },
    }
    assert "groups" not in info["finetune"]  # the caller's dict is left alone
    assert [b["intervention"] for b in summary["steering_base_toward_reasoner"]] == ["baseline"]
    assert summary["feature_ranking"]["top"] == [{"layer": 1, "feature": 3, "effect": 2.0, "label": "carry"}]
    assert summary["ood_improvement"][0]["improved"]
