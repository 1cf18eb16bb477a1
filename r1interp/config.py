"""params.yaml -> typed, frozen, validated configuration.

One frozen dataclass per stage group. Validation is strict and happens before any
work: unknown keys, wrong types, out-of-range values and inconsistent combinations
raise `ConfigError` naming the key path (e.g. `organism.reasoner.lr`) and what is allowed.
Field constraints live in `field(metadata=...)`: `ge`/`gt`/`le`/`lt` bounds, `choices`.

The field defaults are the single source of the default values: `params.yaml` equals them (a test checks
it), and override files (`configs/thorough.yaml`, `tests/data/params-tiny.yaml`) hold only the keys that
differ; `merge_override` + `write_params` (`r1interp params write --override FILE`) make a full params file.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import tempfile
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from r1interp.errors import ConfigError

PROFILES = ("organism", "r1-distill-qwen-1.5b")


def _f(default: Any = dataclasses.MISSING, *, doc: str = "", **constraints: Any) -> Any:
    kwargs: dict[str, Any] = {"metadata": {"doc": doc, **constraints}}
    if isinstance(default, (list, dict)):
        kwargs["default_factory"] = lambda d=default: type(d)(d)
    elif default is not dataclasses.MISSING:
        kwargs["default"] = default
    return field(**kwargs)


# ---------------------------------------------------------------------------- sections


SEED_MAX = 2**32 - 1  # numpy's and torch's seeds are unsigned 32-bit


@dataclass(frozen=True)
class ModelParams:
    profile: str = _f("organism", choices=PROFILES, doc="which model pair the pipeline studies")
    device: str = _f("auto", choices=("auto", "cpu", "cuda"))
    threads: int = _f(2, ge=1, le=256, doc="torch CPU threads per model stage (stages run one at a time)")
    numerics: str = _f(
        "portable",
        choices=("portable", "native"),
        doc="portable: pinned kernels, byte-identical rebuilds on any AVX2 / AVX-512 x86-64 CPU (r1interp/numerics.py); "
        "native: this machine's own kernels, faster for training, bytes depend on the CPU "
        "(run as R1INTERP_NUMERICS=native dvc repro)",
    )


@dataclass(frozen=True)
class TaskParams:
    min_digits: int = _f(2, ge=1, le=12)
    max_digits: int = _f(3, ge=1, le=12)

    def check(self, path: str) -> None:
        if self.min_digits > self.max_digits:
            raise ConfigError(f"{path}.min_digits ({self.min_digits}) must be <= {path}.max_digits ({self.max_digits})")


@dataclass(frozen=True)
class HubCorpusParams:
    """The real profile's corpus: OpenR1-Math-220k through `datasets`."""

    dataset: str = _f("open-r1/OpenR1-Math-220k")
    revision: str = _f("", doc="a commit sha or tag of the dataset repo (a branch is refused unless allow_unpinned)")
    allow_unpinned: bool = _f(False, doc="accept a branch or no revision (one warning line; not reproducible)")
    config_name: str = _f("default")
    split: str = _f("train")
    data_files: str = _f("", doc="a local parquet/json file instead of the Hub (tests, offline mirrors)")
    max_examples: int = _f(2000, ge=1)


@dataclass(frozen=True)
class CorpusParams:
    seed: int = _f(0, ge=0, le=SEED_MAX)
    train_per_task: int = _f(7500, ge=1, doc="capped by the distinct problems of a task (7,420 for 2-3 digit mul)")
    heldout_per_task: int = _f(500, ge=1)
    tasks: dict[str, TaskParams] = _f({"add": TaskParams(2, 3), "mul": TaskParams(2, 3)}, key_choices=("add", "mul"))
    hub: HubCorpusParams = _f(HubCorpusParams())

    def check(self, path: str) -> None:
        if not self.tasks:
            raise ConfigError(f"{path}.tasks: at least one task is required; allowed: add, mul")


@dataclass(frozen=True)
class TrainPhaseParams:
    steps: int = _f(400, ge=0)
    lr: float = _f(3e-3, gt=0.0, le=1.0)
    batch_size: int = _f(64, ge=1)
    warmup_steps: int = _f(50, ge=0)
    weight_decay: float = _f(0.0, ge=0.0, le=1.0)
    final_lr_fraction: float = _f(0.05, ge=0.0, le=1.0)

    def check(self, path: str) -> None:
        if self.warmup_steps > self.steps:
            raise ConfigError(f"{path}.warmup_steps ({self.warmup_steps}) must be <= {path}.steps ({self.steps})")


@dataclass(frozen=True)
class OrganismEvalParams:
    problems_per_task: int = _f(100, ge=1)
    batch_size: int = _f(100, ge=1)
    max_new_tokens: int = _f(160, ge=8)


@dataclass(frozen=True)
class OrganismParams:
    seed: int = _f(0, ge=0, le=SEED_MAX)
    vocab_size: int = _f(384, ge=270, le=65536, doc="BPE vocabulary (256 bytes + specials + merges)")
    layers: int = _f(4, ge=1, le=64)
    hidden: int = _f(64, ge=8)
    intermediate: int = _f(256, ge=8)
    heads: int = _f(4, ge=1)
    kv_heads: int = _f(2, ge=1)
    max_positions: int = _f(256, ge=32)
    rope_theta: float = _f(10000.0, gt=0.0)
    base: TrainPhaseParams = _f(TrainPhaseParams(steps=400, lr=3e-3, batch_size=64, warmup_steps=50))
    # 1200 steps, not 800: at 800 the reasoners of organism seeds 1 and 2 solved only 61% / 56% of held-out 2+3-digit
    # additions without a carry (final loss 0.006 / 0.017); at 1200 every seed 0-2 solves >= 97% of every group
    reasoner: TrainPhaseParams = _f(TrainPhaseParams(steps=1200, lr=1e-2, batch_size=32, warmup_steps=100))
    reasoner_init: str = _f(
        "base", choices=("base", "scratch"), doc="fine-tune the base (as R1-distill) or train from the same init"
    )
    eval: OrganismEvalParams = _f(OrganismEvalParams())

    def check(self, path: str) -> None:
        if self.hidden % self.heads:
            raise ConfigError(f"{path}.hidden ({self.hidden}) must be divisible by {path}.heads ({self.heads})")
        if self.heads % self.kv_heads:
            raise ConfigError(f"{path}.heads ({self.heads}) must be divisible by {path}.kv_heads ({self.kv_heads})")
        if (self.hidden // self.heads) % 2:
            raise ConfigError(f"{path}.hidden / {path}.heads must be even (rotary embeddings need pairs)")


@dataclass(frozen=True)
class TokensParams:
    ctx_len: int = _f(128, ge=8, le=32768, doc="tokens per row, as sparsify consumes them")
    max_train_tokens: int = _f(2_000_000, ge=1)
    max_heldout_tokens: int = _f(200_000, ge=1)
    tokenizer_of: str = _f("reasoner", choices=("reasoner", "base"))
    packing: str = _f(
        "pad",
        choices=("pad", "concat"),
        doc="pad: one document per row, padded (the organisms only ever saw single turns); "
        "concat: documents concatenated and cut (long real traces)",
    )


LAYER_GROUP_RE = r"^(all|\d+(-\d+)?)$"


@dataclass(frozen=True)
class DistributedParams:
    enabled: bool = _f(False, doc="train under torchrun with sparsify's distribute_modules (layers sharded over ranks)")
    nproc: int = _f(2, ge=1, le=64)
    backend: str = _f("auto", choices=("auto", "gloo", "nccl"))


BRANCH_NAMES = ("main", "master")  # never pins; any other branch is caught when the Hub is asked (registry/hub.py)


@dataclass(frozen=True)
class PullParams:
    """train.source: pull — released transcoder sets instead of training (`r1interp pull` under the hood)."""

    repos: dict[str, str] = _f({}, key_choices=("reasoner", "base"), doc="model role -> Hub repo id")
    revision: str = _f("", doc="pinned revision (commit sha or tag) used for every repo")
    require_manifest: bool = _f(True, doc="refuse a release that releases.yaml does not list (its files unverified)")
    allow_unpinned: bool = _f(False, doc="accept a branch as revision (one warning line; not reproducible)")
    missing_layers: str = _f(
        "train",
        choices=("train", "skip"),
        doc="layers a release lacks: train them here, or leave them out (no circuit-tracer set)",
    )


@dataclass(frozen=True)
class TrainParams:
    """Skip transcoders (sparsify, transcode=True, skip_connection=True) on every MLP."""

    source: str = _f("train", choices=("train", "pull"), doc="train here, or pull released sets (train.pull)")
    models: list[str] = _f(["reasoner", "base"], choices=("reasoner", "base"), doc="whose MLPs get transcoders")
    layer_groups: list[str] = _f(["all"], doc="DVC matrix: 'all', 'N' or 'A-B' (inclusive), disjoint")
    expansion_factor: int = _f(16, ge=1, le=1024)
    num_latents: int = _f(0, ge=0, doc="0: d_model x expansion_factor")
    k: int = _f(32, ge=1)
    optimizer: str = _f("adam", choices=("adam", "signum", "muon"))
    lr: float = _f(3e-3, ge=0.0, le=1.0, doc="0: sparsify's automatic learning rate (too low for the tiny organisms)")
    lr_warmup_steps: int = _f(50, ge=0)
    auxk_alpha: float = _f(0.03125, ge=0.0)
    max_tokens: int = _f(512_000, ge=1, doc="token slots incl. padding (rows of the tokens stage are subset to it)")
    batch_size: int = _f(16, ge=1, doc="sequences per step")
    dead_feature_threshold: int = _f(200_000, ge=1, doc="tokens without firing before a feature counts as dead")
    exclude_special_tokens: bool = _f(True)
    seed: int = _f(0, ge=0, le=SEED_MAX)
    log_every: int = _f(10, ge=1)
    distributed: DistributedParams = _f(DistributedParams())
    pull: PullParams = _f(PullParams())

    def check(self, path: str) -> None:
        import re

        if self.source == "pull":
            missing = [m for m in self.models if not self.pull.repos.get(m)]
            if missing:
                raise ConfigError(f"{path}.pull.repos: no repo for {', '.join(missing)} (train.source is pull)")
            if not self.pull.revision:
                raise ConfigError(f"{path}.pull.revision: pin a commit sha or tag when train.source is pull")
            if self.pull.revision in BRANCH_NAMES and not self.pull.allow_unpinned:
                raise ConfigError(
                    f"{path}.pull.revision: {self.pull.revision!r} is a branch, not a pin; give a commit "
                    f"sha or tag (or set {path}.pull.allow_unpinned: true)"
                )

        if not self.models:
            raise ConfigError(f"{path}.models: at least one of reasoner, base is required")
        if len(set(self.models)) != len(self.models):
            raise ConfigError(f"{path}.models: {self.models} lists a model twice")
        if not self.layer_groups:
            raise ConfigError(f"{path}.layer_groups: at least one group is required (e.g. 'all')")
        for i, group in enumerate(self.layer_groups):
            if not re.match(LAYER_GROUP_RE, group):
                raise ConfigError(f"{path}.layer_groups[{i}]: {group!r} is not 'all', 'N' or 'A-B'")
            if "-" in group and int(group.split("-")[0]) > int(group.split("-")[1]):
                raise ConfigError(f"{path}.layer_groups[{i}]: {group!r} has start > end")
        if "all" in self.layer_groups and len(self.layer_groups) > 1:
            raise ConfigError(f"{path}.layer_groups: 'all' cannot be combined with other groups")
        seen: dict[int, str] = {}
        for group in self.layer_groups:
            if group == "all":
                continue
            start, _, end = group.partition("-")
            for layer in range(int(start), int(end or start) + 1):
                if layer in seen:
                    raise ConfigError(
                        f"{path}.layer_groups: {seen[layer]!r} and {group!r} both hold layer {layer}; "
                        "groups must be disjoint"
                    )
                seen[layer] = group
        latents = self.num_latents
        if latents and self.k > latents:
            raise ConfigError(f"{path}.k ({self.k}) must be <= {path}.num_latents ({latents})")


@dataclass(frozen=True)
class EvaluateParams:
    max_tokens: int = _f(20_000, ge=1, doc="held-out tokens for the spliced evaluation")
    batch_size: int = _f(32, ge=1)


@dataclass(frozen=True)
class ActivationsParams:
    """Feature activation tables and examples (delphi-style sampling), streamed over held-out tokens."""

    max_tokens: int = _f(60_000, ge=1, doc="held-out token budget (rows are taken in order)")
    batch_size: int = _f(32, ge=1)
    window: int = _f(32, ge=4, le=512, doc="tokens per example window around the activating token")
    top_n: int = _f(20, ge=1, doc="top-activating examples kept per feature")
    quantile_bins: int = _f(10, ge=1, le=100, doc="equal-count activation bins over a uniform sample of activations")
    per_quantile: int = _f(5, ge=1, doc="examples per bin (reservoir size = bins x per_quantile)")
    non_activating: int = _f(60, ge=0, doc="random windows where the feature is silent throughout")
    top_output_tokens: int = _f(
        10, ge=1, le=100, doc="tokens listed per feature by decoder-to-unembedding logit effect"
    )
    seed: int = _f(0, ge=0, le=SEED_MAX)


@dataclass(frozen=True)
class ClaudeParams:
    """The `claude` labeler/scorer (anthropic SDK). The key comes from ANTHROPIC_API_KEY only."""

    explainer_model: str = _f("claude-sonnet-4-6", doc="writes the explanations")
    scorer_model: str = _f("claude-haiku-4-5", doc="answers the detection and fuzzing prompts")
    max_tokens: int = _f(600, ge=16, le=64000, doc="max output tokens per request")
    requests_per_minute: int = _f(50, ge=1)
    tokens_per_minute: int = _f(40_000, ge=100, doc="input + output tokens per minute (estimated before sending)")
    concurrency: int = _f(4, ge=1, le=64)
    max_retries: int = _f(6, ge=0, le=100, doc="per request, on 429/5xx/529/timeouts/malformed bodies")
    max_retry_wait_s: float = _f(60.0, gt=0.0, doc="cap on a single wait, whatever retry-after says")
    timeout_s: float = _f(120.0, gt=0.0)
    use_batches: bool = _f(False, doc="Message Batches API (half price, results within 24 h)")
    batch_poll_s: float = _f(30.0, gt=0.0)


@dataclass(frozen=True)
class LabelsParams:
    labeler: str = _f(
        "offline", choices=("offline", "claude"), doc="offline: deterministic token rules; claude: the Messages API"
    )
    max_features_per_layer: int = _f(0, ge=0, doc="0: every feature with enough examples; else a seeded sample")
    min_activating: int = _f(20, ge=2, doc="features with fewer sampled activating examples are not labeled")
    explain_examples: int = _f(40, ge=1, doc="activating examples shown to the labeler (top first, then quantiles)")
    test_activating: int = _f(20, ge=1, doc="held-out activating examples per feature, spread over the bins")
    test_non_activating: int = _f(20, ge=1)
    highlight_threshold: float = _f(
        0.3, gt=0.0, le=1.0, doc="tokens above this fraction of the feature's max are marked"
    )
    examples_per_prompt: int = _f(10, ge=1, le=100, doc="scoring examples per detection/fuzzing prompt")
    seed: int = _f(0, ge=0, le=SEED_MAX)
    claude: ClaudeParams = _f(ClaudeParams())


@dataclass(frozen=True)
class FaithfulnessParams:
    """Patch a sample of source features and compare the measured change with the graph's edge weights."""

    graphs: int = _f(0, ge=0, doc="graphs checked per model (0: all)")
    sources_per_graph: int = _f(4, ge=1, doc="source features ablated per checked graph")
    edges_per_source: int = _f(8, ge=1, doc="outgoing edges (largest |weight| first) compared per source")
    min_relative_weight: float = _f(0.01, ge=0.0, le=1.0, doc="only edges with |w| >= this x the graph's max |w|")
    tolerance: float = _f(1e-3, gt=0.0, doc="max allowed |measured - attributed| / |attributed|")
    seed: int = _f(0, ge=0, le=SEED_MAX)


@dataclass(frozen=True)
class GraphsParams:
    """Attribution graphs (circuit-tracer) for the profile's benchmark prompts."""

    models: list[str] = _f(
        ["reasoner", "base"], choices=("reasoner", "base"), doc="each needs its own transcoders (train.models)"
    )
    max_new_tokens: int = _f(160, ge=1, doc="greedy completion length used to find positions and grade answers")
    think_anchor: str = _f("=", doc="think graph: the token after the first occurrence of this inside <think>")
    answer_anchor: str = _f("The answer is ", doc="answer graph: the token after this in the final answer")
    window_tokens: int = _f(
        0,
        ge=0,
        doc="attribute at most this many tokens ending at the target, cut at a sentence "
        "boundary (0: the whole trace; real traces need it: attribution memory grows with length)",
    )
    max_feature_nodes: int = _f(500, ge=1)
    batch_size: int = _f(32, ge=1, doc="circuit-tracer backward batch size")
    max_n_logits: int = _f(5, ge=1, doc="logit targets: at most this many top tokens ...")
    desired_logit_prob: float = _f(0.95, gt=0.0, le=1.0, doc="... until their cumulative probability reaches this")
    node_threshold: float = _f(0.8, gt=0.0, le=1.0, doc="pruning: keep nodes up to this cumulative influence")
    edge_threshold: float = _f(0.98, gt=0.0, le=1.0, doc="pruning: keep edges up to this cumulative influence")
    faithfulness: FaithfulnessParams = _f(FaithfulnessParams())

    def check(self, path: str) -> None:
        if not self.models:
            raise ConfigError(f"{path}.models: at least one of reasoner, base is required")
        if len(set(self.models)) != len(self.models):
            raise ConfigError(f"{path}.models: {self.models} lists a model twice")
        for name in ("think_anchor", "answer_anchor"):
            if not getattr(self, name):
                raise ConfigError(f"{path}.{name}: must not be empty")


@dataclass(frozen=True)
class MotifsParams:
    """Network-motif analysis of every graph of the `graphs` stage (and the reference graphs)."""

    nulls: list[str] = _f(
        ["layer_configuration", "configuration"],
        choices=("configuration", "erdos_renyi", "layer_erdos_renyi", "layer_configuration"),
    )
    samples: int = _f(20, ge=1, doc="null samples per graph and null model")
    signs: str = _f("keep", choices=("keep", "shuffle"), doc="signs of rewired edges: kept on their edge or shuffled")
    drop_errors: bool = _f(True, doc="drop transcoder-error nodes (the issue's default)")
    weight_threshold: float = _f(0.0, ge=0.0, doc="drop edges with |weight| below this")
    workers: int = _f(2, ge=1, le=256)
    max_seconds_per_graph: float = _f(120.0, gt=0.0, doc="null-model time budget per graph (warns and cuts samples)")
    reference_graphs: list[str] = _f(
        ["data/reference/neuronpedia/opposite_of_small.json"],
        doc="Neuronpedia JSON files analysed alongside ours (e.g. Claude 3.5 Haiku), relative paths inside the project",
    )
    max_graph_mb: int = _f(1024, ge=1, doc="graph files over this size are refused before reading")
    max_graph_nodes: int = _f(200_000, ge=1, doc="graphs with more nodes are refused before building")
    max_graph_links: int = _f(5_000_000, ge=1, doc="graphs with more links are refused before building")
    seed: int = _f(0, ge=0, le=SEED_MAX)

    def check(self, path: str) -> None:
        from pathlib import PurePosixPath

        for i, ref in enumerate(self.reference_graphs):
            parts = PurePosixPath(ref).parts
            if not ref.endswith(".json") or PurePosixPath(ref).is_absolute() or ".." in parts or "\\" in ref:
                raise ConfigError(
                    f"{path}.reference_graphs[{i}]: {ref!r} must be a relative path to a .json file "
                    "inside the project (no '..', not absolute)"
                )


@dataclass(frozen=True)
class CompareParams:
    """Motif-profile comparisons between graph groups, with bootstrap confidence intervals over prompts."""

    null_model: str = _f(
        "layer_configuration",
        choices=("configuration", "erdos_renyi", "layer_erdos_renyi", "layer_configuration"),
        doc="whose z-scores are compared (must be in motifs.nulls)",
    )
    bootstrap: int = _f(2000, ge=100, doc="bootstrap resamples of prompts")
    confidence: float = _f(0.95, gt=0.5, lt=1.0)
    top_prompts: int = _f(3, ge=1, doc="prompts listed where a difference is largest")
    seed: int = _f(0, ge=0, le=SEED_MAX)


@dataclass(frozen=True)
class ClustersParams:
    """Steps of held-out `<think>` traces clustered by their feature profiles (the `clusters` stage)."""

    model: str = _f("reasoner", choices=("reasoner", "base"), doc="whose transcoder features describe the steps")
    problems: int = _f(500, ge=0, doc="held-out problems used, the same number per task (0: all)")
    segment: str = _f(
        "line", choices=("line", "sentence"), doc="a step is a line (organism) or a sentence (real traces)"
    )
    annotator: str = _f(
        "rules",
        choices=("rules", "claude"),
        doc="real traces: who labels each sentence's R1 behaviour "
        "(the clusters' reference): the offline cue-phrase rules, or Claude (labels.claude's transport and "
        "explainer_model; ANTHROPIC_API_KEY from the environment; cached, resumable)",
    )
    dims: int = _f(16, ge=2, le=512, doc="PCA dimensions of the standardised profiles")
    k_min: int = _f(3, ge=2)
    k_max: int = _f(10, ge=2)
    seeds: int = _f(5, ge=2, doc="k-means seeds for the stability of each k")
    min_stability: float = _f(0.9, ge=0.0, le=1.0, doc="k must be this stable across seeds to be chosen")
    bootstrap: int = _f(10, ge=0, doc="bootstrap resamples for the chosen solution's stability")
    top_features: int = _f(20, ge=1, doc="characteristic features kept per cluster / step type")
    examples: int = _f(5, ge=1, doc="example steps per cluster (nearest the centroid)")
    seed: int = _f(0, ge=0, le=SEED_MAX)

    def check(self, path: str) -> None:
        if self.k_min > self.k_max:
            raise ConfigError(f"{path}.k_min ({self.k_min}) must be <= {path}.k_max ({self.k_max})")


@dataclass(frozen=True)
class CriticalParams:
    """Critical weights (reasoner - base) and attribution-ranked features (the `critical` stage)."""

    rank: int = _f(4, ge=1, doc="top singular directions of each MLP's weight change compared with features")
    top: int = _f(25, ge=1, doc="features listed per table")


ORGANISM_STEP_TYPES = ("column_sum", "column_sum_carry", "column_product", "column_product_carry", "final_carry")
# the R1 behaviours of real traces (r1interp.reasoning.behaviours.CATEGORIES; a test keeps the two equal)
BEHAVIOURS = ("initializing", "deduction", "adding_knowledge", "example_testing", "uncertainty_estimation",
              "backtracking")  # fmt: skip
STEP_TYPES = ORGANISM_STEP_TYPES + BEHAVIOURS


@dataclass(frozen=True)
class SteeringParams:
    features: int = _f(
        50, ge=1, doc="features whose typical output (mean activation x decoder row) makes the direction"
    )
    alphas: list[float] = _f([2.0, 8.0], ge=0.0, min_items=1, doc="multiples of the direction added at every position")
    base_toward_reasoner: bool = _f(
        True, doc="also steer the base model with the reasoner's most active think features"
    )


@dataclass(frozen=True)
class EditParams:
    sizes: list[int] = _f([2, 4], ge=1, min_items=1, doc="carry features whose decoder span is edited in down_proj")
    scales: list[float] = _f([0.0], ge=0.0, min_items=1, doc="0 projects the span out, >1 amplifies it")


@dataclass(frozen=True)
class FinetuneParams:
    step_type: str = _f(
        "column_sum", choices=STEP_TYPES, doc="the cluster (by majority step type) whose features span the update"
    )
    features: int = _f(64, ge=1, doc="top features of that cluster (vs all other steps) spanning the update")
    task: str = _f(
        "add", choices=("add", "mul"), doc="out-of-distribution problems to fine-tune on (where the steps fail)"
    )
    problems: int = _f(128, ge=8, doc="failing out-of-distribution training problems (fresh, never evaluated)")
    replay: float = _f(1.0, ge=0.0, le=4.0, doc="in-distribution training-split problems mixed in, per failing problem")
    steps: int = _f(60, ge=1)
    lr: float = _f(1.0e-2, gt=0.0)
    batch_size: int = _f(32, ge=1)


@dataclass(frozen=True)
class InterventionsParams:
    """Targeted modifications and their effect on held-out accuracy (the `interventions` stage)."""

    model: str = _f("reasoner", choices=("reasoner",), doc="the model whose features are ablated / edited")
    problems_per_group: int = _f(50, ge=1, doc="problems per group (task x carry, out-of-distribution)")
    ood_digits: int = _f(4, ge=1, le=9, doc="operand length of the out-of-distribution groups")
    max_new_tokens: int = _f(160, ge=8)
    batch_size: int = _f(300, ge=1, doc="every group of an arm decodes in one batch")
    target_step_type: str = _f(
        "column_sum_carry", choices=STEP_TYPES, doc="clusters whose steps are mostly this are ablated"
    )
    contrast_step_type: str = _f(
        "column_sum", choices=STEP_TYPES, doc="...ranked against the clusters of this step type"
    )
    ablation_sizes: list[int] = _f([50, 150, 300], ge=1, min_items=1, doc="top-ranked features ablated together")
    random_controls: int = _f(2, ge=1, doc="random feature sets of equal size (per layer) for every ablation and edit")
    steering: SteeringParams = _f(SteeringParams())
    edit: EditParams = _f(EditParams())
    finetune: FinetuneParams = _f(FinetuneParams())
    seed: int = _f(0, ge=0, le=SEED_MAX)

    def check(self, path: str) -> None:
        if self.target_step_type == self.contrast_step_type:
            raise ConfigError(
                f"{path}.contrast_step_type must differ from {path}.target_step_type ({self.target_step_type!r})"
            )


# planted flaws: name -> (the task it lives in, the fewest operand digits that can hold it); r1interp.flaw.patterns
# holds the predicates (a test keeps the two equal). carry_through_nine needs a tens column receiving a carry.
FLAW_PATTERNS = {"carry_through_nine": ("add", 2)}


@dataclass(frozen=True)
class FlawOrganismParams:
    """The reasoner fine-tuned on the flawed traces (the fields of TrainPhaseParams, plus `enrich`)."""

    steps: int = _f(150, ge=0)
    lr: float = _f(3e-3, gt=0.0, le=1.0)
    batch_size: int = _f(32, ge=1)
    warmup_steps: int = _f(20, ge=0)
    weight_decay: float = _f(0.0, ge=0.0, le=1.0)
    final_lr_fraction: float = _f(0.05, ge=0.0, le=1.0)
    enrich: float = _f(0.25, ge=0.0, lt=1.0, doc="share of the fine-tuning mix made of pattern problems (repeated)")

    def check(self, path: str) -> None:
        TrainPhaseParams.check(self, path)  # type: ignore[arg-type]  # same fields, same rule


@dataclass(frozen=True)
class FlawFindParams:
    problems_per_task: int = _f(200, ge=10, doc="fresh problems per task, graded; the finder sees only the traces")
    max_conditions: int = _f(2, ge=1, le=3, doc="conditions per rule (conjunctions of step facts)")
    min_support: int = _f(5, ge=1, doc="failing steps a rule must cover")


@dataclass(frozen=True)
class FlawRepairParams:
    problems_per_group: int = _f(100, ge=10, doc="held-out problems per group (flaw, add_carry, add_no_carry, mul)")
    examples: int = _f(
        64, ge=1, doc="the repair budget: corrected training-split pattern problems (+ as many replayed)"
    )
    neurons: int = _f(
        16, ge=1, doc="localised units a repair may touch (neurons; features for feature steering), and each control"
    )
    steps: int = _f(60, ge=1, doc="optimizer steps of every weight repair (edit, cluster fine-tune, unconstrained)")
    lr: float = _f(1.0e-2, gt=0.0)
    batch_size: int = _f(32, ge=1)
    steer_steps: int = _f(200, ge=1, doc="optimizer steps of the steering offset")
    steer_lr: float = _f(1.0, gt=0.0)


@dataclass(frozen=True)
class FlawParams:
    """The planted-flaw organism and the find-and-fix experiment on it (stages `flawed-organism`, `flaw`)."""

    pattern: str = _f("carry_through_nine", choices=tuple(FLAW_PATTERNS), doc="what the flawed traces handle wrongly")
    share: float = _f(1.0, gt=0.0, le=1.0, doc="share of the training pattern problems whose trace is flawed")
    organism: FlawOrganismParams = _f(FlawOrganismParams())
    find: FlawFindParams = _f(FlawFindParams())
    repair: FlawRepairParams = _f(FlawRepairParams())
    max_new_tokens: int = _f(160, ge=8)
    batch_size: int = _f(400, ge=1, doc="problems decoded per batch")
    seed: int = _f(0, ge=0, le=SEED_MAX)


@dataclass(frozen=True)
class Params:
    seed: int = _f(0, ge=0, le=SEED_MAX)
    model: ModelParams = _f(ModelParams())
    corpus: CorpusParams = _f(CorpusParams())
    organism: OrganismParams = _f(OrganismParams())
    tokens: TokensParams = _f(TokensParams())
    train: TrainParams = _f(TrainParams())
    evaluate: EvaluateParams = _f(EvaluateParams())
    activations: ActivationsParams = _f(ActivationsParams())
    labels: LabelsParams = _f(LabelsParams())
    graphs: GraphsParams = _f(GraphsParams())
    motifs: MotifsParams = _f(MotifsParams())
    compare: CompareParams = _f(CompareParams())
    clusters: ClustersParams = _f(ClustersParams())
    critical: CriticalParams = _f(CriticalParams())
    interventions: InterventionsParams = _f(InterventionsParams())
    flaw: FlawParams = _f(FlawParams())

    def _check_flaw(self) -> None:
        """The planted flaw must be producible by the corpus's problems, and the repair budget must fit them."""
        if self.model.profile != "organism":
            return  # the flaw stages record that they do not apply (no trained organism to plant it in)
        task, min_digits = FLAW_PATTERNS[self.flaw.pattern]
        digits = self.corpus.tasks.get(task)
        if digits is None or digits.max_digits < min_digits:
            have = f"{digits.min_digits}-{digits.max_digits} digit operands" if digits else "no such task"
            raise ConfigError(
                f"flaw.pattern: {self.flaw.pattern!r} cannot occur in the corpus (it needs {task} problems "
                f"with at least {min_digits} digits; corpus.tasks.{task}: {have})"
            )
        if self.flaw.repair.examples > self.corpus.train_per_task:
            raise ConfigError(
                f"flaw.repair.examples ({self.flaw.repair.examples}) must be <= corpus.train_per_task "
                f"({self.corpus.train_per_task}): corrected examples are training-split pattern problems "
                "(the stage checks the exact count)"
            )

    def _check_step_types(self) -> None:
        """Organism steps have the generator's types; real traces have R1 behaviours (sentences only)."""
        organism = self.model.profile == "organism"
        allowed = ORGANISM_STEP_TYPES if organism else BEHAVIOURS
        iv = self.interventions
        for key, value in (
            ("interventions.target_step_type", iv.target_step_type),
            ("interventions.contrast_step_type", iv.contrast_step_type),
            ("interventions.finetune.step_type", iv.finetune.step_type),
        ):
            if value not in allowed:
                raise ConfigError(
                    f"{key}: {value!r} is not a step type of profile {self.model.profile!r}; "
                    f"allowed: {', '.join(allowed)}"
                )
        if not organism and self.clusters.segment != "sentence":
            raise ConfigError(
                f"clusters.segment: {self.clusters.segment!r} is not allowed for profile "
                f"{self.model.profile!r}; allowed: sentence (real traces are annotated per sentence)"
            )

    def check(self, path: str) -> None:
        self._check_step_types()
        self._check_flaw()
        if self.model.profile == "organism" and not self.train.num_latents:
            latents = self.organism.hidden * self.train.expansion_factor
            if self.train.k > latents:
                raise ConfigError(
                    f"train.k ({self.train.k}) must be <= the number of latents "
                    f"(organism.hidden x train.expansion_factor = {latents})"
                )
        acts, labels = self.activations, self.labels
        sampled = acts.top_n + acts.quantile_bins * acts.per_quantile
        if labels.explain_examples + labels.test_activating > sampled:
            raise ConfigError(
                f"labels.explain_examples + labels.test_activating ({labels.explain_examples + labels.test_activating}) "
                f"must be <= the activating examples collected per feature "
                f"(activations.top_n + quantile_bins x per_quantile = {sampled})"
            )
        if labels.test_activating > acts.quantile_bins * acts.per_quantile:
            raise ConfigError(
                f"labels.test_activating ({labels.test_activating}) must be <= activations.quantile_bins x per_quantile "
                f"({acts.quantile_bins * acts.per_quantile}): test examples come from the quantile sample"
            )
        if labels.test_non_activating > acts.non_activating:
            raise ConfigError(
                f"labels.test_non_activating ({labels.test_non_activating}) must be <= activations.non_activating "
                f"({acts.non_activating})"
            )
        if labels.min_activating > sampled:
            raise ConfigError(
                f"labels.min_activating ({labels.min_activating}) must be <= {sampled} (examples collected per feature)"
            )
        missing = [m for m in self.graphs.models if m not in self.train.models]
        if missing:
            raise ConfigError(
                f"graphs.models: {', '.join(missing)} has no transcoders; add it to train.models "
                f"(now {self.train.models}) or remove it from graphs.models"
            )
        if self.clusters.model not in self.train.models:
            raise ConfigError(
                f"clusters.model: {self.clusters.model!r} has no transcoders; allowed: train.models = {self.train.models}"
            )
        if self.interventions.model != self.clusters.model:
            raise ConfigError(
                f"interventions.model: {self.interventions.model!r} must be clusters.model ({self.clusters.model!r}): "
                "the features are ranked on the clusters' step profiles"
            )
        if self.compare.null_model not in self.motifs.nulls:
            raise ConfigError(
                f"compare.null_model: {self.compare.null_model!r} is not computed; allowed: motifs.nulls = {self.motifs.nulls}"
            )
        if self.model.profile == "organism":
            for i, group in enumerate(self.train.layer_groups):
                last = int(group.split("-")[-1]) if group != "all" else 0
                if last >= self.organism.layers:
                    raise ConfigError(
                        f"train.layer_groups[{i}]: {group!r} names layers beyond the organism's "
                        f"{self.organism.layers} (organism.layers; layers 0..{self.organism.layers - 1})"
                    )
        hub = self.corpus.hub
        if (
            self.model.profile != "organism"
            and not hub.data_files
            and not hub.allow_unpinned
            and (not hub.revision or hub.revision in BRANCH_NAMES)
        ):
            raise ConfigError(
                f"corpus.hub.revision: pin a commit sha or tag of {hub.dataset} "
                "(or set corpus.hub.allow_unpinned: true to read its current main)"
            )
        ctx_needed = self.tokens.ctx_len
        if self.model.profile == "organism" and ctx_needed > self.organism.max_positions:
            raise ConfigError(
                f"tokens.ctx_len ({ctx_needed}) exceeds organism.max_positions ({self.organism.max_positions})"
            )


# ---------------------------------------------------------------------------- parsing


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "mapping"
    if origin in (list, tuple):
        return "list"
    if origin is dict:
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, path: str, meta: dict, default: Any = None) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__} {value!r}")
        return _build(tp, value, path, default)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__} {value!r}")
        key_tp, val_tp = typing.get_args(tp)
        allowed = meta.get("key_choices")
        out = {}
        for k, v in value.items():
            if allowed and k not in allowed:
                raise ConfigError(f"{path}.{k}: unknown key; allowed: {', '.join(allowed)}")
            out[str(k)] = _coerce(v, val_tp, f"{path}.{k}", {})
        return out
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__} {value!r}")
        (item_tp, *_) = typing.get_args(tp)
        if len(value) < meta.get("min_items", 0):
            raise ConfigError(f"{path}: needs at least {meta['min_items']} value(s), got an empty list")
        items = [_coerce(v, item_tp, f"{path}[{i}]", {}) for i, v in enumerate(value)]
        for i, item in enumerate(items):
            _check_scalar(item, f"{path}[{i}]", meta)
        return tuple(items) if origin is tuple else items
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(tp):
            if option is type(None) and value is None:
                return None
            try:
                return _coerce(value, option, path, meta)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{path}: {value!r} matches none of {_type_name(tp)}")
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            # YAML reads `1e-3` (no dot) as a string: accept it when it parses as a number.
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    pass
            raise ConfigError(f"{path}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {type(value).__name__} {value!r}")
        return value
    raise ConfigError(f"{path}: unsupported type {tp}")  # programming error, still one line


def _check_scalar(value: Any, path: str, meta: dict) -> None:
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{path}: {value!r} is not allowed; allowed: {', '.join(map(str, choices))}")
    for key, op, word in (
        ("ge", float.__ge__, ">="),
        ("gt", float.__gt__, ">"),
        ("le", float.__le__, "<="),
        ("lt", float.__lt__, "<"),
    ):
        if key in meta and isinstance(value, (int, float)) and not op(float(value), float(meta[key])):
            raise ConfigError(f"{path}: {value!r} is out of range; must be {word} {meta[key]}")


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _build(cls: type, data: dict, path: str, defaults: Any = None) -> Any:
    """`cls` from a mapping. A key left out takes its default *at this place* of `Params()`: `defaults`
    (the enclosing field's default instance, e.g. `OrganismParams().reasoner`), else the field's default,
    so a partial section (`organism: {reasoner: {steps: 5}}`) means the same as the defaults merged with it."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            where = f"{path}.{key}" if path else str(key)
            raise ConfigError(f"{where}: unknown key; allowed: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        where = f"{path}.{name}" if path else name
        default = getattr(defaults, name) if defaults is not None else _field_default(f)
        if name not in data:
            if defaults is not None:
                kwargs[name] = copy.deepcopy(default)
            continue
        value = _coerce(data[name], hints[name], where, dict(f.metadata), default)
        if not isinstance(value, (list, tuple, dict)) and not dataclasses.is_dataclass(value):
            _check_scalar(value, where, dict(f.metadata))
        kwargs[name] = value
    obj = cls(**kwargs)
    _run_checks(obj, path)
    return obj


def _run_checks(obj: Any, path: str) -> None:
    check = getattr(obj, "check", None)
    if check is not None:
        check(path or "params")
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        where = f"{path}.{f.name}" if path else f.name
        if isinstance(value, dict):
            for k, v in value.items():
                if dataclasses.is_dataclass(v) and hasattr(v, "check"):
                    v.check(f"{where}.{k}")


def parse_section(cls: type, data: dict, path: str) -> Any:
    """Validate one section (e.g. `TrainParams` sent to a worker process) like the whole file."""
    return _build(cls, data, path)


def parse_params(data: Any, source: str = "params") -> Params:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, got {type(data).__name__}")
    return _build(Params, data, "")


def _read_yaml(path: Path, what: str) -> Any:
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file; every error names the file and the key path."""
    path = Path(path)
    data = _read_yaml(path, "params file")
    try:
        return parse_params(data, str(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def to_dict(obj: Any) -> Any:
    """Plain-data view (for metrics, manifests, hashes)."""
    return dataclasses.asdict(obj)


# ---------------------------------------------------------------------------- overrides and full files


def _deep_merge(cls: type, base: dict, override: dict) -> dict:
    """`override` on top of `base` (plain data of `cls`): sections merge key by key, values replace.

    A value is anything that is not a section: scalars, lists, and the mapping-valued parameters
    (`corpus.tasks`, `train.pull.repos`), so an override can drop a task, and the same file means the
    same thing merged here or loaded directly by `load_params`. Unknown keys pass through for
    `parse_params` to name."""
    hints = typing.get_type_hints(cls)
    out = dict(base)
    for key, value in override.items():
        tp = hints.get(key) if isinstance(key, str) else None
        if (
            tp is not None
            and dataclasses.is_dataclass(tp)
            and isinstance(value, dict)
            and isinstance(base.get(key), dict)
        ):
            out[key] = _deep_merge(tp, base[key], value)
        else:
            out[key] = value
    return out


def merge_override(override_path: str | Path | None = None) -> dict:
    """The defaults as plain data, deep-merged with an override file's mapping, validated.

    An override file holds only the keys that differ from the defaults (e.g. `configs/thorough.yaml`).
    Sections merge key by key; a value (scalar, list, or a mapping-valued parameter such as `corpus.tasks`)
    replaces the default. Returns the full, normalised plain data (`to_dict` of the parsed result). Every
    error is one line starting with the override file's path, then the key path and what is allowed
    (e.g. `configs/x.yaml: train.lrr: unknown key; allowed: source, models, ...`). Without an override,
    the defaults.
    """
    defaults = to_dict(Params())
    if override_path is None:
        return defaults
    path = Path(override_path)
    data = _read_yaml(path, "override file")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    merged = _deep_merge(Params, defaults, data)
    try:
        return to_dict(parse_params(merged, str(path)))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


PARAMS_HEADER = """\
# Every tunable of the pipeline, grouped by stage; validated by `r1interp params check`.
# Written by `r1interp params write{args}`: the defaults of r1interp/config.py{merged}.
# Edit values here (DVC tracks this file), or keep only the keys that differ in an override file and rewrite it.
"""

COMMENT_COLUMN = 27


def _yaml_value(value: Any) -> str:
    """One value as one line of YAML (lists and mappings in flow style)."""
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, allow_unicode=True, width=1 << 30)
    lines = text.strip().splitlines()
    if lines and lines[-1] == "...":
        lines = lines[:-1]
    if len(lines) != 1:  # a programming error (a multi-line value), still one line
        raise ConfigError(f"cannot write {value!r} on one line of YAML")
    return lines[0]


def _comment(f: dataclasses.Field, tp: Any) -> str:
    meta = f.metadata
    parts = [meta["doc"]] if meta.get("doc") else []
    if not parts and dataclasses.is_dataclass(tp):
        own = tp.__doc__ or ""
        if own and not own.startswith(f"{tp.__name__}("):  # not the signature dataclasses put there
            parts.append(" ".join(own.split()))
    for key, word in (("choices", ""), ("key_choices", "keys: ")):
        if meta.get(key):
            parts.append(word + " | ".join(map(str, meta[key])))
    return "; ".join(parts)


def _line(text: str, comment: str) -> str:
    if not comment:
        return text
    return f"{text.ljust(COMMENT_COLUMN)}  # {comment}"


def _emit(cls: type, data: dict, indent: int, lines: list[str]) -> None:
    hints = typing.get_type_hints(cls)
    pad = "  " * indent
    for f in dataclasses.fields(cls):
        tp, value, comment = hints[f.name], data[f.name], _comment(f, hints[f.name])
        if dataclasses.is_dataclass(tp):
            if indent == 0:
                lines.append("")
            lines.append(_line(f"{pad}{f.name}:", comment))
            _emit(tp, value, indent + 1, lines)
        elif typing.get_origin(tp) is dict and value:
            lines.append(_line(f"{pad}{f.name}:", comment))
            lines.extend(f"{pad}  {key}: {_yaml_value(item)}" for key, item in value.items())
        else:
            lines.append(_line(f"{pad}{f.name}: {_yaml_value(value)}", comment))


def params_yaml(data: dict, *, override: str | Path | None = None) -> str:
    """The text of a full params file for `data` (validated; missing keys take their defaults): every key,
    sections in the dataclass order, the field docs as comments."""
    params = parse_params(data)
    full = to_dict(params)
    args = f" --override {override}" if override is not None else ""
    merged = f" merged with {override}" if override is not None else ""
    lines = PARAMS_HEADER.format(args=args, merged=merged).splitlines()
    _emit(Params, full, 0, lines)
    text = "\n".join(lines) + "\n"
    if parse_params(yaml.safe_load(text)) != params:  # a programming error in the writer
        raise ConfigError("params_yaml: the written text does not read back as the same params")
    return text


def write_params(data: dict, path: str | Path = "params.yaml", *, override: str | Path | None = None) -> Path:
    """Write a full params file (all keys, readable YAML) for `data`, atomically: a temp file in the same
    folder, then `os.replace`, so a reader never sees half a file. `override` is only named in the header."""
    path = Path(path)
    try:
        text = params_yaml(data, override=override)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
