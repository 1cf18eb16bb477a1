"""Shared fixtures: a small trained tokenizer and the texts it was trained on."""

from __future__ import annotations

import os
import random
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


def shared_dir(tmp_path_factory) -> Path:
    """A directory of this test run that every pytest-xdist worker sees (their base temp dirs' parent), or,
    without xdist, the run's base temp dir."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def pipeline_project(tmp_path_factory) -> Path:
    """The tiny project with every stage through `compare` and `evaluate` built and committed, built once per
    test run: the first worker that needs it builds it under a file lock, the others wait and reuse it.

    Shared by every worker, so it is never changed: a test that runs DVC in it or writes a file works on its own
    copy (`helpers.copied_project(pipeline_project, ...)`, which takes the DVC cache along: nothing is rebuilt)."""
    import sys

    from filelock import FileLock
    from helpers import built_project, run

    root = shared_dir(tmp_path_factory)
    project, done, failed = root / "pipeline-project", root / "pipeline-project.done", root / "pipeline-project.failed"
    with FileLock(root / "pipeline-project.lock"):
        if failed.exists():
            pytest.fail(f"the shared tiny pipeline failed to build (in another worker):\n{failed.read_text()}")
        if not done.exists():
            try:
                project.mkdir()
                built_project(project, "compare")
                run([sys.executable, "-m", "dvc", "repro", "evaluate"], project)
                run(["git", "add", "-A"], project)
                run(["git", "commit", "-qm", "evaluate"], project)
            except BaseException as e:
                failed.write_text(f"{type(e).__name__}: {e}")
                raise
            done.touch()
    return project
