"""Organism training loop, loss masking, LR schedule, answer parsing and generation."""

from __future__ import annotations

import math
import random

import pytest
import torch

from r1interp import chat
from r1interp.organism import tasks
from r1interp.organism.evaluate import accuracy_by_task, generate, parse_answer
from r1interp.organism.train import Example, _batch, build_model, encode, lr_at, train

# ------------------------------------------------------------------ LR schedule


def test_lr_warmup_then_cosine():
    kw = dict(steps=100, warmup=10, peak=1e-2, final_fraction=0.1)
    assert lr_at(0, **kw) == pytest.approx(1e-3)
    assert lr_at(4, **kw) == pytest.approx(5e-3)
    assert lr_at(9, **kw) == pytest.approx(1e-2)
    assert lr_at(10, **kw) == pytest.approx(1e-2)  # cosine starts at the peak
    assert lr_at(55, **kw) == pytest.approx(1e-2 * (0.1 + 0.9 * 0.5))  # halfway
    assert lr_at(100, **kw) == pytest.approx(1e-3)  # ends at final_fraction * peak
    warm = [lr_at(s, **kw) for s in range(10)]
    decay = [lr_at(s, **kw) for s in range(10, 101)]
    assert warm == sorted(warm)
    assert decay == sorted(decay, reverse=True)
    assert all(1e-3 - 1e-12 <= v <= 1e-2 + 1e-12 for v in warm + decay)


def test_lr_without_warmup():
    assert lr_at(0, steps=10, warmup=0, peak=0.5, final_fraction=0.0) == pytest.approx(0.5)
    assert lr_at(10, steps=10, warmup=0, peak=0.5, final_fraction=0.0) == pytest.approx(0.0, abs=1e-12)
    # warmup == steps: the whole run is warm-up and nothing divides by zero.
    assert lr_at(4, steps=5, warmup=5, peak=1.0, final_fraction=0.0) == pytest.approx(1.0)
    assert lr_at(5, steps=5, warmup=5, peak=1.0, final_fraction=0.2) == pytest.approx(1.0)


# ------------------------------------------------------------------ batching / masking


def test_encode_splits_prompt_and_completion(tokenizer):
    prompt = chat.prompt_text("What is 12+34?")
    completion = chat.reasoning_completion("2+4=6, write 6.\n1+3=4, write 4.", "The answer is 46.")
    ex = encode(tokenizer, prompt, completion)
    assert tokenizer.decode(ex.input_ids[: ex.n_prompt]) == prompt
    assert tokenizer.decode(ex.input_ids[ex.n_prompt :]) == completion
    assert ex.input_ids[0] == tokenizer.bos_token_id
    assert ex.input_ids[-1] == tokenizer.eos_token_id


def test_batch_masks_prompt_and_padding():
    pad = 6
    examples = [Example([10, 11, 12, 13, 14], 2), Example([20, 21, 22], 1), Example([30, 31, 32, 33, 34, 35, 36], 4)]
    ids, labels, mask = _batch(examples, pad)
    assert ids.shape == labels.shape == mask.shape == (3, 7)
    assert ids.dtype == labels.dtype == torch.long
    assert ids[0].tolist() == [10, 11, 12, 13, 14, pad, pad]
    assert labels[0].tolist() == [-100, -100, 12, 13, 14, -100, -100]
    assert labels[1].tolist() == [-100, 21, 22, -100, -100, -100, -100]
    assert labels[2].tolist() == [-100, -100, -100, -100, 34, 35, 36]
    assert mask.tolist() == [[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0, 0], [1] * 7]


def test_batch_on_real_examples(tokenizer):
    rng = random.Random(3)
    examples = []
    for _ in range(8):
        p = tasks.sample_problem("add", rng, 1, 3)
        examples.append(
            encode(tokenizer, chat.prompt_text(p.prompt), chat.reasoning_completion(p.think, p.answer_text))
        )
    ids, labels, mask = _batch(examples, tokenizer.pad_token_id)
    for row, e in enumerate(examples):
        kept = labels[row][labels[row] != -100].tolist()
        assert kept == e.input_ids[e.n_prompt :]
        assert tokenizer.decode(kept).startswith(chat.THINK_OPEN)
        assert int(mask[row].sum()) == len(e.input_ids)
        assert (ids[row][len(e.input_ids) :] == tokenizer.pad_token_id).all()


# ------------------------------------------------------------------ training


def _examples(tokenizer, n: int) -> list[Example]:
    rng = random.Random(0)
    out = []
    for i in range(n):
        p = tasks.sample_problem("add" if i % 2 else "mul", rng, 1, 2)
        out.append(encode(tokenizer, chat.prompt_text(p.prompt), chat.reasoning_completion(p.think, p.answer_text)))
    return out


def test_build_model_matches_tokenizer(tokenizer, tiny_model_kwargs):
    model = build_model(len(tokenizer), **tiny_model_kwargs)
    cfg = model.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size) == (2, 32, 64)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.max_position_embeddings) == (4, 2, 64)
    assert cfg.vocab_size == len(tokenizer)
    assert (cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id) == (
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
    )
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # tied
    # Seeded: the same seed gives the same weights, another seed different ones.
    again = build_model(len(tokenizer), **tiny_model_kwargs)
    other = build_model(len(tokenizer), **{**tiny_model_kwargs, "seed": 1})
    w = model.model.embed_tokens.weight
    assert torch.equal(w, again.model.embed_tokens.weight)
    assert not torch.equal(w, other.model.embed_tokens.weight)


def test_training_lowers_loss(tokenizer, tiny_model_kwargs):
    model = build_model(len(tokenizer), **tiny_model_kwargs)
    examples = _examples(tokenizer, 100)
    history = train(
        model,
        examples,
        steps=30,
        lr=1e-2,
        batch_size=16,
        warmup_steps=5,
        weight_decay=0.0,
        seed=0,
        pad_id=tokenizer.pad_token_id,
        desc="test",
    )
    assert [h["step"] for h in history] == list(range(30))
    assert [h["lr"] for h in history] == [
        lr_at(s, steps=30, warmup=5, peak=1e-2, final_fraction=0.05) for s in range(30)
    ]
    losses = [h["loss"] for h in history]
    assert all(math.isfinite(x) for x in losses)
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert first > math.log(len(tokenizer)) * 0.8  # starts near uniform
    assert last < 0.6 * first
    assert not model.training


def test_training_is_reproducible(tokenizer, tiny_model_kwargs):
    examples = _examples(tokenizer, 20)
    runs = []
    for _ in range(2):
        model = build_model(len(tokenizer), **tiny_model_kwargs)
        runs.append(
            train(
                model,
                examples,
                steps=3,
                lr=1e-2,
                batch_size=8,
                warmup_steps=1,
                weight_decay=0.0,
                seed=5,
                pad_id=tokenizer.pad_token_id,
                desc="test",
            )
        )
    assert [h["loss"] for h in runs[0]] == [h["loss"] for h in runs[1]]


# ------------------------------------------------------------------ evaluation


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("<think>\n9+1=10\n</think>\n\nThe answer is 10.<｜end▁of▁sentence｜>", 10),
        ("The answer is 3. Wait. The answer is 42.", 42),
        ("The answer is -7.", -7),
        ("The answer is 12", None),  # no final period: not a finished answer
        ("the answer is 12.", None),
        ("I think it is 12.", None),
        ("", None),
        ("The answer is 5.The answer is x.", 5),
    ],
)
def test_parse_answer(completion, expected):
    assert parse_answer(completion) == expected


@pytest.fixture
def left_padding_restored(tokenizer):
    side = tokenizer.padding_side
    yield
    tokenizer.padding_side = side


def test_generate_returns_one_string_per_question(tokenizer, tiny_model_kwargs, left_padding_restored):
    model = build_model(len(tokenizer), **tiny_model_kwargs)
    questions = ["What is 1+2?", "What is 123+456?", "What is 7*8?", "What is 99+1?", "What is 5*5?"]
    out = generate(model, tokenizer, questions, max_new_tokens=5, batch_size=2)
    assert len(out) == len(questions)
    assert all(isinstance(o, str) for o in out)
    for o in out:
        assert chat.PAD not in o
        ids = tokenizer(o, add_special_tokens=False)["input_ids"]
        assert len(ids) <= 5
    assert tokenizer.padding_side == "left"
    # Greedy decoding is deterministic.
    assert generate(model, tokenizer, questions[:2], max_new_tokens=5, batch_size=2) == out[:2]


def test_accuracy_by_task_structure(tokenizer, tiny_model_kwargs, left_padding_restored):
    model = build_model(len(tokenizer), **tiny_model_kwargs)
    problems = [("add", "What is 1+2?", 3), ("mul", "What is 2*3?", 6), ("add", "What is 4+4?", 8)]
    acc = accuracy_by_task(model, tokenizer, problems, max_new_tokens=4, batch_size=2, desc="test")
    assert set(acc) == {"add", "mul", "overall"}
    # An untrained model cannot write "The answer is N." within 4 tokens.
    assert acc == {"add": 0.0, "mul": 0.0, "overall": 0.0}
