"""Which next-token predictions the graphs explain.

For every benchmark prompt the model first answers greedily (the graph must explain what the model
actually does, not a teacher-forced reference). On that trace:
- the *think* target is the token right after the first `think_anchor` inside `<think>...</think>`
  (for the organism: the first column result, e.g. "ones: 7+5=" -> "1");
- the *answer* target is the token right after the last `answer_anchor` after `</think>` (organism:
  "The answer is " -> the answer's first digit).
The graph's input is the trace up to (not including) the target token; with a window of N tokens
(`graphs.window_tokens`, for real traces thousands of tokens long: attribution memory grows with the input)
it is at most N tokens ending at the target, starting at the first sentence start inside the window and
re-opened with BOS; the window's start is recorded with the graph. A prompt whose trace has no anchor, or
no sentence start inside the window, gets no graph of that kind, with the reason recorded. For real R1
traces the anchors are cues such as "Wait" (the token after a backtracking cue) and "\\boxed{" (the first
token of the boxed answer). The answer is graded by comparing the text
after the last `answer_anchor` with the prompt's expected answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from r1interp import chat, paths
from r1interp.errors import ArtifactError
from r1interp.prompts import BenchmarkPrompt

KINDS = ("think", "answer")


@dataclass(frozen=True)
class GraphTarget:
    prompt_id: str
    category: str
    model: str
    kind: str  # think | answer
    input_ids: tuple[int, ...]  # the graph explains the prediction after the last of these
    target_token: int  # what the model actually produced there
    correct: bool | None  # the model's graded final answer (None: nothing to grade)
    completion: str
    window_start: int = 0  # index in the trace of the window's first token (0: the whole trace)

    @property
    def slug(self) -> str:
        return f"{self.model}-{self.prompt_id}-{self.kind}"


@dataclass
class Trace:
    """One greedy answer of one model to one prompt."""

    prompt: BenchmarkPrompt
    model: str
    prompt_ids: list[int]
    completion_ids: list[int]
    completion: str
    correct: bool | None
    skipped: dict[str, str] = field(default_factory=dict)  # kind -> why there is no graph


def prompt_prefix(prompt: BenchmarkPrompt, model: str) -> str:
    """The text before generation. The prefill (e.g. an empty think block) is the reasoner's: the base
    model was never trained on think tags, so it gets the bare chat prompt."""
    return chat.prompt_text(prompt.prompt) + (prompt.prefill if model == "reasoner" else "")


def grade(completion: str, expected: str | None, anchor: str) -> bool | None:
    """Does the text after the last `anchor` start with `expected` (and not continue it)?"""
    if expected is None:
        return None
    at = completion.rfind(anchor)
    if at < 0:
        return False
    rest = completion[at + len(anchor) :].lstrip()
    if not rest.startswith(expected):
        return False
    tail = rest[len(expected) :]
    return not (tail[:1].isalnum())


def check_prompts_fit(tokenizer, prompts: list[BenchmarkPrompt], role: str, max_positions: int) -> None:
    """Every prompt must leave room to generate in the model's context: checked before any graph is built."""
    for prompt in prompts:
        n = len(tokenizer(prompt_prefix(prompt, role), add_special_tokens=False).input_ids)
        if n >= max_positions:
            raise ArtifactError(
                f"prompt {prompt.id!r}: {n} tokens do not fit the {role} model's context of {max_positions} positions",
                hint=f"shorten the prompt in {paths.PROMPTS_DIR}/<profile>.json",
            )


@torch.no_grad()
def generate_trace(
    model, tokenizer, prompt: BenchmarkPrompt, role: str, *, max_new_tokens: int, max_positions: int, answer_anchor: str
) -> Trace:
    prefix = prompt_prefix(prompt, role)
    prompt_ids = tokenizer(prefix, add_special_tokens=False).input_ids
    if len(prompt_ids) >= max_positions:
        raise ArtifactError(
            f"prompt {prompt.id!r}: {len(prompt_ids)} tokens do not fit the {role} model's context "
            f"of {max_positions} positions",
            hint=f"shorten the prompt in {paths.PROMPTS_DIR}/<profile>.json",
        )
    room = min(max_new_tokens, max_positions - len(prompt_ids))
    ids = torch.tensor([prompt_ids])
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=room,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    new = out[0, len(prompt_ids) :].tolist()
    if tokenizer.eos_token_id in new:
        new = new[: new.index(tokenizer.eos_token_id) + 1]
    completion = tokenizer.decode(new, skip_special_tokens=False)
    return Trace(prompt, role, prompt_ids, new, completion, grade(completion, prompt.expected, answer_anchor))


def _token_ends(tokenizer, ids: list[int]) -> list[int]:
    """Character end offset of every token in decode(ids) (decoding prefixes keeps byte-level BPE honest)."""
    return [len(tokenizer.decode(ids[: i + 1], skip_special_tokens=False)) for i in range(len(ids))]


def _token_at(ends: list[int], char: int) -> int | None:
    """Index of the token that contains (or starts at) character `char`."""
    for i, end in enumerate(ends):
        if end > char:
            return i
    return None


def _sentence_starts(text: str, start: int, ends: list[int]) -> list[int]:
    """Token indices where a sentence of the assistant's turn (from character `start`) begins."""
    from r1interp.reasoning.behaviours import sentence_spans

    tokens = {_token_at(ends, start + a) for a, _ in sentence_spans(text[start:])}
    return sorted(t for t in tokens if t is not None)


def windowed(
    ids: list[int], target: int, window: int, starts: list[int], bos: int | None
) -> tuple[list[int], int] | None:
    """(graph input, window start) for the prediction at `target`: the whole prefix when it fits in `window`
    tokens (or window is 0), else BOS + the tokens from the first sentence start that leaves room; None when
    no sentence starts inside the window."""
    if not window or target <= window:
        return ids[:target], 0
    room = window - (bos is not None)
    first = next((s for s in starts if target - room <= s < target), None)
    if first is None:
        return None
    return ([bos] if bos is not None else []) + ids[first:target], first


def find_targets(
    tokenizer, trace: Trace, *, think_anchor: str, answer_anchor: str, window_tokens: int = 0
) -> list[GraphTarget]:
    ids = trace.prompt_ids + trace.completion_ids
    text = tokenizer.decode(ids, skip_special_tokens=False)
    # the assistant's turn (prefill included): the user's question must not match an anchor
    start = text.rfind(chat.ASSISTANT) + len(chat.ASSISTANT)
    ends = _token_ends(tokenizer, ids)
    chars: dict[str, int | None] = {}

    open_at = text.find(chat.THINK_OPEN, start)
    close_at = text.find(chat.THINK_CLOSE, open_at) if open_at >= 0 else -1
    if open_at < 0:
        trace.skipped["think"] = "no <think> block"
        chars["think"] = None
    else:
        body_end = close_at if close_at >= 0 else len(text)
        hit = text.find(think_anchor, open_at, body_end)
        chars["think"] = hit + len(think_anchor) if hit >= 0 else None
        if hit < 0:
            trace.skipped["think"] = f"no {think_anchor!r} inside <think>"

    after = close_at + len(chat.THINK_CLOSE) if close_at >= 0 else start
    hit = text.rfind(answer_anchor, after)
    chars["answer"] = hit + len(answer_anchor) if hit >= 0 else None
    if hit < 0:
        trace.skipped["answer"] = f"no {answer_anchor!r} in the answer"

    targets = []
    starts = _sentence_starts(text, start, ends) if window_tokens and len(ids) > window_tokens else []
    for kind in KINDS:
        char = chars[kind]
        if char is None:
            continue
        t = _token_at(ends, char)
        if t is None or t == 0:
            trace.skipped[kind] = f"{kind} anchor is at the end of the trace"
            continue
        window = windowed(ids, t, window_tokens, starts, tokenizer.bos_token_id)
        if window is None:
            trace.skipped[kind] = (
                f"no sentence starts within the graphs.window_tokens={window_tokens} tokens before "
                f"the {kind} target at token {t}"
            )
            continue
        targets.append(GraphTarget(
            prompt_id=trace.prompt.id, category=trace.prompt.category, model=trace.model, kind=kind,
            input_ids=tuple(window[0]), target_token=ids[t], correct=trace.correct, completion=trace.completion,
            window_start=window[1],
        ))  # fmt: skip
    return targets


WS = re.compile(r"\s+")


def show(tokenizer, target: GraphTarget, tail: int = 40) -> str:
    """The end of the graph's input and the target token, on one line (for logs)."""
    text = tokenizer.decode(list(target.input_ids), skip_special_tokens=False)
    return f"...{WS.sub(' ', text[-tail:])!s} -> {tokenizer.decode([target.target_token])!r}"
