"""Greedy-decoded accuracy of an organism on held-out problems."""

from __future__ import annotations

import re

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from r1interp import chat

ANSWER_RE = re.compile(r"The answer is (-?\d+)\.")


def parse_answer(completion: str) -> int | None:
    """The number after the *last* 'The answer is', or None when the model gave none."""
    found = ANSWER_RE.findall(completion)
    return int(found[-1]) if found else None


@torch.no_grad()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: list[str],
    *,
    max_new_tokens: int,
    batch_size: int,
    desc: str = "generate",
) -> list[str]:
    """Greedy completions (special tokens kept, so `<think>` spans stay visible)."""
    tokenizer.padding_side = "left"
    model.eval()
    out: list[str] = []
    for start in tqdm(range(0, len(questions), batch_size), desc=desc, unit="batch", leave=False):
        chunk = [chat.prompt_text(q) for q in questions[start : start + batch_size]]
        enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False, return_token_type_ids=False)
        gen = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        new = gen[:, enc["input_ids"].shape[1] :]
        out.extend(tokenizer.batch_decode(new, skip_special_tokens=False))
    return [o.replace(chat.PAD, "") for o in out]


def accuracy_by_task(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    problems: list[tuple[str, str, int]],
    *,
    max_new_tokens: int,
    batch_size: int,
    desc: str,
) -> dict[str, float]:
    """problems: (task, question, true answer). Returns accuracy per task and overall."""
    completions = generate(
        model, tokenizer, [q for _, q, _ in problems], max_new_tokens=max_new_tokens, batch_size=batch_size, desc=desc
    )
    per_task: dict[str, list[bool]] = {}
    for (task, _, truth), completion in zip(problems, completions, strict=True):
        per_task.setdefault(task, []).append(parse_answer(completion) == truth)
    result = {task: sum(v) / len(v) for task, v in sorted(per_task.items())}
    result["overall"] = sum(sum(v) for v in per_task.values()) / max(1, len(problems))
    return result
