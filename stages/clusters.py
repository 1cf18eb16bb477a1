"""Stage `clusters`: activation maps of reasoning steps, clusters of steps, and a taxonomy."""

import r1interp  # noqa: F401  first import: pins deterministic numerics before torch/numpy load

# isort: split

import json
import time

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from r1interp import paths, stage, timings
from r1interp.errors import ArtifactError
from r1interp.io import atomic_path, write_json
from r1interp.models import load_role, resolve_device
from r1interp.reasoning import behaviours, clustering, maps, taxonomy
from r1interp.reasoning.steps import feature_index, step_profiles
from r1interp.schemas import CorpusSchema, LabelSchema, read_parquet
from r1interp.transcoders import SET_ROOT, load_coders

OUT_DATA = paths.CLUSTERS_DATA_DIR
CACHE = paths.BEHAVIOUR_CACHE  # Claude answers: kept across runs (persist), so nothing is paid twice
OUT = paths.CLUSTERS_DIR
METRICS = paths.CLUSTERS_METRICS


def ground_truth(corpus: pd.DataFrame) -> dict[str, list[str]]:
    """The generator's step types per problem (the organism's corpus has them; real traces do not)."""
    if "step_types" not in corpus:
        return {}
    return {
        r.id: r.step_types.split("|") for r in corpus.itertuples() if isinstance(r.step_types, str) and r.step_types
    }


def behaviour_types(steps: pd.DataFrame) -> list[str]:
    """Real traces: each sentence's R1 behaviour from the offline rule annotator (`reasoning.behaviours`)."""
    return [behaviours.annotate(r.text, first=r.index == 0) for r in steps.itertuples()]


def claude_behaviour_types(steps: pd.DataFrame, params) -> tuple[list[str], dict]:
    """Real traces annotated by Claude, trace by trace (the rules where an answer cannot be used)."""
    from r1interp.autointerp.client import ClaudeClient
    from r1interp.reasoning import claude_behaviours

    claude = params.labels.claude
    client = ClaudeClient(claude, CACHE)
    order = list(dict.fromkeys(steps["problem_id"]))
    traces = [list(steps.loc[steps["problem_id"] == pid, "text"]) for pid in order]
    labels, info = claude_behaviours.annotate_traces(client, traces, claude.explainer_model, claude.max_tokens)
    by_problem = dict(zip(order, labels, strict=True))
    return [by_problem[r.problem_id][r.index] for r in steps.itertuples()], info | {"model": claude.explainer_model}


def problem_types(problems: pd.DataFrame) -> dict[str, str]:
    """problem id -> "task / carry" (real traces without a carry flag count as "no carry")."""
    carry = problems["has_carry"] if "has_carry" in problems else pd.Series(False, index=problems.index)
    return {
        pid: f"{task} / {'carry' if c else 'no carry'}"
        for pid, task, c in zip(problems["id"], problems["task"], carry, strict=True)
    }


def require_annotator(cfg, profile: str) -> None:
    """Claude annotates only real traces, and needs its key: refused before any work."""
    if cfg.annotator == "claude" and profile != "organism":
        from r1interp.autointerp.client import require_api_key

        require_api_key("clusters.annotator", fallback="rules")


def main(params, args):
    cfg = params.clusters
    require_annotator(cfg, params.model.profile)
    started = time.perf_counter()
    device = resolve_device(params.model.device)
    corpus = read_parquet(paths.CORPUS_PARQUET, CorpusSchema, "run `dvc repro corpus`")
    heldout = corpus[corpus["split"] == "heldout"]
    if cfg.problems:  # the same number from every task (the held-out split is ordered by task)
        per_task = -(-cfg.problems // heldout["task"].nunique())
        heldout = heldout.groupby("task", sort=False).head(per_task).head(cfg.problems)
    loaded = load_role(params.model.profile, cfg.model, device=device)
    coders = load_coders(SET_ROOT / cfg.model / "sparsify", device=device)
    steps_list, profiles = step_profiles(
        loaded.model,
        coders,
        loaded.tokenizer,
        list(zip(heldout["id"], heldout["text"], strict=True)),
        cfg.segment,
        device,
        progress=lambda it: tqdm(it, desc="step profiles", unit="problem"),
    )
    features = feature_index(coders)
    truth = ground_truth(heldout)
    types = problem_types(heldout)
    steps = pd.DataFrame(
        [
            {"problem_id": s.problem_id, "index": s.index, "text": s.text, "problem_type": types[s.problem_id]}
            for s in steps_list
        ]
    )
    truth_col, reference, annotation = None, None, None
    CACHE.mkdir(parents=True, exist_ok=True)  # the stage's persistent output, for every profile
    (CACHE / "README.md").write_text(
        "Claude's behaviour annotations (clusters.annotator: claude), one JSON line per "
        "answer; kept across runs so no request is paid twice.\n"
    )
    if truth and all(len(truth.get(pid, [])) == n for pid, n in steps.groupby("problem_id").size().items()):
        steps["true_type"] = [truth[r.problem_id][r.index] for r in steps.itertuples()]
        truth_col, reference = "true_type", "generator step types"
    elif cfg.segment == "sentence" and len(steps):
        steps["rule_type"] = behaviour_types(steps)
        if cfg.annotator == "claude":
            steps["true_type"], annotation = claude_behaviour_types(steps, params)
            agree = float((steps["true_type"] == steps["rule_type"]).mean())
            annotation["agreement_with_rules"] = round(agree, 4)
            truth_col, reference = "true_type", f"R1 behaviours ({annotation['model']})"
        else:
            steps["true_type"] = steps["rule_type"]
            truth_col, reference = "true_type", "R1 behaviours (rule annotator)"
    if len(steps) < 2 * cfg.k_max:
        raise ArtifactError(
            f"clusters: only {len(steps)} steps in {steps['problem_id'].nunique() if len(steps) else 0} "
            f"held-out traces, fewer than 2 x clusters.k_max ({cfg.k_max})",
            hint="raise clusters.problems or lower clusters.k_max",
        )
    labels = {}
    if paths.LABELS_PARQUET.exists():
        lab = read_parquet(paths.LABELS_PARQUET, LabelSchema)
        lab = lab[(lab["model"] == cfg.model) & lab["label"].notna()]
        labels = {(int(r.layer), int(r.feature)): str(r.label) for r in lab.itertuples()}

    z = clustering.embed(profiles, cfg.dims, cfg.seed)
    truth_arr = steps[truth_col].to_numpy() if truth_col else None
    selection = clustering.choose_k(
        z, (cfg.k_min, cfg.k_max), seeds=cfg.seeds, min_stability=cfg.min_stability, seed=cfg.seed, truth=truth_arr
    )
    k = selection.k
    results = {}
    for algorithm in clustering.ALGORITHMS:
        lab_arr = clustering.fit(z, k, algorithm, cfg.seed)
        steps[f"cluster_{algorithm}"] = lab_arr
        boot = clustering.bootstrap_stability(z, lab_arr, k, algorithm, cfg.bootstrap, cfg.seed)
        from sklearn.metrics import adjusted_rand_score, silhouette_score

        results[algorithm] = {
            "silhouette": round(float(silhouette_score(z, lab_arr)), 4),
            "bootstrap_ari_mean": round(float(np.mean(boot)), 4) if boot else None,
            "bootstrap_ari_min": round(float(np.min(boot)), 4) if boot else None,
            "ari_vs_true_step_types": round(float(adjusted_rand_score(truth_arr, lab_arr)), 4) if truth_col else None,
        }
    main_col = "cluster_kmeans"
    enrich_clusters = taxonomy.enrichment(profiles, steps[main_col].to_numpy(), features, cfg.top_features)
    tax = taxonomy.build_taxonomy(steps, z, main_col, enrich_clusters, labels, cfg.examples, truth_col)
    trans = taxonomy.transitions(steps, main_col)
    tree = taxonomy.similarity_tree(z, steps[main_col].to_numpy())
    layers = sorted(coders)
    widths = [coders[layer].num_latents for layer in layers]
    col_of = {f: i for i, f in enumerate(features)}
    groups = {
        f"C{e['cluster']} top": [col_of[(c["layer"], c["feature"])] for c in e["characteristic_features"][:5]]
        for e in tax
    }

    with atomic_path(OUT_DATA, directory=True) as tmp:
        steps.to_parquet(tmp / "steps.parquet", index=False)
        np.save(tmp / "profiles.npy", profiles)
    with atomic_path(OUT, directory=True) as tmp:
        (tmp / "taxonomy.json").write_text(
            json.dumps({"k": k, "criterion": selection.criterion, "clusters": tax}, indent=2) + "\n"
        )
        pd.DataFrame(selection.by_k).to_csv(tmp / "k_selection.csv", index=False)
        enrich_clusters.to_csv(tmp / "enrichment_clusters.csv", index=False)
        trans.to_csv(tmp / "transitions.csv", index=False)
        step_col = truth_col or main_col
        if truth_col:
            pd.crosstab(steps[main_col].map(lambda c: f"C{c}"), steps[truth_col]).to_csv(tmp / "confusion.csv")
            taxonomy.enrichment(profiles, steps[truth_col].to_numpy(), features, cfg.top_features).to_csv(
                tmp / "enrichment_step_types.csv", index=False
            )
        lm = maps.layer_map(profiles, steps[step_col], widths, layers)
        lm.to_csv(tmp / "layer_map.csv", index=False)
        maps.heatmap(
            lm,
            "group",
            "layer",
            "activation",
            tmp / "layer_map.png",
            f"mean feature activation per step, by {'true step type' if truth_col else 'cluster'} x layer",
        )
        fm = maps.feature_group_map(profiles, steps["problem_type"], groups)
        fm.to_csv(tmp / "problem_feature_map.csv", index=False)
        maps.heatmap(
            fm,
            "problem_type",
            "feature_group",
            "activation",
            tmp / "problem_feature_map.png",
            "mean activation of each cluster's top features, by problem type",
            fmt=".3f",
        )
        tm = trans.assign(
            **{"from": trans["from"].map(lambda c: f"C{c}"), "to": trans["to"].map(lambda c: f"C{int(c)}")}
        )
        maps.heatmap(
            tm, "from", "to", "probability", tmp / "transitions.png", "P(next step's cluster | step's cluster)"
        )
        _tree_plot(tree, [f"C{e['cluster']} ({e.get('majority_true_type', e['size'])})" for e in tax], tmp / "tree.png")
    metrics = {
        "steps": int(len(steps)),
        "problems": int(steps["problem_id"].nunique()),
        "k": k,
        "reference": reference,
        **({"annotation": annotation} if annotation else {}),
        "criterion": selection.criterion,
        **{a: r for a, r in results.items()},
        "purity_kmeans": [e.get("purity") for e in tax],
    }
    write_json(METRICS, metrics)
    timings.record("clusters", {"seconds": round(time.perf_counter() - started, 1)})
    print(json.dumps(metrics, indent=1))


def _tree_plot(tree, names, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.cluster.hierarchy import dendrogram

    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.4 * len(names)))
    if len(tree):
        dendrogram(tree, labels=names, orientation="left", ax=ax)
    ax.set_title("similarity of cluster centroids (Ward)", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    stage.run(main)
