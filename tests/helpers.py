"""Helpers for end-to-end tests: a copy of the project in a temp git repo, and running commands in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "data" / "params-tiny.yaml"  # an override: only the keys that differ from the defaults


def tiny_params_dict() -> dict:
    """The full tiny params (plain data): the defaults of r1interp/config.py merged with params-tiny.yaml."""
    from r1interp.config import merge_override

    return merge_override(TINY)


def write_tiny_params(path: Path) -> Path:
    """Write the full tiny params file (every key) to `path`, as `r1interp params write --override` does."""
    from r1interp.config import write_params

    return write_params(tiny_params_dict(), path, override="tests/data/params-tiny.yaml")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # Stage commands say `python ...`: make that the interpreter running the tests.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env.setdefault("GIT_AUTHOR_NAME", "test")
    env.setdefault("GIT_AUTHOR_EMAIL", "test@example.invalid")
    env.setdefault("GIT_COMMITTER_NAME", "test")
    env.setdefault("GIT_COMMITTER_EMAIL", "test@example.invalid")
    return env


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def make_project(dest: Path) -> Path:
    """Copy the project's files (tracked and new, not ignored) into a fresh git repo with tiny params."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    for rel in filter(None, listed):
        src = REPO / rel
        generated = rel.startswith(("data/", "models/", "reports/")) and not rel.startswith(
            ("data/prompts/", "data/reference/")
        )
        if src.is_file() and not generated and rel != "dvc.lock":
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    write_tiny_params(dest / "params.yaml")
    run(["git", "init", "-q"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-qm", "tiny project"], dest)
    return dest


def built_project(dest: Path, target: str) -> Path:
    """A tiny project with `dvc repro TARGET` done and committed (module fixtures of the e2e tests)."""
    make_project(dest)
    run([sys.executable, "-m", "dvc", "repro", target], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-qm", "built"], dest)
    return dest


def copied_project(source: Path, dest: Path) -> Path:
    """An independent copy of a built project (its git repo and DVC cache come along, so nothing is rebuilt),
    with any uncommitted state committed: queued DVC experiments only see committed files."""
    shutil.copytree(source, dest, symlinks=True)
    run(["git", "add", "-A"], dest)
    if run(["git", "status", "--porcelain"], dest).stdout.strip():
        run(["git", "commit", "-qm", "copy"], dest)
    return dest
