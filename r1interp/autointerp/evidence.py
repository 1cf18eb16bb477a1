"""What a labeler may look at, and what is held out to score its label.

Per feature (delphi's split): the explanation set is the top examples followed by the
strongest of the remaining quantile sample; the test set is drawn evenly across the
quantile bins from examples the labeler never saw, plus random silent windows. The
two never share a window position.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class Example:
    tokens: list[str]  # decoded tokens of the window
    acts: np.ndarray  # the feature's activation at every token
    target: int  # index of the sampled token
    in_think: bool
    quantile: int = -1  # -1 for top and silent examples

    @property
    def activating(self) -> bool:
        return bool(self.acts.max(initial=0.0) > 0)

    def marked(self, threshold: float) -> np.ndarray:
        """Tokens shown as activating: at least `threshold` (absolute), and always the strongest one."""
        mask = self.acts >= threshold
        if self.activating:
            mask[int(np.argmax(self.acts))] = True
        return mask & (self.acts > 0)


@dataclass
class FeatureEvidence:
    model: str
    layer: int
    feature: int
    max_act: float
    density: float
    think_fraction: float
    top_output_tokens: list[str]
    explain: list[Example] = field(default_factory=list)
    explain_negative: list[Example] = field(default_factory=list)  # silent windows the labeler may use
    test_activating: list[Example] = field(default_factory=list)
    test_negative: list[Example] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.model}/L{self.layer}/F{self.feature}"

    def threshold(self, fraction: float) -> float:
        return fraction * self.max_act


def split_examples(examples: pd.DataFrame, cfg) -> pd.DataFrame:
    """Assign every usable example a role: explain | explain_negative | test_activating | test_negative.

    Vectorized over all features: test activating examples are spread round-robin over the
    quantile bins (strongest bin first) and never share a window position with the
    explanation set; silent windows are split between test (first) and explanation.
    """
    act = examples[examples["kind"] != "non_activating"].drop_duplicates(["layer", "feature", "row", "position"])
    n_act = act.groupby(["layer", "feature"])["row"].transform("size")
    act = act[n_act >= cfg.min_activating]
    quant = act[act["kind"] == "quantile"]
    n_quant = quant.groupby(["layer", "feature"])["row"].transform("size")
    # round-robin over the bins: every bin's strongest, then every bin's second, ...
    turn = (
        quant.sort_values(["quantile", "rank"], ascending=[False, True])
        .groupby(["layer", "feature", "quantile"])
        .cumcount()
    )
    quant = quant.assign(_turn=turn)
    spread_rank = (
        quant.sort_values(["_turn", "quantile"], ascending=[True, False])
        .groupby(["layer", "feature"])
        .cumcount()
        .reindex(quant.index)
    )
    test = quant[spread_rank.to_numpy() < np.minimum(cfg.test_activating, n_quant.to_numpy() // 2)].drop(
        columns="_turn"
    )
    rest = act.drop(test.index)
    rest = rest.assign(_kind=(rest["kind"] != "top").astype(int)).sort_values(["_kind", "rank"])
    explain = rest[rest.groupby(["layer", "feature"]).cumcount() < cfg.explain_examples].drop(columns="_kind")
    # random windows are drawn with replacement: keep one copy, so test and explanation never share one
    neg = examples[examples["kind"] == "non_activating"].sort_values("rank")
    neg = neg.drop_duplicates(["layer", "feature", "row", "position"])
    neg = neg.merge(act[["layer", "feature"]].drop_duplicates(), on=["layer", "feature"])  # eligible features only
    n_neg = neg.groupby(["layer", "feature"])["row"].transform("size")
    neg_rank = neg.groupby(["layer", "feature"]).cumcount()
    in_test = neg_rank < np.minimum(cfg.test_non_activating, (n_neg + 1) // 2)
    return pd.concat(
        [
            explain.assign(role="explain"),
            test.assign(role="test_activating"),
            neg[in_test].assign(role="test_negative"),
            neg[~in_test].assign(role="explain_negative"),
        ],
        ignore_index=True,
    )


def build_evidence(features: pd.DataFrame, examples: pd.DataFrame, vocab: list[str], cfg) -> list[FeatureEvidence]:
    """Evidence for every feature with at least `cfg.min_activating` distinct activating examples,
    or a seeded sample of `cfg.max_features_per_layer` of them per layer."""
    roles = split_examples(examples, cfg)
    if cfg.max_features_per_layer and len(roles):
        keys = roles[["layer", "feature"]].drop_duplicates().sort_values(["layer", "feature"])
        rng = np.random.default_rng(cfg.seed)
        picked = []
        for _, group in keys.groupby("layer"):
            take = rng.choice(len(group), size=min(len(group), cfg.max_features_per_layer), replace=False)
            picked.append(group.iloc[np.sort(take)])
        picked = pd.concat(picked)
        roles = roles.merge(picked, on=["layer", "feature"])
    vocab_arr = np.asarray(vocab + ["<?>"], dtype=object)
    stats = features.set_index(["layer", "feature"])
    out = []
    for (layer, feature), group in roles.groupby(["layer", "feature"], sort=True):
        s = stats.loc[(layer, feature)]
        ev = FeatureEvidence(
            model=str(s["model"]),
            layer=int(layer),
            feature=int(feature),
            max_act=float(s["max_act"]),
            density=float(s["density"]),
            think_fraction=float(s["think_fraction"]),
            top_output_tokens=list(s["top_output_tokens"]),
        )
        for role, tokens, acts, target, think, quantile in zip(
            group["role"],
            group["tokens"],
            group["acts"],
            group["target"],
            group["in_think"],
            group["quantile"],
            strict=True,
        ):
            ids = np.minimum(np.asarray(tokens), len(vocab))
            example = Example(
                list(vocab_arr[ids]), np.asarray(acts, dtype=np.float32), int(target), bool(think), int(quantile)
            )
            getattr(ev, role).append(example)
        out.append(ev)
    return out
