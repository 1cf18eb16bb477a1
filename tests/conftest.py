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


@pytest.fixture(scope="session")
def pipeline_project(tmp_path_factory) -> Path:
    """The tiny project with every stage through `compare` and `evaluate` built and committed (shared by
    the end-to-end modules that only read the pipeline's outputs)."""
    import sys

    from helpers import built_project, run

    project = built_project(tmp_path_factory.mktemp("pipeline-project"), "compare")
    run([sys.executable, "-m", "dvc", "repro", "evaluate"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "evaluate"], project)
    return project
