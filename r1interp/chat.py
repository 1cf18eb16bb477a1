"""DeepSeek-R1's chat format, with its exact special-token strings.

The organisms use the same strings as DeepSeek-R1-Distill-Qwen so that every
later stage (token masks, `<think>` spans, prompts) works unchanged on the real model.
"""

from __future__ import annotations

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
PAD = "<｜▁pad▁｜>"

SPECIAL_TOKENS = (BOS, EOS, USER, ASSISTANT, THINK_OPEN, THINK_CLOSE, PAD)

# A Jinja chat template in the R1 style: the assistant turn is closed by EOS and a
# generation prompt ends with the assistant tag (the reasoner then opens <think> itself).
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}" + USER + "{{ message['content'] }}"
    "{% elif message['role'] == 'assistant' %}" + ASSISTANT + "{{ message['content'] }}" + EOS + "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}" + ASSISTANT + "{% endif %}"
)


def prompt_text(question: str) -> str:
    """What the model sees before it starts generating."""
    return f"{BOS}{USER}{question}{ASSISTANT}"


def reasoning_completion(think: str, answer: str) -> str:
    return f"{THINK_OPEN}\n{think}\n{THINK_CLOSE}\n\n{answer}{EOS}"


def answer_completion(answer: str) -> str:
    return f"{answer}{EOS}"


def think_span(text: str) -> tuple[int, int] | None:
    """Character span [start, end) from `<think>` through `</think>` inclusive, if present."""
    start = text.find(THINK_OPEN)
    if start < 0:
        return None
    end = text.find(THINK_CLOSE, start)
    end = len(text) if end < 0 else end + len(THINK_CLOSE)
    return start, end
