"""Segment `<think>` traces into steps and record each step's transcoder-feature profile per layer.

A step is one line of the trace for the organism (`tens: 7+4=11, write 1, carry 1.`) and one sentence
for real R1 traces (`segment="sentence"`, segmented by pysbd, see `behaviours.sentence_spans`). A step's profile at a layer is the mean activation of every
feature over the step's tokens (mean, so long and short steps are comparable). All layers are
concatenated: profiles are (steps x layers*features), float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from r1interp import chat


@dataclass(frozen=True)
class Step:
    problem_id: str
    index: int  # position of the step inside its trace
    text: str
    token_start: int
    token_end: int  # exclusive


def split_steps(body: str, segment: str) -> list[tuple[int, int]]:
    """Character spans of the steps of a think body: lines, or sentences."""
    if segment == "sentence":
        from r1interp.reasoning.behaviours import sentence_spans

        return sentence_spans(body)
    spans, pos = [], 0
    for line in body.split("\n"):
        start, end = pos, pos + len(line)
        pos = end + 1
        if line.strip():
            spans.append((start, end))
    return spans


def step_spans(tokenizer, problem_id: str, text: str, segment: str = "line") -> tuple[list[int], list[Step]]:
    """Token ids of `text` and its think steps (token ranges from the tokenizer's character offsets)."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    span = chat.think_span(text)
    if span is None:
        return enc["input_ids"], []
    body_start = span[0] + len(chat.THINK_OPEN)
    body_end = span[1] - len(chat.THINK_CLOSE) if text[: span[1]].endswith(chat.THINK_CLOSE) else span[1]
    body = text[body_start:body_end]
    offsets = enc["offset_mapping"]
    steps = []
    for a, b in split_steps(body, segment):
        a, b = a + body_start, b + body_start
        tokens = [
            t for t, (s, e) in enumerate(offsets) if a <= s < b and e > s
        ]  # a token ending past the step (".\n") belongs to it
        if tokens:
            steps.append(Step(problem_id, len(steps), text[a:b].strip(), tokens[0], tokens[-1] + 1))
    return enc["input_ids"], steps


@torch.no_grad()
def step_profiles(
    model,
    coders: dict[int, object],
    tokenizer,
    problems: list[tuple[str, str]],
    segment: str = "line",
    device: str = "cpu",
    progress=None,
) -> tuple[list[Step], np.ndarray]:
    """problems: (id, full chat text). Returns the steps and their profiles (steps x layers*features)."""
    from r1interp.transcoders.splice import dense_features, mlp_modules

    layers = sorted(coders)
    widths = [coders[layer].num_latents for layer in layers]
    captured: dict[int, torch.Tensor] = {}
    mlps = mlp_modules(model)
    hooks = [
        mlps[layer].register_forward_pre_hook(lambda _m, args, layer=layer: captured.__setitem__(layer, args[0]))
        for layer in layers
    ]
    steps: list[Step] = []
    rows: list[np.ndarray] = []
    try:
        for pid, text in progress(problems) if progress else problems:
            ids, found = step_spans(tokenizer, pid, text, segment)
            if not found:
                continue
            model(torch.tensor([ids], device=device))
            full = torch.cat([dense_features(coders[layer], captured[layer][0]).float() for layer in layers], dim=-1)
            for step in found:
                rows.append(full[step.token_start : step.token_end].mean(0).cpu().numpy().astype(np.float32))
            steps += found
    finally:
        for h in hooks:
            h.remove()
    width = sum(widths)
    return steps, (np.stack(rows) if rows else np.zeros((0, width), np.float32))


def feature_index(coders: dict[int, object]) -> list[tuple[int, int]]:
    """(layer, feature) of every profile column."""
    return [(layer, f) for layer in sorted(coders) for f in range(coders[layer].num_latents)]
