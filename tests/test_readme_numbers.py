"""The README's results table is what reports/ give (r1interp/readme.py), never typed by hand."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from r1interp import paths, readme, timings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """README.md, reports/ (without the machine's timings) and dvc.lock in a temp root."""
    shutil.copy2(ROOT / readme.README, tmp_path / readme.README)
    shutil.copy2(ROOT / readme.DVC_LOCK, tmp_path / readme.DVC_LOCK)
    reports = paths.METRICS_DIR.parent
    shutil.copytree(ROOT / reports, tmp_path / reports, ignore=shutil.ignore_patterns(paths.TIMINGS_DIR.name))
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
    done = subprocess.run([sys.executable, "-m", "r1interp.readme", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_block_is_the_table_under_the_results_heading():
    text = (ROOT / readme.README).read_text()
    heading = text.index("### Results on the embedded default")
    assert heading < text.index(readme.BEGIN) < text.index(readme.END) < text.index("### Larger settings")
    assert text.count(readme.BEGIN) == 1 and text.count(readme.END) == 1
    labels = [row.label for row in readme.parse(readme._split(text)[1])]
    assert labels[:2] == ["reasoner organism, held-out greedy accuracy (100 problems per task)", "base organism (answers only)"]
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
    _edit_json(copy / paths.GRAPHS_METRICS, "faithfulness", "edges", value=1500)
    problem = readme.check(copy)
    assert problem is not None and "graph faithfulness (1,463 sampled edges" in problem and "1,500" in problem


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
    assert new[readme.ORGANISM_TRAINING] == "311 CPU-s for both (base 60, reasoner 250); 70 s + 160 s wall (whole stage)"
    repro = new[readme.REPRO]
    assert repro.startswith("**492 s (8.2 min)** in the stages that record a wall time: organism@reasoner 160 s, "
                            "interventions 152 s, train@all 80 s, organism@base 70 s, graphs 30 s")
    assert "fetch" in repro.split("none recorded by ")[1]
    assert readme.check(copy) is None

    timings.record("interventions", {"wall_seconds": 999.0}, copy)  # another machine: the check does not care
    assert readme.check(copy) is None


def test_a_readme_without_markers_is_a_clear_error(copy):
    path = copy / readme.README
    path.write_text(path.read_text().replace(readme.BEGIN, ""))
    with pytest.raises(readme.ArtifactError, match="has no results block"):
        readme.check(copy)


@pytest.mark.parametrize("value, fmt, expected", [
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
])
def test_number_formats(value, fmt, expected):
    assert fmt(value) == expected
