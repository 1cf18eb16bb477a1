"""r1interp/paths.py and dvc.yaml name the same artifacts, and no other module spells an artifact path."""

from __future__ import annotations

import ast
import inspect
import itertools
import re
from pathlib import Path, PurePosixPath

import pytest
import yaml

from r1interp import paths

ROOT = Path(__file__).resolve().parents[1]
PREFIXES = ("data/", "models/", "reports/")
# Literals the scan tolerates, with why: (file, literal).
ALLOWED_LITERALS = {
    # the default of motifs.reference_graphs: a params value (as in params.yaml), in a file this change does not own
    ("r1interp/config.py", "data/reference/neuronpedia/opposite_of_small.json"),
}


# ---------------------------------------------------------------------------- dvc.yaml, expanded


def _lookup(ctx: dict, dotted: str):
    value = ctx
    for part in dotted.split("."):
        value = value[part]
    return value


def _interpolate(value, ctx: dict):
    """`${a.b}` in strings (recursively in lists and dicts); a string that is one `${...}` keeps its type."""
    if isinstance(value, str):
        whole = re.fullmatch(r"\$\{([^}]+)\}", value.strip())
        if whole:
            return _lookup(ctx, whole.group(1).strip())
        return re.sub(r"\$\{([^}]+)\}", lambda m: str(_lookup(ctx, m.group(1).strip())), value)
    if isinstance(value, list):
        return [_interpolate(v, ctx) for v in value]
    if isinstance(value, dict):
        return {_interpolate(k, ctx): _interpolate(v, ctx) for k, v in value.items()}
    return value


def _expanded_stages(dvc: dict, params: dict) -> dict[str, dict]:
    """name (`stage`, `stage@key`) -> its definition with foreach/matrix and `${...}` resolved."""
    stages = {}
    for name, stage in dvc["stages"].items():
        if "foreach" in stage:
            items = _interpolate(stage["foreach"], params)
            pairs = items.items() if isinstance(items, dict) else ((item, item) for item in items)
            for key, item in pairs:
                stages[f"{name}@{key}"] = _interpolate(stage["do"], {**params, "key": key, "item": item})
        elif "matrix" in stage:
            matrix = {k: _interpolate(v, params) for k, v in stage["matrix"].items()}
            body = {k: v for k, v in stage.items() if k != "matrix"}
            for combo in itertools.product(*matrix.values()):
                item = dict(zip(matrix, combo, strict=True))
                stages[f"{name}@{'-'.join(map(str, combo))}"] = _interpolate(body, {**params, "item": item})
        else:
            stages[name] = _interpolate(stage, params)
    return stages


def _entries(section) -> list[str]:
    """Paths of an outs/metrics/plots/deps list (entries are strings or one-key dicts of options)."""
    out = []
    for entry in section or []:
        out += list(entry) if isinstance(entry, dict) else [entry]
    return [str(p) for p in out]


def _artifact(path: str) -> bool:
    return path.startswith(PREFIXES)


@pytest.fixture(scope="module")
def declared() -> dict[str, dict[str, set[str]]]:
    """kind ('outputs' | 'deps') -> path -> where dvc.yaml declares it."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    found: dict[str, dict[str, set[str]]] = {"outputs": {}, "deps": {}}

    def add(kind: str, path: str, where: str) -> None:
        path = str(PurePosixPath(path))  # no trailing slash
        if _artifact(path):
            found[kind].setdefault(path, set()).add(where)

    for name, stage in _expanded_stages(dvc, params).items():
        for section in ("outs", "metrics", "plots"):
            for path in _entries(stage.get(section)):
                add("outputs", path, f"stage {name} {section}")
        for path in _entries(stage.get("deps")):
            add("deps", path, f"stage {name} deps")
    for plot in dvc.get("plots") or []:
        for plot_name, spec in plot.items():
            y = (spec or {}).get("y")
            for path in y if isinstance(y, dict) else {}:
                add("outputs", path, f"top-level plot {plot_name}")
    for art_name, art in (dvc.get("artifacts") or {}).items():
        add("outputs", art["path"], f"artifact {art_name}")
    assert found["outputs"], "dvc.yaml: no outputs found under data/, models/ or reports/ (did the format change?)"
    return found


# ---------------------------------------------------------------------------- r1interp.paths, enumerated


def _argument_values() -> dict[str, list[str]]:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    from r1interp.models import ROLES

    roles = list(dict.fromkeys([*params["train"]["models"], *ROLES]))
    return {
        "role": roles,
        "model": roles,
        "split": ["train", "heldout"],
        "group": list(params["train"]["layer_groups"]),
        "profile": [params["model"]["profile"]],
        "repo_id": ["owner/name"],
    }


def defined_paths() -> dict[str, str]:
    """posix path -> the constant or call of r1interp.paths that gives it."""
    values = _argument_values()
    out: dict[str, str] = {}
    for name, obj in vars(paths).items():
        if name.startswith("_"):
            continue
        if isinstance(obj, Path):
            out.setdefault(obj.as_posix(), name)
        elif inspect.isfunction(obj) and obj.__module__ == paths.__name__:
            params = list(inspect.signature(obj).parameters)
            unknown = [p for p in params if p not in values]
            assert not unknown, f"tests/test_paths.py: give values for parameter(s) {unknown} of paths.{name}"
            for combo in itertools.product(*(values[p] for p in params)):
                out.setdefault(obj(*combo).as_posix(), f"{name}({', '.join(map(repr, combo))})")
    return out


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + "/")


def test_paths_are_repo_relative_posix():
    bad = {name: p for p, name in defined_paths().items() if Path(p).is_absolute() or ".." in Path(p).parts}
    assert not bad, f"r1interp.paths: paths must be relative to the project root: {bad}"
    assert all(isinstance(p, Path) for p in paths.NOT_IN_PIPELINE)


def test_every_dvc_output_is_defined_in_paths(declared):
    defined = defined_paths()
    undefined = sorted(
        f"{p} ({', '.join(sorted(where))})" for p, where in declared["outputs"].items() if p not in defined
    )
    assert not undefined, (
        "dvc.yaml declares these outputs but r1interp/paths.py defines no such path (add a constant "
        "or a function there):\n  " + "\n  ".join(undefined)
    )


def test_every_dvc_artifact_dep_is_defined_in_paths(declared):
    """Deps that no stage outputs (inputs kept in git: prompts, reference graphs) are artifact paths too."""
    defined = defined_paths()
    undefined = sorted(f"{p} ({', '.join(sorted(where))})" for p, where in declared["deps"].items() if p not in defined)
    assert not undefined, "dvc.yaml reads these paths but r1interp/paths.py does not define them:\n  " + "\n  ".join(
        undefined
    )


def test_every_path_in_paths_is_declared_in_dvc_yaml(declared):
    """Each path names something dvc.yaml declares: the path itself, a file inside a declared folder, or a folder
    that holds declared paths (METRICS_DIR). Paths written outside the pipeline are listed in NOT_IN_PIPELINE."""
    known = set(declared["outputs"]) | set(declared["deps"])
    outside = [p.as_posix() for p in paths.NOT_IN_PIPELINE]
    stray = []
    for path, name in sorted(defined_paths().items()):
        if any(_within(path, o) for o in outside):
            continue
        if not any(_within(path, k) or _within(k, path) for k in known):
            stray.append(f"{name} = {path}")
    assert not stray, (
        "r1interp/paths.py defines paths that dvc.yaml declares nowhere (not as outs/metrics/plots/deps, "
        "nor inside or around one); declare them in dvc.yaml, or list them in paths.NOT_IN_PIPELINE:\n  "
        + "\n  ".join(stray)
    )


def test_paths_outside_the_pipeline_are_not_in_dvc_yaml(declared):
    known = set(declared["outputs"]) | set(declared["deps"])
    clash = sorted(
        f"{o.as_posix()} vs dvc.yaml's {k}"
        for o in paths.NOT_IN_PIPELINE
        for k in known
        if _within(k, o.as_posix()) or _within(o.as_posix(), k)
    )
    assert not clash, (
        "paths.NOT_IN_PIPELINE names paths that dvc.yaml declares (move them out of it):\n  " + "\n  ".join(clash)
    )


# ---------------------------------------------------------------------------- no path literals elsewhere


def _docstring_nodes(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                ids.add(id(first.value))
    return ids


def path_literals(file: Path) -> list[tuple[int, str]]:
    """(line, text) of every string constant (f-string parts included, docstrings not) that starts with
    data/, models/ or reports/."""
    tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
    docstrings = _docstring_nodes(tree)
    return sorted(
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and node.value.startswith(PREFIXES)
    )


def test_no_artifact_path_literals_outside_paths_module():
    files = sorted([*(ROOT / "r1interp").rglob("*.py"), *(ROOT / "stages").rglob("*.py")])
    assert len(files) > 20
    offenders = []
    for file in files:
        rel = file.relative_to(ROOT).as_posix()
        if rel == "r1interp/paths.py":
            continue
        offenders += [
            f"{rel}:{line}: {text!r}" for line, text in path_literals(file) if (rel, text) not in ALLOWED_LITERALS
        ]
    assert not offenders, (
        "artifact paths spelled as string literals; use the constants of r1interp/paths.py "
        "(`root / paths.X`, `paths.X.as_posix()` where a string is needed):\n  " + "\n  ".join(offenders)
    )


def test_literal_scan_sees_fstrings_and_skips_docstrings(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""data/in/a/docstring is fine."""\n\n'
        'def f(model):\n    """reports/x in a docstring."""\n'
        '    a = "models/hub"  # reports/in a comment\n'
        '    return f"data/activations/{model}", "not data/mid-string"\n'
    )
    assert path_literals(sample) == [(5, "models/hub"), (6, "data/activations/")]
