"""The reasoning corpus: synthetic R1-style arithmetic (organism) or OpenR1-Math (real profile).

Both produce the same table (see `schemas.CorpusSchema`): one row per problem with
its prompt, `<think>` trace, final answer, the full chat-formatted text and a split.
"""

from __future__ import annotations

import random

import pandas as pd
from tqdm.auto import tqdm

from r1interp import chat
from r1interp.config import CorpusParams, HubCorpusParams
from r1interp.errors import ArtifactError, R1InterpError
from r1interp.organism import tasks


def full_text(prompt: str, think: str, answer: str) -> str:
    return chat.prompt_text(prompt) + chat.reasoning_completion(think, answer)


def _problem_space(task: str, min_digits: int, max_digits: int) -> int:
    numbers = 10**max_digits - (10 ** (min_digits - 1) if min_digits > 1 else 0)
    return numbers * numbers if task == "add" else numbers * 8


def _unique_problems(task: str, n: int, rng: random.Random, min_digits: int, max_digits: int) -> list[tasks.Problem]:
    seen: set[tuple[int, int]] = set()
    out: list[tasks.Problem] = []
    # Rejection sampling stalls when n approaches the space size, so stop after a bounded number of tries.
    tries = 0
    with tqdm(total=n, desc=f"corpus {task}", unit="problem", leave=False, mininterval=1.0) as bar:
        while len(out) < n and tries < 20 * n:
            tries += 1
            p = tasks.sample_problem(task, rng, min_digits, max_digits)
            if (p.a, p.b) not in seen:
                seen.add((p.a, p.b))
                out.append(p)
                bar.update()
    return out


def synthetic_corpus(params: CorpusParams) -> pd.DataFrame:
    """Seeded arithmetic problems with held-out problems disjoint from training ones."""
    rng = random.Random(params.seed)
    rows = []
    for task, tp in sorted(params.tasks.items()):
        space = _problem_space(task, tp.min_digits, tp.max_digits)
        if params.heldout_per_task >= space:
            raise ArtifactError(
                f"corpus.tasks.{task}: only {space} distinct problems with {tp.min_digits}-{tp.max_digits} digits, "
                f"fewer than corpus.heldout_per_task ({params.heldout_per_task})"
            )
        problems = _unique_problems(
            task, params.heldout_per_task + params.train_per_task, rng, tp.min_digits, tp.max_digits
        )
        for i, p in enumerate(problems):
            rows.append(
                {
                    "id": f"{task}-{p.a}-{p.b}",
                    "task": task,
                    "prompt": p.prompt,
                    "think": p.think,
                    "answer": p.answer_text,
                    "gold": str(p.answer),
                    "text": full_text(p.prompt, p.think, p.answer_text),
                    "split": "heldout" if i < params.heldout_per_task else "train",
                    "step_types": "|".join(p.step_types),
                    "has_carry": p.has_carry,
                }
            )
    return pd.DataFrame(rows)


def _split_generation(generation: str) -> tuple[str, str] | None:
    """(think, answer) from an R1 generation `<think>…</think>answer`, or None if unfinished."""
    span = chat.think_span(generation)
    if span is None or chat.THINK_CLOSE not in generation:
        return None
    inner = generation[span[0] + len(chat.THINK_OPEN) : span[1] - len(chat.THINK_CLOSE)].strip()
    answer = generation[span[1] :].strip()
    return (inner, answer) if answer else None


def _pinned_commit(hub: HubCorpusParams) -> str:
    """The commit `hub.revision` names on the Hub, refused when that is a branch (unless allow_unpinned)."""
    from r1interp.registry.hub import api, check_pinned, hub_errors, token_from_env

    hf = api(token_from_env(required=False))
    revision = hub.revision or None
    with hub_errors(hub.dataset, revision, "check the network (and HF_ENDPOINT, HF_TOKEN), then run the stage again"):
        sha = hf.dataset_info(hub.dataset, revision=revision).sha
        check_pinned(
            hf,
            hub.dataset,
            revision,
            sha,
            repo_type="dataset",
            allow_unpinned=hub.allow_unpinned,
            how_to_allow="corpus.hub.allow_unpinned: true",
        )
    return sha


def openr1_corpus(hub: HubCorpusParams, heldout_fraction: float = 0.1, seed: int = 0) -> pd.DataFrame:
    """OpenR1-Math-220k rows -> corpus rows, keeping the first verified-correct complete generation."""
    import datasets  # heavy import, only on the real profile

    try:
        if hub.data_files:
            ds = datasets.load_dataset(
                "parquet" if hub.data_files.endswith(".parquet") else "json", data_files=hub.data_files, split="train"
            )
        else:
            ds = datasets.load_dataset(hub.dataset, hub.config_name, revision=_pinned_commit(hub), split=hub.split)
    except R1InterpError:
        raise
    except Exception as exc:
        raise ArtifactError(
            f"corpus.hub: could not load {hub.data_files or hub.dataset}: {type(exc).__name__}: {exc}"
        ) from None
    source = hub.data_files or hub.dataset
    missing = {"problem", "generations", "uuid"} - set(ds.column_names)
    if missing:
        raise ArtifactError(f"{source}: not the OpenR1-Math layout, missing columns {sorted(missing)}")
    if "answer" not in ds.column_names:
        raise ArtifactError(
            f"{source}: no gold `answer` column, so no held-out problem could be graded",
            hint="use an OpenR1-Math layout with its `answer` column",
        )
    rows = []
    for record in ds:
        if len(rows) >= hub.max_examples:
            break
        gold = str(record.get("answer") or "").strip()
        if not gold:
            continue  # ungradable: a problem without a gold answer is no benchmark item
        correct = record.get("correctness_math_verify") or [True] * len(record["generations"])
        for generation, ok in zip(record["generations"], correct, strict=False):
            parts = _split_generation(generation) if ok else None
            if parts:
                think, answer = parts
                rows.append(
                    {
                        "id": str(record["uuid"]),
                        "task": str(record.get("problem_type") or "math"),
                        "prompt": record["problem"],
                        "think": think,
                        "answer": answer,
                        "gold": gold,
                        "text": full_text(record["problem"], think, answer),
                        "step_types": "",
                        "has_carry": False,
                    }
                )
                break
    if not rows:
        raise ArtifactError(
            f"{source}: no row has a gold answer and a complete (`</think>`-closed), verified <think> generation"
        )
    rng = random.Random(seed)
    heldout = set(rng.sample(range(len(rows)), max(1, int(len(rows) * heldout_fraction))))
    for i, row in enumerate(rows):
        row["split"] = "heldout" if i in heldout else "train"
    return pd.DataFrame(rows)
