"""The README's results table is what reports/ give (r1interp/readme.py), never typed by hand."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from r1interp import paths, readme, timings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """README.md, reports/ (without the machine's timings), the bench results and dvc.lock in a temp root."""
    shutil.copy2(ROOT / readme.README, tmp_path / readme.README)
    shutil.copy2(ROOT / readme.DVC_LOCK, tmp_path / readme.DVC_LOCK)
    reports = paths.METRICS_DIR.parent
    shutil.copytree(ROOT / reports, tmp_path / reports, ignore=shutil.ignore_patterns(paths.TIMINGS_DIR.name))
    for bench in (readme.GPU_BENCH, readme.GPU_BENCH_LONG, readme.CPU_BENCH):
        (tmp_path / bench).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / bench, tmp_path / bench)
    return tmp_path


def _edit_json(path: Path, *keys: str, value) -> None:
    data = json.loads(path.read_text())
    node = data
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    path.write_text(json.dumps(data, indent=1))


def test_check_passes_on_the_repo_as_committed():
    assert readme.check(ROOT) is None
    done = subprocess.run(
        [sys.executable, "-m", "r1interp.readme", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_the_block_is_the_table_under_the_results_heading():
    text = (ROOT / readme.README).read_text()
    heading = text.index("### Results on the embedded default")
    assert heading < text.index(readme.BEGIN) < text.index(readme.END) < text.index("### Larger settings")
    assert text.count(readme.BEGIN) == 1 and text.count(readme.END) == 1
    labels = [row.label for row in readme.parse(readme._split(text)[1])]
    assert labels[:2] == [
        "reasoner organism, held-out greedy accuracy (100 problems per task)",
        "base organism (answers only)",
    ]
    assert not any(label.startswith(("publish", "activation collection", "torch threads")) for label in labels)


def test_a_changed_metric_fails_the_check_naming_its_row(copy, capsys):
    _edit_json(copy / paths.LABELS_METRICS, "reasoner", "labeled", value=3841)
    problem = readme.check(copy)
    assert problem is not None and "features labeled" in problem and "3,841" in problem
    assert readme.main(["--check"], root=copy) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "features labeled" in err
    assert readme.main([], root=copy) == 0  # regenerating makes it pass again
    assert readme.check(copy) is None
    assert "reasoner 3,841, base" in (copy / readme.README).read_text()
    assert (ROOT / readme.README).read_text() != (copy / readme.README).read_text()  # the repo is untouched


def test_a_changed_number_in_a_row_label_is_named_too(copy):
    edges = json.loads((copy / paths.GRAPHS_METRICS).read_text())["faithfulness"]["edges"]
    _edit_json(copy / paths.GRAPHS_METRICS, "faithfulness", "edges", value=edges + 1)
    problem = readme.check(copy)
    assert problem is not None and f"graph faithfulness ({edges:,} sampled edges" in problem
    assert f"({edges + 1:,} sampled edges" in problem


def test_a_missing_metrics_file_is_one_error_naming_it(copy, capsys):
    (copy / paths.CLUSTERS_METRICS).unlink()
    with pytest.raises(readme.ArtifactError, match=r"reports/metrics/clusters\.json is missing"):
        readme.check(copy)
    assert readme.main(["--check"], root=copy) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: reports/metrics/clusters.json is missing") and len(err) <= 2


def test_a_missing_key_is_named_with_its_file(copy):
    data = json.loads((copy / paths.ORGANISM_METRICS).read_text())
    del data["heldout_problems"]
    (copy / paths.ORGANISM_METRICS).write_text(json.dumps(data))
    with pytest.raises(readme.ArtifactError, match=r"organism\.json has no key heldout_problems"):
        readme.rows(copy)


def test_timing_rows_come_from_reports_timings_and_are_never_checked(copy):
    readme_text = (copy / readme.README).read_text()
    old = {row.label: row.value for row in readme.parse(readme._split(readme_text)[1])}
    # no timings: writing keeps the README's timing rows as they are
    readme.update(copy)
    kept = {row.label: row.value for row in readme.parse(readme._split((copy / readme.README).read_text())[1])}
    assert kept[readme.ORGANISM_TRAINING] == old[readme.ORGANISM_TRAINING] and kept[readme.REPRO] == old[readme.REPRO]

    # as the stages write them: every stage its process's wall time, the organisms their training CPU time
    timings.record("organism@base", {"train_cpu_seconds": 60.4, "wall_seconds": 70.2}, copy)
    timings.record("organism@reasoner", {"train_cpu_seconds": 250.2, "wall_seconds": 160.0}, copy)
    timings.record("train@all", {"reasoner": {"seconds": 40.0, "tokens_per_second": 1.0}, "wall_seconds": 80.4}, copy)
    timings.record("graphs", {"seconds_attribution": 19.2, "wall_seconds": 30.0}, copy)
    timings.record("interventions", {"wall_seconds": 151.8}, copy)
    readme.update(copy)
    new = {row.label: row.value for row in readme.parse(readme._split((copy / readme.README).read_text())[1])}
    assert (
        new[readme.ORGANISM_TRAINING] == "311 CPU-s for both (base 60, reasoner 250); 70 s + 160 s wall (whole stage)"
    )
    repro = new[readme.REPRO]
    assert repro.startswith(
        "**492 s (8.2 min)** in the stages that record a wall time: organism@reasoner 160 s, "
        "interventions 152 s, train@all 80 s, organism@base 70 s, graphs 30 s"
    )
    assert "fetch" in repro.split("none recorded by ")[1]
    assert readme.check(copy) is None

    timings.record("interventions", {"wall_seconds": 999.0}, copy)  # another machine: the check does not care
    assert readme.check(copy) is None


def test_a_readme_without_markers_is_a_clear_error(copy):
    path = copy / readme.README
    path.write_text(path.read_text().replace(readme.BEGIN, ""))
    with pytest.raises(readme.ArtifactError, match="has no results block"):
        readme.check(copy)


@pytest.mark.parametrize(
    "value, fmt, expected",
    [
        (0.8855, lambda v: readme._dec(v, 3), "0.886"),  # half up from the JSON's decimal, as typed by hand
        (0.0, lambda v: readme._dec(v, 2), "0.00"),
        (0.995572, lambda v: readme._pct(v, 1), "99.6%"),
        (0.02, readme._pct, "2%"),
        (0.00063, readme._small, "0.0006"),
        (0.023914, readme._small, "0.024"),
        (23.535, readme._two_digits, "24"),
        (6.055, readme._two_digits, "6.1"),
        (0.0006430646066972509, readme._sci, "6.4e-4"),
        (9.45753406686199e-06, readme._sci, "9.5e-6"),
        (0.001, readme._sci, "1e-3"),
        (0.000999, readme._sci, "1e-3"),
        (512000, readme._tokens, "512k"),
        (500000, readme._tokens, "500k"),
        (4000000, readme._tokens, "4M"),
    ],
)
def test_number_formats(value, fmt, expected):
    assert fmt(value) == expected


# ---------------------------------------------------------------------------------------------- findings blocks


def _blocks(text: str) -> dict[str, str]:
    return {b.name: text[text.index(b.begin) : text.index(b.end)] for b in readme.BLOCKS}


def test_findings_blocks_sit_in_their_sections_and_hold_no_earlier_run():
    text = (ROOT / readme.README).read_text()
    for block in readme.BLOCKS:
        assert text.count(block.begin) == 1 and text.count(block.end) == 1
    circuits, steps = text.index("## Circuits: attribution graphs"), text.index("## Reasoning steps:")
    motifs_end = text.index("## Network motifs of attribution graphs")
    b = {blk.name: blk for blk in readme.BLOCKS}
    assert circuits < text.index(b["findings-motifs"].begin) < text.index(b["findings-motifs"].end) < steps
    assert (
        steps
        < text.index(b["findings-clusters"].begin)
        < text.index(b["findings-critical"].begin)
        < text.index(b["findings-interventions"].begin)
        < text.index(b["findings-interventions"].end)
        < motifs_end
    )
    for name, body in _blocks(text).items():
        assert "thorough" not in body and "2026-11" not in body, name  # the earlier run's record stays outside
    # the earlier runs' numbers are kept, outside the blocks, labelled as such
    for number in ("reasoner 0.746 vs base 0.553", "k = 7, ARI 0.714 / 0.727", "took add carry to 0.38 / 0.01"):
        at = text.index(number, circuits)
        assert not any(text.index(bl.begin) < at < text.index(bl.end) for bl in readme.BLOCKS)
        record = text.rfind("Record of", 0, at)
        assert 0 <= at - record < 600 and "before the numerics were" in text[record : at + 200]


def _edit_csv(path: Path, match: dict[str, str], column: str, value) -> None:
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    hit = [r for r in rows if all(r[k] == v for k, v in match.items())]
    assert len(hit) == 1
    hit[0][column] = str(value)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _set_cluster_size(path: Path) -> None:
    data = json.loads(path.read_text())
    c1 = next(c for c in data["clusters"] if c["tag"] == "C1")
    c1["true_step_types"][c1["majority_true_type"]] += 1
    c1["size"] += 1
    path.write_text(json.dumps(data))


def _other_k(root: Path) -> str:
    """The k the README's cluster block compares the chosen k with ('k = 5 would give ...')."""
    found = re.search(r"k = (\d+) would give", (root / readme.README).read_text())
    assert found, "README: the clusters block names no other k"
    return found[1]


def _set_steering(path: Path) -> None:
    data = json.loads(path.read_text())
    alpha8 = next(e for e in data["steering"] if e["alpha"] == 8.0)
    alpha8["groups"]["add_carry"]["accuracy"] = 0.42
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "edit, block, named",
    [
        (
            lambda root: _edit_json(root / paths.CRITICAL_METRICS, "decoder_alignment", "mean", value=0.5),
            "findings-critical",
            "0.500",
        ),
        (
            lambda root: _edit_csv(
                root / paths.COMPARE_DIFFERENCES,
                {"comparison": "reasoner_vs_base", "statistic": "coherent_fraction"},
                "mean_a",
                0.9,
            ),
            "findings-motifs",
            "**Reasoner vs base**",
        ),
        (lambda root: _set_cluster_size(root / paths.TAXONOMY_JSON), "findings-clusters", "C1 ("),
        (
            lambda root: _edit_csv(root / paths.CLUSTER_K_SELECTION, {"k": _other_k(root)}, "ari_kmeans", 0.99),
            "findings-clusters",
            "would give 0.990",
        ),
        (lambda root: _set_steering(root / paths.INTERVENTIONS_METRICS), "findings-interventions", "alpha 8"),
    ],
)
def test_a_changed_report_fails_the_check_naming_its_block_and_sentence(copy, capsys, edit, block, named):
    edit(copy)
    problem = readme.check(copy)
    assert problem is not None and f"block {block} line" in problem and named in problem, problem
    assert readme.main(["--check"], root=copy) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and block in err
    assert readme.main([], root=copy) == 0  # regenerating makes it pass again
    assert readme.check(copy) is None
    assert (ROOT / readme.README).read_text() != (copy / readme.README).read_text()


def test_a_missing_findings_marker_is_a_clear_error(copy):
    path = copy / readme.README
    block = readme.BLOCKS[2]
    path.write_text(path.read_text().replace(block.end, ""))
    with pytest.raises(readme.ArtifactError, match=f"has no {block.name} block"):
        readme.check(copy)


def test_editing_a_findings_block_by_hand_fails_the_check(copy):
    path = copy / readme.README
    text = path.read_text()
    path.write_text(text.replace("Ablation is specific up to", "Ablation is clearly specific up to", 1))
    problem = readme.check(copy)
    assert problem is not None and "findings-interventions" in problem and "clearly" in problem


# ---- directional wording, on small synthetic inputs

LOCK = {
    "stages": {
        "motifs": {"params": {"params.yaml": {"motifs.signs": "keep"}}},
        "clusters": {"params": {"params.yaml": {"clusters.min_stability": 0.9}}},
        "interventions": {
            "params": {
                "params.yaml": {
                    "interventions.finetune.steps": 60,
                    "interventions.finetune.task": "add",
                    "interventions.ood_digits": 4,
                }
            }
        },
    }
}


def _diff_row(comparison, statistic, a, b, low, high, n_a=19, n_b=19):
    return {
        "comparison": comparison,
        "statistic": statistic,
        "n_a": str(n_a),
        "n_b": str(n_b),
        "mean_a": str(a),
        "mean_b": str(b),
        "difference": str(a - b),
        "ci_low": str(low),
        "ci_high": str(high),
    }


def _motif_sources(
    share=(0.87, 0.56, 0.27, 0.34),
    z=(5.8, 16.8, -15.4, -6.2),
    significant=7,
    haiku_share=0.68,
    incorrect_categories=("baseline",),
):
    rb, rz = share, z
    rows = [
        _diff_row("reasoner_vs_base", "coherent_fraction", *rb),
        _diff_row("reasoner_vs_base", "z:coherent", *rz),
        _diff_row("reasoner_vs_base", "z:030T", 0.9, 10.4, -14.4, -4.7),
        _diff_row("think_vs_answer", "coherent_fraction", 0.66, 0.88, -0.27, -0.17, 14, 14),
        _diff_row("think_vs_answer", "z:coherent", 7.4, 5.6, -0.9, 5.0, 14, 14),
        _diff_row("correct_vs_incorrect:reasoner", "coherent_fraction", 0.89, 0.82, 0.01, 0.13, 12, 7),
        _diff_row("correct_vs_incorrect:reasoner", "z:coherent", 4.4, 8.3, -7.2, -1.1, 12, 7),
        _diff_row("reasoner_vs_ref", "coherent_fraction", rb[0], haiku_share, 0.1, 0.2, 19, 1),
        _diff_row("reasoner_vs_ref", "z:030T", 0.9, 12.0, -12, -10, 19, 1),
    ]
    per_graph = [{"origin": "ours", "model": "reasoner", "kind": "answer", "correct": "True", "category": "carry"}] + [
        {"origin": "ours", "model": "reasoner", "kind": "answer", "correct": "False", "category": c}
        for c in incorrect_categories
    ]
    comparisons = {
        "reasoner_vs_base": {"significant": 19, "statistics": 21},
        "correct_vs_incorrect:reasoner": {"significant": significant, "statistics": 21},
    }
    groups = {
        "reasoner/answer": {"edges": 1000.0},
        "base/answer": {"edges": 4000.0},
        "reasoner/think": {"edges": 1100.0},
        "reference/ref": {"edges": 1300.0},
    }
    return readme.Sources(
        Path("/nonexistent"),
        data={
            paths.COMPARE_DIFFERENCES: rows,
            paths.COMPARE_PER_GRAPH: per_graph,
            readme.DVC_LOCK: LOCK,
            paths.COMPARE_METRICS: {"null": "layer_configuration", "confidence": 0.95, "comparisons": comparisons},
            paths.MOTIFS_METRICS: {"samples": 20, "groups": groups},
        },
    )


def test_motif_wording_follows_the_data():
    now = "\n".join(readme.motif_findings(_motif_sources()))
    assert "loops are more often sign-coherent" in now
    assert "separate them too" in now and "opposite direction to the coherent share" in now
    assert "more than the 1.05 that 21 tests give by chance" in now
    assert "disjoint prompt categories" in now and "lies between base and reasoner" in now

    flipped = "\n".join(
        readme.motif_findings(
            _motif_sources(
                share=(0.56, 0.87, -0.34, -0.27),
                z=(19.0, 21.3, -10.3, 5.4),
                significant=1,
                haiku_share=0.95,
                incorrect_categories=("carry",),
            )
        )
    )
    assert "loops are less often sign-coherent" in flipped
    assert "do not separate them" in flipped and "includes 0" in flipped
    assert "1 of 21 statistics has a CI excluding 0 — about what 21 tests give by chance" in flipped
    assert "not a finding" in flipped and "disjoint" not in flipped
    assert "is above both base and reasoner" in flipped

    unclear = "\n".join(readme.motif_findings(_motif_sources(share=(0.6, 0.58, -0.05, 0.09))))
    assert "not detectably more or less often sign-coherent" in unclear and "separate them too" not in unclear


def _groups(acc: dict[str, float], nll: dict[str, float] | None = None) -> dict:
    return {
        g: {
            "accuracy": a,
            "ci95": [max(0.0, a - 0.1), min(1.0, a + 0.1)],
            "n": 50,
            **({"gold_nll": nll[g]} if nll else {}),
        }
        for g, a in acc.items()
    }


def _random(acc: dict[str, tuple[float, float]]) -> dict:
    return {g: {"draws": 2, "min_accuracy": lo, "max_accuracy": hi, "n": 50} for g, (lo, hi) in acc.items()}


GROUPS = ("add_carry", "add_no_carry", "mul_carry", "mul_no_carry", "ood_add", "ood_mul")
ONE = dict.fromkeys(GROUPS[:4], 1.0) | {"ood_add": 0.0, "ood_mul": 0.0}


def _interventions(ablation_150=None, steer_2=None, finetune_ood_nll=0.76, random_ood_nll=0.74):
    ablation_150 = ablation_150 or {"add_carry": 0.52}
    steer_2 = steer_2 or {}
    nll = dict.fromkeys(GROUPS, 7.5)
    keep = {g: (a, a) for g, a in ONE.items()}
    return {
        "groups": {g: (12 if g == "mul_no_carry" else 50) for g in GROUPS},
        "baseline": _groups(ONE, dict(ONE) | {"ood_add": 2.67, "ood_mul": 2.56}),
        "ablation": [{"size": 150.0, "groups": _groups(ONE | ablation_150)}],
        "ablation_random": [{"size": 150.0, "groups": _random(keep)}],
        "weight_edit": [{"size": 2.0, "scale": 0.0, "groups": _groups(ONE)}],
        "weight_edit_random": [{"size": 2.0, "groups": _random(keep)}],
        "steering": [{"alpha": 2.0, "groups": _groups(ONE | steer_2)}],
        "steering_random": [{"alpha": 2.0, "groups": _groups(ONE)}],
        "steering_base_toward_reasoner": [
            {"intervention": "baseline", "alpha": None, "groups": _groups(dict.fromkeys(GROUPS, 0.0), nll)},
            {"intervention": "steering", "alpha": 2.0, "groups": _groups(dict.fromkeys(GROUPS, 0.0), nll)},
            {"intervention": "steering_random", "alpha": 2.0, "groups": _groups(dict.fromkeys(GROUPS, 0.0), nll)},
        ],
        "ood_improvement": [
            {
                "group": g,
                "improved": False,
                "baseline": {"accuracy": 0.0},
                "best": {"accuracy": 0.0, "n": 50, "intervention": "ablation"},
            }
            for g in ("ood_add", "ood_mul")
        ],
        "finetune": {
            "step_type": "column_sum",
            "finetune": {"groups": _groups(ONE, dict(ONE) | {"ood_add": finetune_ood_nll, "ood_mul": 1.4})},
            "finetune_random": {"groups": _groups(ONE, dict(ONE) | {"ood_add": random_ood_nll, "ood_mul": 1.4})},
        },
    }


def _render_interventions(**kw) -> str:
    src = readme.Sources(
        Path("/nonexistent"), data={paths.INTERVENTIONS_METRICS: _interventions(**kw), readme.DVC_LOCK: LOCK}
    )
    return "\n".join(readme.intervention_findings(src))


def test_intervention_wording_follows_the_data():
    now = _render_interventions()
    assert "Ablation is specific up to 150 features" in now and "from 1.00 to 0.52" in now
    assert "has no carry-specific effect at any alpha tried (2)" in now
    assert "neither the carry features' output nor a random direction" in now
    assert "lowered the loss as much (0.74" in now and "did no better than a random one" in now
    assert now.index("What did not work:") < now.index("The cluster fine-tune")

    # the carry-free groups fall with the carry group: no longer specific
    flipped = _render_interventions(ablation_150={"add_carry": 0.52, "add_no_carry": 0.6})
    assert "Ablation is not specific" in flipped and "add no-carry 0.60" in flipped
    # no drop below the random sets at all
    assert "no size takes add with carry below the random sets" in _render_interventions(
        ablation_150={"add_carry": 1.0}
    )

    # steering that costs carry problems more than its random direction, and nothing else
    steered = _render_interventions(steer_2={"add_carry": 0.76})
    assert "carry-specific at alpha 2:" in steered and "costs add with carry 24 points" in steered
    assert "more than a random direction of the same norm (1.00, outside that interval)" in steered
    # ... and one that costs as much as its random direction
    same = _render_interventions(steer_2={"add_carry": 0.95})
    assert "about as much as a random direction of the same norm (1.00, inside that interval)" in same

    # a fine-tune that beats its random-span control on its target
    beat = _render_interventions(finetune_ood_nll=0.3, random_ood_nll=0.9)
    assert "cluster's span beat a random one" in beat and "random-span control did worse on the loss" in beat


def test_cluster_and_critical_wording_follows_the_data():
    taxonomy = {
        "clusters": [
            {
                "tag": "C0",
                "size": 10,
                "purity": 1.0,
                "majority_true_type": "sum",
                "true_step_types": {"sum": 10},
                "examples": ["ones: 1+2=3"],
            },
            {
                "tag": "C1",
                "size": 10,
                "purity": 0.6,
                "majority_true_type": "carry",
                "true_step_types": {"carry": 6, "sum": 4},
                "examples": ["tens: 5+7=12"],
            },
        ]
    }
    k_rows = [
        {"k": "2", "silhouette": "0.3", "seed_stability": "1.0", "ari_kmeans": "0.8", "ari_agglomerative": "0.7"},
        {"k": "3", "silhouette": "0.2", "seed_stability": "0.5", "ari_kmeans": "0.9", "ari_agglomerative": "0.7"},
    ]
    metrics = {
        "problems": 20,
        "steps": 20,
        "k": 2,
        "kmeans": {"ari_vs_true_step_types": 0.8, "silhouette": 0.3, "bootstrap_ari_mean": 0.9},
        "agglomerative": {"ari_vs_true_step_types": 0.7, "silhouette": 0.3, "bootstrap_ari_mean": 0.8},
    }
    data = {
        paths.CLUSTERS_METRICS: metrics,
        paths.TAXONOMY_JSON: taxonomy,
        paths.CLUSTER_K_SELECTION: k_rows,
        paths.ORGANISM_METRICS: {"reasoner": {"accuracy": {"add": 1.0, "mul": 1.0, "overall": 1.0}}},
        readme.DVC_LOCK: LOCK,
    }
    text = "\n".join(readme.cluster_findings(readme.Sources(Path("/nonexistent"), data=data)))
    assert "k = 3 would give 0.900 but is not seed-stable (0.50 < 0.9)" in text
    assert (
        "No step type is split" in text
        and "1 of 2 clusters are pure" in text
        and "C1 (60% carry, 40% sum) mixes" in text
    )
    k_rows[1]["ari_kmeans"] = "0.1"
    text = "\n".join(readme.cluster_findings(readme.Sources(Path("/nonexistent"), data=data)))
    assert "k = 2 also has the highest ARI of k = 2-3" in text

    def critical(mean: float, smallest: float) -> str:
        weights = [
            {
                "tensor": "model.layers.0.mlp.down_proj.weight",
                "layer": "0.0",
                "shape": "64x256",
                "relative_change": str(smallest),
            },
            {
                "tensor": "model.layers.0.input_layernorm.weight",
                "layer": "0.0",
                "shape": "64",
                "relative_change": "0.01",
            },
            {"tensor": "model.embed_tokens.weight", "layer": "", "shape": "344x64", "relative_change": "1.07"},
        ]
        src = readme.Sources(
            Path("/nonexistent"),
            data={
                paths.CRITICAL_METRICS: {
                    "decoder_alignment": {"mean": mean, "max": 0.9, "chance": 0.0625},
                    "encoder_alignment": {"mean": 0.2},
                },
                readme.WEIGHT_DIFF_CSV: weights,
            },
        )
        return "\n".join(readme.critical_findings(src))

    assert "6.4x the 0.0625 of a random direction" in critical(0.4, 3.0) and "is everywhere" in critical(0.4, 3.0)
    low = critical(0.05, 0.2)
    assert "not above the 0.0625 of a random direction" in low and "is everywhere" not in low
