"""The interventions experiment: every arm and its matched controls, measured on the same problem groups.

Arms, in the order they run (the order fixes which random control sets the seed draws):
1. ablation of the target clusters' top features, by size, against random alive features of equal size per layer;
2. weight edits: the same features' decoder span scaled inside `down_proj`, against random spans;
3. steering the model with the features' typical output, against a random direction of equal norm per layer;
4. (optional) steering the base model toward the reasoner's most active think features, against random;
5. fine-tuning restricted to one cluster's feature span on problems the model fails, against a random span.

`run` returns one row per (arm, group); `r1interp.reasoning.intervention_summary` turns them into metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from r1interp.errors import ArtifactError, ConfigError
from r1interp.reasoning import benchmark, feature_sets, finetune
from r1interp.reasoning.interventions import ablate, decoder_rows, edit_down_proj, feature_vector, steer


class Runner:
    """Evaluates arms and collects one row per (arm, group)."""

    def __init__(self, cfg, groups: dict[str, list[benchmark.Item]], behaviours: bool = False):
        self.cfg, self.groups, self.behaviours, self.rows = cfg, groups, behaviours, []

    def measure(
        self,
        lm,
        intervention: str,
        *,
        target: str = "",
        size=np.nan,
        alpha=np.nan,
        scale=np.nan,
        draw: int = 0,
        model: str = "reasoner",
        nll: bool = False,
    ) -> dict:
        acc = benchmark.accuracy(
            lm.model,
            lm.tokenizer,
            self.groups,
            max_new_tokens=self.cfg.max_new_tokens,
            batch_size=self.cfg.batch_size,
            behaviours=self.behaviours,
        )
        for group, r in acc.items():
            row = {
                "intervention": intervention,
                "target": target,
                "model": model,
                "size": size,
                "alpha": alpha,
                "scale": scale,
                "draw": draw,
                "group": group,
                **r,
            }
            if nll:
                row["gold_nll"] = benchmark.gold_nll(lm.model, lm.tokenizer, self.groups[group], self.cfg.batch_size)
            self.rows.append(row)
        return acc


def plan_size(cfg) -> int:
    """How many measured arms (and data steps) `run` takes: the progress bar's total."""
    base_steering = 2 * len(cfg.steering.alphas) + 1 if cfg.steering.base_toward_reasoner else 0
    return (
        1
        + len(cfg.ablation_sizes) * (1 + cfg.random_controls)
        + len(cfg.edit.sizes) * (len(cfg.edit.scales) + cfg.random_controls)
        + 2 * len(cfg.steering.alphas)
        + base_steering
        + 3
    )  # + fine-tune data + two fine-tunes


@dataclass
class Experiment:
    """What every arm shares: the model under test, its transcoders and the step profiles features are chosen from."""

    cfg: object
    lm: object
    coders: dict
    index: list[tuple[int, int]]
    steps: pd.DataFrame
    profiles: np.ndarray
    runner: Runner
    real: bool = False
    progress: Callable[[str], None] = lambda label: None
    rng: np.random.Generator = field(init=False)
    alive: dict[int, np.ndarray] = field(init=False)

    def __post_init__(self):
        self.rng = np.random.default_rng(self.cfg.seed)
        self.alive = feature_sets.alive_features(self.profiles, self.index)

    @property
    def target(self) -> str:
        return f"{self.cfg.target_step_type} clusters"

    def control(self, chosen: dict[int, list[int]]) -> dict[int, list[int]]:
        """A random set of alive features, as many per layer as `chosen` (the next draw of the experiment's seed)."""
        return feature_sets.random_matched(chosen, self.alive, self.rng)

    def typical_output(self, features: dict[int, list[int]], means: dict) -> dict:
        """The features' decoder rows weighted by their mean activation: what they add to the residual, per layer."""
        return feature_vector(self.coders, {l: {f: means[(l, f)] for f in fs} for l, fs in features.items()})


def check_inputs(
    steps: pd.DataFrame,
    profiles: np.ndarray,
    index: list[tuple[int, int]],
    steps_file: str = "the cluster steps",
    profiles_file: str = "the step profiles",
) -> None:
    """The clusters stage's outputs fit the transcoders (one profile row per step, one column per feature)."""
    if profiles.shape != (len(steps), len(index)):
        raise ArtifactError(
            f"{profiles_file} has shape {profiles.shape}; expected {(len(steps), len(index))} "
            "(steps x features of the transcoders)",
            hint="run `dvc repro clusters`",
        )
    if "true_type" not in steps:
        raise ArtifactError(
            f"{steps_file} has no reference step types (column true_type)", hint="run `dvc repro clusters`"
        )


def check_sizes(cfg, ranked: pd.DataFrame) -> None:
    too_big = [s for s in [*cfg.ablation_sizes, *cfg.edit.sizes, cfg.steering.features] if s > len(ranked)]
    if too_big:
        raise ConfigError(f"interventions: feature-set sizes {too_big} exceed the {len(ranked)} features")


def match_norms(control: dict, reference: dict) -> None:
    """A random direction of the same norm per layer: the control differs in direction only."""
    for layer, vec in control.items():
        if layer in reference:
            control[layer] = vec * (reference[layer].norm() / vec.norm().clamp_min(1e-12))


def ablation_arm(ex: Experiment, ranked: pd.DataFrame) -> None:
    for size in ex.cfg.ablation_sizes:
        chosen = feature_sets.as_sets(ranked.head(size))
        with ablate(ex.lm.model, ex.coders, chosen):
            ex.runner.measure(ex.lm, "ablation", target=ex.target, size=size)
        ex.progress(f"ablate {size}")
        for draw in range(ex.cfg.random_controls):
            with ablate(ex.lm.model, ex.coders, ex.control(chosen)):
                ex.runner.measure(ex.lm, "ablation_random", target="random features", size=size, draw=draw)
            ex.progress(f"ablate {size} random {draw}")


def edit_arm(ex: Experiment, ranked: pd.DataFrame) -> None:
    """Scale the features' decoder span inside down_proj (0 projects it out); controls use the first scale."""
    edit = ex.cfg.edit
    for size in edit.sizes:
        chosen = feature_sets.as_sets(ranked.head(size))
        for scale in edit.scales:
            with edit_down_proj(ex.lm.model, decoder_rows(ex.coders, chosen), scale):
                ex.runner.measure(ex.lm, "weight_edit", target=ex.target, size=size, scale=scale)
            ex.progress(f"edit {size} x{scale}")
        for draw in range(ex.cfg.random_controls):
            with edit_down_proj(ex.lm.model, decoder_rows(ex.coders, ex.control(chosen)), edit.scales[0]):
                ex.runner.measure(
                    ex.lm, "weight_edit_random", target="random features", size=size, scale=edit.scales[0], draw=draw
                )
            ex.progress(f"edit {size} random {draw}")


def steering_arm(ex: Experiment, ranked: pd.DataFrame) -> None:
    """Add alpha x the target features' typical output at every position (organism: spurious carries expected)."""
    steering = ex.cfg.steering
    chosen = feature_sets.as_sets(ranked.head(steering.features))
    mean_in_target = dict(
        zip(zip(ranked["layer"], ranked["feature"], strict=True), ranked["mean_in_target"], strict=True)
    )
    vector = ex.typical_output(chosen, mean_in_target)
    control_set = ex.control(chosen)
    control_means = {
        (l, f): float(ex.profiles[:, ex.index.index((l, f))].mean()) for l, fs in control_set.items() for f in fs
    }
    control = ex.typical_output(control_set, control_means)
    match_norms(control, vector)
    for alpha in steering.alphas:
        with steer(ex.lm.model, vector, alpha):
            ex.runner.measure(ex.lm, "steering", target=ex.target, size=steering.features, alpha=alpha)
        ex.progress(f"steer {alpha}")
        with steer(ex.lm.model, control, alpha):
            ex.runner.measure(ex.lm, "steering_random", target="random features", size=steering.features, alpha=alpha)
        ex.progress(f"steer random {alpha}")


def base_steering_arm(ex: Experiment, base) -> None:
    """Steer the base model toward the reasoner's most active think features (their mean output over all steps)."""
    features = ex.cfg.steering.features
    ex.runner.measure(base, "baseline", model="base", nll=True)
    ex.progress("base baseline")
    means = ex.profiles.mean(0)
    top = np.argsort(-means)[:features]
    active = feature_sets.as_sets(
        pd.DataFrame({"layer": [ex.index[i][0] for i in top], "feature": [ex.index[i][1] for i in top]})
    )
    mean_of = {ex.index[i]: float(means[i]) for i in range(len(ex.index))}
    toward = ex.typical_output(active, mean_of)
    rand = ex.typical_output(ex.control(active), mean_of)
    match_norms(rand, toward)
    for alpha in ex.cfg.steering.alphas:
        with steer(base.model, toward, alpha):
            ex.runner.measure(
                base, "steering", target="reasoner think features", model="base", size=features, alpha=alpha, nll=True
            )
        ex.progress(f"base steer {alpha}")
        with steer(base.model, rand, alpha):
            ex.runner.measure(
                base, "steering_random", target="random features", model="base", size=features, alpha=alpha, nll=True
            )
        ex.progress(f"base steer random {alpha}")


def finetune_data(ex: Experiment, corpus: pd.DataFrame) -> tuple[list, list]:
    """Fresh problems the model gets wrong (training split with R1 traces on Hub profiles, out-of-distribution
    operands for the organism) and in-distribution replay problems mixed in against forgetting."""
    cfg, ft = ex.cfg, ex.cfg.finetune
    if ex.real:
        pool = benchmark.real_training_items(corpus, ft.problems * 2, cfg.seed + 1)
        wrong, right = failed(ex.lm, pool, cfg)
        wrong = wrong[: ft.problems]
        return wrong, right[: round(ft.replay * len(wrong))]
    pool = benchmark.ood_problems(ft.task, ft.problems * 2, cfg.ood_digits, cfg.seed + 1)
    wrong = failed(ex.lm, pool, cfg)[0][: ft.problems]
    return wrong, benchmark.training_problems(corpus, ft.task, round(ft.replay * len(wrong)), cfg.seed)


def finetune_arm(ex: Experiment, corpus: pd.DataFrame) -> dict:
    """Fine-tune inside the span of one cluster's top features, and inside a random span of equal size per layer."""
    cfg, ft = ex.cfg, ex.cfg.finetune
    ft_ranked, ft_info = feature_sets.ranked_features(ex.steps, ex.profiles, ex.index, ft.step_type, None)
    ft_set = feature_sets.as_sets(ft_ranked.head(ft.features))
    wrong, replay = finetune_data(ex, corpus)
    ex.progress("fine-tune data")
    info = {
        "step_type": ft.step_type,
        "clusters": ft_info["target_clusters"],
        "features": ft.features,
        "training_problems": {"failing_ood": len(wrong), "replay_in_distribution": len(replay)},
        "rank": {},
    }
    if len(wrong) < 8:
        info["skipped"] = (
            f"only {len(wrong)} failing training problems"
            if ex.real
            else f"only {len(wrong)} failing {ft.task} problems with {cfg.ood_digits}-digit operands"
        )
        return info
    for name, features in (("finetune", ft_set), ("finetune_random", ex.control(ft_set))):
        deltas, losses = finetune.subspace_finetune(
            ex.lm.model,
            ex.lm.tokenizer,
            decoder_rows(ex.coders, features),
            wrong + replay,
            steps=ft.steps,
            lr=ft.lr,
            batch_size=ft.batch_size,
            seed=cfg.seed,
        )
        info[name] = {"loss_first": round(losses[0], 4), "loss_last": round(float(np.mean(losses[-10:])), 4)}
        info["rank"][name] = {int(l): int(np.linalg.matrix_rank(d.numpy())) for l, d in deltas.items()}
        with finetune.applied(ex.lm.model, deltas):
            ex.runner.measure(
                ex.lm,
                name,
                target=f"{ft.step_type} clusters" if name == "finetune" else "random features",
                size=ft.features,
                nll=True,
            )
        ex.progress(name)
    return info


def failed(lm, items: list, cfg) -> tuple[list, list]:
    """`items` split into the ones the model answers wrongly and the ones it answers right."""
    ok = benchmark.graded(
        lm.model,
        lm.tokenizer,
        items,
        max_new_tokens=cfg.max_new_tokens,
        batch_size=cfg.batch_size,
        desc="fine-tune data",
    )
    return [i for i, right in zip(items, ok, strict=True) if not right], [
        i for i, right in zip(items, ok, strict=True) if right
    ]


@dataclass
class Outcome:
    results: pd.DataFrame  # one row per (arm, group)
    ranked: pd.DataFrame  # the target clusters' features, best first
    ranking: dict  # how they were ranked (clusters, contrast)
    finetune: dict  # the fine-tune arm's data, losses and ranks (or why it was skipped)


def run(
    cfg,
    *,
    lm,
    coders: dict,
    index: list[tuple[int, int]],
    steps: pd.DataFrame,
    profiles: np.ndarray,
    corpus: pd.DataFrame,
    groups: dict[str, list[benchmark.Item]],
    real: bool = False,
    load_base: Callable[[], object] | None = None,
) -> Outcome:
    """Every arm on `lm` (its transcoders `coders`, features ranked from the cluster `steps` x `profiles`)."""
    check_inputs(steps, profiles, index)
    ranked, ranking = feature_sets.ranked_features(steps, profiles, index, cfg.target_step_type, cfg.contrast_step_type)
    check_sizes(cfg, ranked)
    bar = tqdm(total=plan_size(cfg), desc="interventions", unit="arm")

    def progress(label: str) -> None:
        bar.set_postfix_str(label)
        bar.update(1)

    ex = Experiment(cfg, lm, coders, index, steps, profiles, Runner(cfg, groups, behaviours=real), real, progress)
    ex.runner.measure(lm, "baseline", nll=True)
    progress("baseline")
    ablation_arm(ex, ranked)
    edit_arm(ex, ranked)
    steering_arm(ex, ranked)
    if cfg.steering.base_toward_reasoner:
        if load_base is None:
            raise ConfigError("interventions.steering.base_toward_reasoner needs the base model")
        base_steering_arm(ex, load_base())
    finetune_info = finetune_arm(ex, corpus)
    bar.close()
    return Outcome(pd.DataFrame(ex.runner.rows), ranked, ranking, finetune_info)
