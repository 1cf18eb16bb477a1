"""Every artifact path of the pipeline, in one place: repo-relative `pathlib.Path`s, grouped by stage.

dvc.yaml declares the same paths (each stage's outs, metrics and plots, and the deps it reads);
tests/test_paths.py keeps the two in sync: every path dvc.yaml declares under data/, models/ or reports/
(foreach/matrix expanded with params.yaml) must be defined here, every path defined here must be declared
in dvc.yaml (or lie inside a declared directory), and no other module may spell such a path as a string.
Rename an artifact here and in dvc.yaml together.

The paths are relative to the project root: code that takes a root joins them (`root / paths.LABELS_PARQUET`);
stages run from the root and use them as they are. Where a string is needed (a dict key, a path inside the
report site, JSON for a subprocess) use `.as_posix()`.

Functions give the per-role / per-model / per-group paths of foreach and matrix stages
(`lm_dir("reasoner")` is `organism@reasoner`'s output).
"""

from __future__ import annotations

from pathlib import Path

METRICS_DIR = Path("reports/metrics")  # one <stage>.json per stage with metrics (cache: false, in git)

# ------------------------------------------------------------------ fetch: Hub models (real profile)
HUB_DIR = Path("models/hub")
HUB_README = HUB_DIR / "README.md"


def hub_model_dir(role: str) -> Path:
    """A downloaded model of the real profile (role: reasoner | base)."""
    return HUB_DIR / role


# ------------------------------------------------------------------ corpus
CORPUS_DIR = Path("data/corpus")
CORPUS_PARQUET = CORPUS_DIR / "corpus.parquet"

# ------------------------------------------------------------------ organism@<role>, organism-eval
LM_DIR = Path("models/lm")  # one location per model role, whatever the profile: every later stage loads from it
ORGANISM_METRICS = METRICS_DIR / "organism.json"


def lm_dir(role: str) -> Path:
    """`organism@<role>`'s output, the model of a role (reasoner | base) for every later stage: the trained
    organism (profile organism) or the fetched Hub model installed from `hub_model_dir(role)` (Hub profiles)."""
    return LM_DIR / role


# ------------------------------------------------------------------ tokens
TOKENS_DIR = Path("data/tokens")
TOKENS_TRAIN = TOKENS_DIR / "train"
TOKENS_HELDOUT = TOKENS_DIR / "heldout"


def token_split(split: str) -> Path:
    """One token split (split: train | heldout)."""
    return TOKENS_DIR / split


# ------------------------------------------------------------------ train@<group>, transcoders@<model>, evaluate
TRANSCODERS_DIR = Path("models/transcoders")  # assembled sets: <model>/{sparsify,circuit-tracer}/
TRANSCODERS_TRAIN_DIR = TRANSCODERS_DIR / "train"  # train@<group> outputs: <group>/<model>/<hookpoint>/
TRAIN_PLOTS_DIR = Path("reports/train")  # dvclive logs: <model>-<group>/
TRANSCODERS_METRICS = METRICS_DIR / "transcoders.json"
TRANSCODERS_PER_LAYER = Path("reports/transcoders/per_layer.json")


def train_group_dir(group: str) -> Path:
    """`train@<group>`'s coders (group: a train.layer_groups entry: all | N | A-B)."""
    return TRANSCODERS_TRAIN_DIR / group


def train_live_dir(model: str, group: str) -> Path:
    """The dvclive log of one model's training in one layer group."""
    return TRAIN_PLOTS_DIR / f"{model}-{group}"


def transcoder_set(model: str) -> Path:
    """`transcoders@<model>`'s assembled set (model: reasoner | base)."""
    return TRANSCODERS_DIR / model


def sparsify_dir(model: str) -> Path:
    """The sparsify layout of a model's set (`layers.N.mlp/`)."""
    return transcoder_set(model) / "sparsify"


# ------------------------------------------------------------------ activations
ACTIVATIONS_DIR = Path("data/activations")


def activations_dir(model: str) -> Path:
    return ACTIVATIONS_DIR / model


def features_parquet(model: str) -> Path:
    """One row per transcoder feature of `model` (FeatureSchema)."""
    return activations_dir(model) / "features.parquet"


def examples_parquet(model: str) -> Path:
    """Sampled example windows of `model`'s features (ExampleSchema)."""
    return activations_dir(model) / "examples.parquet"


# ------------------------------------------------------------------ labels
LABELS_DIR = Path("data/labels")
LABELS_PARQUET = LABELS_DIR / "labels.parquet"
SCORES_PARQUET = LABELS_DIR / "scores.parquet"
LABEL_CACHE = LABELS_DIR / "cache"  # Claude answers: kept across runs (persist), so nothing is paid twice
LABELS_METRICS = METRICS_DIR / "labels.json"
LABELS_BY_LAYER = Path("reports/labels/by_layer.json")
LABELS_SCORES_PNG = Path("reports/labels/scores.png")

# ------------------------------------------------------------------ graphs
PROMPTS_DIR = Path("data/prompts")  # in git: benchmark prompt sets, <profile>.json
REFERENCE_DIR = Path("data/reference/neuronpedia")  # in git: reference graphs (Claude 3.5 Haiku)
GRAPHS_DIR = Path("data/graphs")
GRAPH_INDEX = GRAPHS_DIR / "index.parquet"
GRAPHS_METRICS = METRICS_DIR / "graphs.json"


def prompts_file(profile: str) -> Path:
    """The benchmark prompt set of a model profile."""
    return PROMPTS_DIR / f"{profile}.json"


# ------------------------------------------------------------------ motifs, compare
MOTIF_TABLES = Path("reports/motifs/tables")
MOTIF_ZSCORES = MOTIF_TABLES / "zscores.parquet"
MOTIF_CENSUS = MOTIF_TABLES / "census.parquet"
MOTIF_WARNINGS = MOTIF_TABLES / "warnings.txt"
MOTIFS_METRICS = METRICS_DIR / "motifs.json"
COMPARE_DIR = Path("reports/motifs/compare")  # also its figures (*.png)
COMPARE_DIFFERENCES = COMPARE_DIR / "differences.csv"
COMPARE_PER_GRAPH = COMPARE_DIR / "per_graph.csv"
COMPARE_METRICS = METRICS_DIR / "compare.json"

# ------------------------------------------------------------------ quality
QUALITY_DIR = Path("reports/quality")  # Great Expectations data docs
QUALITY_INDEX = QUALITY_DIR / "index.html"
QUALITY_METRICS = METRICS_DIR / "quality.json"

# ------------------------------------------------------------------ clusters
CLUSTERS_DATA_DIR = Path("data/clusters")
CLUSTER_STEPS = CLUSTERS_DATA_DIR / "steps.parquet"
CLUSTER_PROFILES = CLUSTERS_DATA_DIR / "profiles.npy"
BEHAVIOUR_CACHE = Path("data/behaviours/cache")  # Claude's behaviour annotations: kept across runs (persist)
CLUSTERS_DIR = Path("reports/clusters")  # also its figures (*.png)
TAXONOMY_JSON = CLUSTERS_DIR / "taxonomy.json"
CLUSTER_TRANSITIONS = CLUSTERS_DIR / "transitions.csv"
CLUSTER_K_SELECTION = CLUSTERS_DIR / "k_selection.csv"
CLUSTER_ENRICHMENT = CLUSTERS_DIR / "enrichment_step_types.csv"
CLUSTERS_METRICS = METRICS_DIR / "clusters.json"

# ------------------------------------------------------------------ critical
CRITICAL_DIR = Path("reports/critical")
CRITICAL_ATTRIBUTION_RANKING = CRITICAL_DIR / "attribution_ranking.csv"
CRITICAL_DECODER_ALIGNED = CRITICAL_DIR / "decoder_aligned_features.csv"
CRITICAL_ENCODER_ALIGNED = CRITICAL_DIR / "encoder_aligned_features.csv"
CRITICAL_WEIGHT_DIFF_PNG = CRITICAL_DIR / "weight_diff.png"
CRITICAL_METRICS = METRICS_DIR / "critical.json"

# ------------------------------------------------------------------ interventions
INTERVENTIONS_DIR = Path("reports/interventions")  # also its figures (*.png)
INTERVENTION_RESULTS = INTERVENTIONS_DIR / "results.csv"
INTERVENTIONS_METRICS = METRICS_DIR / "interventions.json"

# ------------------------------------------------------------------ planted flaw (find and fix)
FLAWED_LM = Path("models/flawed")  # not under models/lm: stages reading models/lm must not depend on it
FLAW_DIR = Path("reports/flaw")  # repairs.csv, rules.csv, neurons.csv, features.csv, arms.json, repairs.png
FLAW_METRICS = METRICS_DIR / "flaw.json"

# ------------------------------------------------------------------ seed spread (python -m r1interp.seeds)
SEEDS_SPREAD = Path("reports/seeds/spread.json")
# what a fresh copy of the project leaves out: the pipeline's outputs (the folders below) but the inputs kept in git
OUTPUT_ROOTS = ("data/", "models/", "reports/")
INPUTS_IN_GIT = (PROMPTS_DIR.as_posix() + "/", REFERENCE_DIR.as_posix() + "/")

# ------------------------------------------------------------------ report
SITE_DIR = Path("reports/site")
SITE_INDEX = SITE_DIR / "index.html"

# ------------------------------------------------------------------ outside the pipeline (CLI commands, no stage)
SWEEP_DIR = Path("reports/sweep")  # `r1interp sweep pareto`
SWEEP_PARETO_JSON = SWEEP_DIR / "pareto.json"
SWEEP_PARETO_PNG = SWEEP_DIR / "pareto.png"
PULLED_DIR = Path("models/pulled")  # `r1interp registry pull`
TIMINGS_DIR = Path("reports/timings")  # stage wall/CPU times: next to the artifacts, never hashed by DVC


def pulled_dir(repo_id: str) -> Path:
    """Default output folder of `r1interp registry pull owner/name`."""
    return PULLED_DIR / repo_id.replace("/", "--")


# Written outside any stage's declared outputs, so not in dvc.yaml (and they must not be: see tests/test_paths.py).
NOT_IN_PIPELINE = (SWEEP_DIR, PULLED_DIR, TIMINGS_DIR, SEEDS_SPREAD.parent)
