"""The stage contract (r1interp/contract.py): dvc.yaml declares, for every stage, exactly the code its script
runs and the params it reads, so `dvc status` goes stale exactly when it should.

Re-sync dvc.yaml after code edits with `python -m r1interp.contract --write`.
"""

from __future__ import annotations

import functools
import re
import shutil
import textwrap
from pathlib import Path

import pytest

from r1interp import contract
from r1interp.contract import (
    RUNTIME_KNOBS,
    WHOLE_FILE_STAGES,
    Schema,
    check_deps,
    check_params,
    import_closure,
    load_stages,
    missing_deps,
    overdeclared_deps,
    params_read,
    undeclared_params,
)

ROOT = Path(__file__).resolve().parents[1]
DVC_YAML = ROOT / "dvc.yaml"
FIX = "re-sync with `python -m r1interp.contract --write` (or add them by hand)"


@functools.cache
def _deps():
    return check_deps(DVC_YAML)


@functools.cache
def _params():
    return check_params(DVC_YAML)


def _problems(reports, attr: str) -> list[str]:
    return [f"{stage}: {', '.join(getattr(r, attr))}" for stage, r in reports.items() if getattr(r, attr)]


# ---------------------------------------------------------------------------- dvc.yaml holds the contract


def test_every_python_stage_is_analysed():
    stages = load_stages(DVC_YAML)
    assert stages, "no stages in dvc.yaml"
    no_script = [s.name for s in stages if s.script is None]
    assert not no_script, f"stages whose cmd runs no `python <script>.py` (nothing to check): {no_script}"
    assert set(_deps()) == {s.name for s in stages}


def test_deps_cover_import_closure():
    problems = _problems(_deps(), "missing")
    assert not problems, (
        "stages run code that their deps do not list (editing it would leave `dvc status` up to date over stale "
        f"results); {FIX}:\n  " + "\n  ".join(problems)
    )


def test_no_overdeclared_code_deps():
    problems = []
    for stage, report in _deps().items():
        for dep in report.overdeclared:
            target = ROOT / dep
            if target.is_dir():
                unused = sorted(
                    p.relative_to(ROOT).as_posix()
                    for p in contract._repo_files(target)
                    if not any(contract._covers(n, p.relative_to(ROOT).as_posix()) for n in report.needed)
                )
                problems.append(f"{stage}: {dep} (holds files the stage does not import: {', '.join(unused)})")
            else:
                problems.append(f"{stage}: {dep} (not imported by its script)")
    assert not problems, f"code deps that the stage does not run (they rerun it for nothing); {FIX}:\n  " + "\n  ".join(
        problems
    )


def test_params_declared_are_the_params_read_minus_knobs():
    problems = [f"{stage}: undeclared {', '.join(r.undeclared)}" for stage, r in _params().items() if r.undeclared]
    problems += [
        f"{stage}: declared but not read {', '.join(r.overdeclared)}"
        for stage, r in _params().items()
        if r.overdeclared
    ]
    assert not problems, (
        "dvc.yaml params differ, leaf by leaf, from what each stage reads (minus "
        f"contract.RUNTIME_KNOBS); {FIX}:\n  " + "\n  ".join(problems)
    )


def test_no_runtime_knob_is_declared():
    problems = _problems(_params(), "knobs_declared")
    assert not problems, (
        "runtime knobs cannot change results and must not rerun stages (contract.RUNTIME_KNOBS):\n  "
        + "\n  ".join(problems)
    )


def test_whole_file_params_only_where_the_whole_file_is_shown():
    for stage in load_stages(DVC_YAML):
        if stage.template in WHOLE_FILE_STAGES:
            assert stage.params is None, f"{stage.name}: shows the whole params file, so declares `params.yaml:`"
        else:
            assert stage.params is not None, f"{stage.name}: declares the whole params.yaml; list the leaves it reads"


def test_runtime_knobs_are_leaves_with_reasons():
    schema = Schema.from_config(ROOT / "r1interp" / "config.py")
    leaves = schema.leaves()
    assert set(RUNTIME_KNOBS) <= leaves, f"not leaves of params.yaml: {sorted(set(RUNTIME_KNOBS) - leaves)}"
    assert all(reason.strip() for reason in RUNTIME_KNOBS.values())
    # measured and documented as changing results: never knobs
    for tracked in ("model.threads", "train.log_every", "train.distributed.nproc"):
        assert tracked not in RUNTIME_KNOBS


def test_params_yaml_keys_are_the_schema():
    """The leaf expansion is only right if the schema parsed from config.py is the params file's."""
    import yaml

    def leaves(data, prefix=()):
        out = set()
        for key, value in data.items():
            path = prefix + (key,)
            schema_node = schema.node(path)
            if isinstance(value, dict) and schema_node not in (None, False):
                out |= leaves(value, path)
            else:
                out.add(".".join(path))
        return out

    schema = Schema.from_config(ROOT / "r1interp" / "config.py")
    assert leaves(yaml.safe_load((ROOT / "params.yaml").read_text())) == schema.leaves()


# ---------------------------------------------------------------------------- the analysis itself


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_import_closure_on_a_synthetic_package(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg import base\n",
            "pkg/base.py": "X = 1\n",
            "pkg/a/__init__.py": "",
            "pkg/a/b.py": "from . import c\nfrom ..util import helper\nfrom .deep import leaf\n",
            "pkg/a/c.py": "",
            "pkg/a/deep/__init__.py": "",
            "pkg/a/deep/leaf.py": "",
            "pkg/util.py": "def helper():\n    from pkg import lazy2\n",
            "pkg/lazy.py": "",
            "pkg/lazy2.py": "",
            "pkg/sub/__init__.py": "from importlib import resources\nDATA = resources.files('pkg.sub') / 'assets'\n",
            "pkg/sub/assets/style.css": "",
            "pkg/sub/other.py": "",
            "pkg/only_typing.py": "",
            "pkg/unused.py": "",
            "stages/s.py": """\
            from typing import TYPE_CHECKING
            import json
            import pkg.a.b
            from pkg import sub
            if TYPE_CHECKING:
                from pkg import only_typing

            def main():
                from pkg.lazy import something  # lazy: still a dependency
            """,
        },
    )
    got = import_closure(tmp_path / "stages/s.py", tmp_path / "pkg")
    assert got == {
        "pkg/__init__.py",
        "pkg/base.py",  # parent package runs first, and what it imports
        "pkg/a/__init__.py",
        "pkg/a/b.py",
        "pkg/a/c.py",  # relative `from . import c`
        "pkg/a/deep/__init__.py",
        "pkg/a/deep/leaf.py",  # `from .deep import leaf`: a submodule
        "pkg/util.py",
        "pkg/lazy2.py",  # `from ..util import helper`, and its lazy import
        "pkg/sub/__init__.py",  # `from pkg import sub`: a subpackage
        "pkg/sub/assets",  # package data read through resources.files(...) / "assets"
        "pkg/lazy.py",  # an import inside a function
    }


def test_import_closure_sibling_module_of_the_script(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/m.py": "",
            "stages/_common.py": "from pkg import m\n",
            "stages/s.py": "import _common\n",
        },
    )
    assert import_closure(tmp_path / "stages/s.py", tmp_path / "pkg") == {
        "stages/_common.py",
        "pkg/__init__.py",
        "pkg/m.py",
    }


SYNTHETIC_CONFIG = """\
    from __future__ import annotations
    from dataclasses import dataclass, field

    @dataclass(frozen=True)
    class Inner:
        a: int = 1
        b: int = 2

    @dataclass(frozen=True)
    class Train:
        lr: float = 0.1
        steps: int = 1
        log_every: int = 1
        inner: Inner = field(default_factory=Inner)
        tasks: dict[str, Inner] = field(default_factory=dict)
        models: list[str] = field(default_factory=list)

    @dataclass(frozen=True)
    class Model:
        threads: int = 1
        device: str = "cpu"

    @dataclass(frozen=True)
    class Other:
        x: int = 0
        y: int = 0

    @dataclass(frozen=True)
    class Params:
        seed: int = 0
        model: Model = field(default_factory=Model)
        train: Train = field(default_factory=Train)
        other: Other = field(default_factory=Other)
        unread: Other = field(default_factory=Other)
    """

SYNTHETIC_STAGE = """\
    from pkg.config import load_params

    def run(main, add_args=None):
        params = load_params("params.yaml")
        set_threads(params.model.threads)
        main(params, None)
    """

SYNTHETIC_LIB = """\
    def reads_lr(tp):
        return tp.lr * 2

    def consume(section):
        return sorted(vars(section))

    def forward(tp):
        return reads_lr(tp)
    """


def test_params_read_on_a_synthetic_script(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/config.py": SYNTHETIC_CONFIG,
            "pkg/stage.py": SYNTHETIC_STAGE,
            "pkg/lib.py": SYNTHETIC_LIB,
            "stages/s.py": """\
            import functools
            from pkg import stage
            from pkg.lib import consume, forward

            def helper(cfg):
                return cfg.inner.a             # a local helper: only what it reads

            def by_keyword(*, cfg):
                return cfg.steps

            def main(params, args):
                tp = params.train              # a local alias
                helper(tp)
                forward(tp)                    # library code, followed: train.lr
                consume(params.other)          # handed to code that uses it whole: all of `other`
                for name, task in tp.tasks.items():   # a dict of sections is one leaf
                    print(name, task)
                run = functools.partial(by_keyword, cfg=tp)
                run()
                def nested():
                    return params.seed         # read in a nested function
                return nested() + len(tp.models)

            if __name__ == "__main__":
                stage.run(main)
            """,
        },
    )
    script, root = tmp_path / "stages/s.py", tmp_path / "pkg"
    assert params_read(script, root) == {
        "model.threads",  # read by stage.run for every stage
        "train.inner.a",
        "train.lr",
        "train.steps",
        "train.tasks",
        "train.models",
        "other.x",
        "other.y",
        "seed",
    }
    # without following library code, a section handed to it counts whole
    whole = params_read(script, root, descend=False)
    assert {"train.log_every", "train.inner.b"} <= whole
    assert "unread.x" not in whole


def test_params_read_section_used_whole(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/config.py": SYNTHETIC_CONFIG,
            "stages/s.py": """\
            import dataclasses

            def main(params, args):
                cfg = params.train.inner
                print(dataclasses.asdict(cfg))   # the whole section: all its leaves
                return params.model.device
            """,
        },
    )
    assert params_read(tmp_path / "stages/s.py", tmp_path / "pkg") == {"train.inner.a", "train.inner.b", "model.device"}


# ---------------------------------------------------------------------------- mutations of a copy of dvc.yaml


def _copy_repo(tmp_path: Path) -> Path:
    for name in ("r1interp", "stages", "params.yaml"):
        (tmp_path / name).symlink_to(ROOT / name)
    shutil.copy(DVC_YAML, tmp_path / "dvc.yaml")
    return tmp_path / "dvc.yaml"


def _stage_lines(lines: list[str], stage: str) -> range:
    start = next(i for i, line in enumerate(lines) if line.rstrip() == f"  {stage}:")
    end = next(
        (i for i in range(start + 1, len(lines)) if re.match(r"^  \S", lines[i]) or re.match(r"^\S", lines[i])),
        len(lines),
    )
    return range(start, end)


def test_removing_a_dep_line_is_reported_exactly(tmp_path):
    copy = _copy_repo(tmp_path)
    before = missing_deps(copy)
    stage = "activations"
    needed = set(_deps()[stage].needed)
    lines = copy.read_text().splitlines()
    block = _stage_lines(lines, stage)
    victim = next(
        i
        for i in block
        if (p := contract._item_path(lines[i])) and p.endswith(".py") and p in needed and p.startswith("r1interp/")
    )
    module = contract._item_path(lines[victim])
    del lines[victim]
    copy.write_text("\n".join(lines) + "\n")
    after = missing_deps(copy)
    assert module not in before[stage]
    assert set(after[stage]) - set(before[stage]) == {module}, "exactly the removed module is reported"
    assert {k: v for k, v in after.items() if k != stage} == {k: v for k, v in before.items() if k != stage}


def test_removing_a_param_and_adding_a_directory_are_reported_and_write_fixes_them(tmp_path):
    copy = _copy_repo(tmp_path)
    contract.write(copy)  # in sync first, whatever the checkout's state
    lines = copy.read_text().splitlines()
    block = _stage_lines(lines, "compare")
    param = next(i for i in block if lines[i].strip() == "- compare.bootstrap")
    del lines[param]
    deps_at = next(i for i in block if lines[i].strip() == "deps:")
    lines.insert(deps_at + 1, "      - r1interp/motifs")  # the whole package: more than compare imports
    copy.write_text("\n".join(lines) + "\n")
    assert "compare.bootstrap" in undeclared_params(copy)["compare"]
    assert "r1interp/motifs" in overdeclared_deps(copy)["compare"]
    contract.write(copy)
    assert undeclared_params(copy)["compare"] == [] and overdeclared_deps(copy)["compare"] == []
    assert missing_deps(copy)["compare"] == []


def test_write_adds_a_missing_params_block(tmp_path):
    copy = _copy_repo(tmp_path)
    contract.write(copy)
    lines = copy.read_text().splitlines()
    block = _stage_lines(lines, "critical")
    at = next(i for i in block if lines[i].strip() == "params:")
    stop = next(i for i in range(at + 1, block.stop) if not lines[i].strip().startswith("- "))
    del lines[at:stop]
    copy.write_text("\n".join(lines) + "\n")
    assert "critical.rank" in undeclared_params(copy)["critical"]
    contract.write(copy)
    assert undeclared_params(copy)["critical"] == [] and contract.overdeclared_params(copy)["critical"] == []
    load_stages(copy)  # still a mapping DVC can read


def test_write_keeps_an_in_sync_dvc_yaml_as_it_is(tmp_path):
    copy = _copy_repo(tmp_path)
    if any(_problems(_deps(), a) for a in ("missing", "overdeclared")) or any(
        _problems(_params(), a) for a in ("undeclared", "overdeclared", "knobs_declared")
    ):
        pytest.skip("dvc.yaml is out of sync (the tests above say where)")
    assert contract.write(copy) == DVC_YAML.read_text()
