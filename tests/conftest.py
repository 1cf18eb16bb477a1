"""Shared fixtures: a small trained tokenizer and the texts it was trained on."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

# The user's environment must not steer the tests: they talk only to the local servers they start, with keys
# they make up, and rebuild with the pinned numerics. Settings that would make the clients offline, send them
# elsewhere or hand them a real key are dropped for the whole run (subprocesses inherit os.environ), before
# huggingface_hub or anthropic read them at import.
SCRUBBED_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_ENDPOINT", "HF_TOKEN",
                "HUGGING_FACE_HUB_TOKEN", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL",
                "R1INTERP_DEBUG", "R1INTERP_NUMERICS")  # fmt: skip
for _name in SCRUBBED_ENV:
    os.environ.pop(_name, None)
# A user setting that only costs time: with it, every stage process the suite starts (a few hundred) compiles the
# r1interp modules it imports from source again (~0.3 s each for a model stage here). The workers and the stages
# they start cache bytecode in __pycache__/ (ignored by git) instead.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
TINY_VOCAB = 320


def sample_texts(n: int = 200, seed: int = 0) -> list[str]:
    """Full chat-formatted R1-style texts of sampled add/mul problems."""
    from r1interp.corpus import full_text
    from r1interp.organism import tasks

    rng = random.Random(seed)
    texts = []
    for i in range(n):
        p = tasks.sample_problem("add" if i % 2 else "mul", rng, 1, 3)
        texts.append(full_text(p.prompt, p.think, p.answer_text))
    return texts


@pytest.fixture(scope="session")
def corpus_texts() -> list[str]:
    return sample_texts()


@pytest.fixture(scope="session")
def tokenizer(corpus_texts):
    from r1interp.organism.tokenizer import train_tokenizer

    return train_tokenizer(corpus_texts, TINY_VOCAB)


@pytest.fixture(scope="session")
def tiny_model_kwargs(tokenizer) -> dict:
    return dict(
        layers=2,
        hidden=32,
        intermediate=64,
        heads=4,
        kv_heads=2,
        max_positions=64,
        rope_theta=10000.0,
        tokenizer=tokenizer,
        seed=0,
    )


# Modules by their measured time (pytest --durations=0 on 2 cores, seconds summed per module), longest first: the
# order that keeps both workers busy to the end. pytest-xdist (--dist loadscope) hands whole modules to the two
# workers in collection order, two each to begin with, then one more whenever a worker finishes one; the modules not
# listed (a few seconds or less) fill in at the end. Worker 1 gets test_clusters_e2e, whose fixture builds the shared
# tiny pipeline and then the full project from it (every module that needs either waits for it); worker 2 meanwhile
# runs test_real_profile_e2e, which needs neither (about as long), and each then finds the shared pipeline built.
LONGEST_FIRST = ("test_clusters_e2e.py", "test_real_profile_e2e.py", "test_registry_e2e.py", "test_transcoders_e2e.py",
                 "test_site.py", "test_keep_outputs_e2e.py", "test_labels_e2e.py", "test_pipeline_e2e.py",
                 "test_readme_numbers.py", "test_numerics.py", "test_fetch_e2e.py", "test_tutorial.py",
                 "test_remote_e2e.py", "test_cli_ux.py", "test_quality.py", "test_reproducible_e2e.py",
                 "test_claude_client.py", "test_environment.py", "test_stage_contract.py", "test_circuits_e2e.py",
                 "test_lean_imports.py", "test_flaw_e2e.py", "test_motifs.py", "test_autointerp.py",
                 "test_hub_server.py")  # fmt: skip


def pytest_collection_modifyitems(config, items):
    """Longest modules first (a stable sort: the others, and the tests within a module, keep their order)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def shared_dir(tmp_path_factory, config: pytest.Config) -> Path:
    """A directory of this test run that every pytest-xdist worker sees (their base temp dirs' parent), or,
    without xdist workers, the run's base temp dir."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if hasattr(config, "workerinput") else base


def built_once(tmp_path_factory, config: pytest.Config, name: str, build) -> Path:
    """`shared_dir/name`, made by `build(path)` once per test run: the first worker that needs it builds it under a
    file lock, the others wait and reuse it (or fail at once with the builder's error)."""
    from filelock import FileLock

    root = shared_dir(tmp_path_factory, config)
    project, done, failed = root / name, root / f"{name}.done", root / f"{name}.failed"
    with FileLock(root / f"{name}.lock"):
        if failed.exists():
            pytest.fail(f"the shared {name} failed to build (in another worker):\n{failed.read_text()}")
        if not done.exists():
            try:
                build(project)
            except BaseException as e:
                failed.write_text(f"{type(e).__name__}: {e}")
                raise
            done.touch()
    return project


@pytest.fixture(scope="session")
def pipeline_project(tmp_path_factory, pytestconfig) -> Path:
    """The tiny project with every stage through `compare`, `evaluate` and `organism-eval` built and committed
    (what test_pipeline_e2e and the modules that copy it start from), built once per test run (`built_once`).

    Shared by every worker, so it is never changed: a test that runs DVC in it or writes a file works on its own
    copy (`helpers.copied_project(pipeline_project, ...)`, which takes the DVC cache along: nothing is rebuilt)."""
    import sys

    from helpers import built_project, run

    def build(project: Path) -> None:
        project.mkdir()
        built_project(project, "compare")
        run([sys.executable, "-m", "dvc", "repro", "evaluate", "organism-eval"], project)
        run(["git", "add", "-A"], project)
        run(["git", "commit", "-qm", "evaluate, organism-eval"], project)

    return built_once(tmp_path_factory, pytestconfig, "pipeline-project", build)


@pytest.fixture(scope="session")
def full_project(pipeline_project, tmp_path_factory, pytestconfig) -> Path:
    """The shared tiny pipeline with every stage built (`dvc repro`), committed: the build test_reproducible_e2e
    holds to the reference build, and where test_clusters_e2e and test_flaw_e2e find `clusters`, `interventions`,
    `flawed-organism` and `flaw` already built. Built once per test run (`built_once`), never changed: tests work
    on copies."""
    import sys

    from helpers import copied_project, run

    def build(project: Path) -> None:
        copied_project(pipeline_project, project)
        run([sys.executable, "-m", "dvc", "repro"], project)
        run(["git", "add", "-A"], project)
        run(["git", "commit", "-qm", "every stage"], project)

    return built_once(tmp_path_factory, pytestconfig, "full-project", build)
