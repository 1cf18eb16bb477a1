"""The organisms' BPE tokenizer and the R1 chat format."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from conftest import TINY_VOCAB
from r1interp import chat


def test_vocab_size(tokenizer):
    assert len(tokenizer) == TINY_VOCAB


@pytest.mark.parametrize("text", ["What is 347+586?", "9+8+1=18, write 8, carry 1.", "The answer is 1234567890."])
def test_every_digit_is_its_own_token(tokenizer, text):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    pieces = [tokenizer.decode([i]) for i in ids]
    assert "".join(pieces) == text
    for piece in pieces:
        if any(c.isdigit() for c in piece):
            assert len(piece) == 1, f"digit merged into {piece!r}"
    assert sum(len(p) == 1 and p.isdigit() for p in pieces) == sum(c.isdigit() for c in text)


def test_merges_were_learned(tokenizer):
    # Frequent words become single tokens (the vocabulary holds more than bytes + specials).
    ids = tokenizer(" answer", add_special_tokens=False)["input_ids"]
    assert len(ids) < len(" answer")


def test_special_tokens_are_single_ids(tokenizer):
    ids = [tokenizer(s, add_special_tokens=False)["input_ids"] for s in chat.SPECIAL_TOKENS]
    assert all(len(i) == 1 for i in ids), ids
    assert len({i[0] for i in ids}) == len(chat.SPECIAL_TOKENS)
    assert tokenizer.bos_token == chat.BOS and tokenizer.eos_token == chat.EOS and tokenizer.pad_token == chat.PAD
    assert tokenizer.convert_ids_to_tokens(tokenizer.convert_tokens_to_ids(chat.THINK_OPEN)) == chat.THINK_OPEN
    # Special strings embedded in text are not split either.
    text = chat.prompt_text("What is 1+2?")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert ids[1] == tokenizer.convert_tokens_to_ids(chat.USER)
    assert ids[-1] == tokenizer.convert_tokens_to_ids(chat.ASSISTANT)


def test_chat_template_matches_prompt_text(tokenizer):
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 1+2?"}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == chat.prompt_text("What is 1+2?")


def test_chat_template_with_assistant_turn(tokenizer):
    completion = chat.reasoning_completion("1+2=3, write 3.", "The answer is 3.")
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 1+2?"}, {"role": "assistant", "content": completion[: -len(chat.EOS)]}],
        tokenize=False,
    )
    assert rendered == chat.prompt_text("What is 1+2?") + completion


def test_decode_encode_round_trip(tokenizer, corpus_texts):
    for text in corpus_texts[:20] + ["What is 12+3?  odd   spacing\n\n\ttabs é ü 你好"]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text


def test_save_and_reload(tokenizer, corpus_texts, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert len(loaded) == len(tokenizer)
    for text in corpus_texts[:10]:
        assert (
            loaded(text, add_special_tokens=False)["input_ids"]
            == tokenizer(text, add_special_tokens=False)["input_ids"]
        )
    assert loaded.bos_token_id == tokenizer.bos_token_id
    assert loaded.eos_token_id == tokenizer.eos_token_id
    assert loaded.pad_token_id == tokenizer.pad_token_id
    assert loaded.apply_chat_template(
        [{"role": "user", "content": "What is 5*6?"}], tokenize=False, add_generation_prompt=True
    ) == chat.prompt_text("What is 5*6?")


def test_prompt_and_completion_format():
    assert chat.prompt_text("Q") == f"{chat.BOS}{chat.USER}Q{chat.ASSISTANT}"
    assert chat.reasoning_completion("T", "A") == f"{chat.THINK_OPEN}\nT\n{chat.THINK_CLOSE}\n\nA{chat.EOS}"
    assert chat.answer_completion("A") == f"A{chat.EOS}"


def test_think_span():
    text = chat.prompt_text("Q") + chat.reasoning_completion("step", "The answer is 1.")
    start, end = chat.think_span(text)
    assert text[start:end] == f"{chat.THINK_OPEN}\nstep\n{chat.THINK_CLOSE}"
    assert chat.think_span("no reasoning here") is None
    assert chat.think_span(chat.prompt_text("Q") + chat.answer_completion("A")) is None
    # An unfinished think runs to the end of the text.
    open_only = "xx<think>still thinking"
    assert chat.think_span(open_only) == (2, len(open_only))
    # A stray </think> before <think> is not the closing tag.
    tricky = "</think>a<think>b</think>c"
    s, e = chat.think_span(tricky)
    assert tricky[s:e] == "<think>b</think>"
