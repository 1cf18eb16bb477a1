"""r1interp/sdpa_mask.py: the attention mask built without vmap is transformers' mask, case by case, and a model
using it decodes and trains to the same bits."""

from __future__ import annotations

import itertools

import pytest
import torch
from transformers import masking_utils

from r1interp import sdpa_mask

TRANSFORMERS_MASK = masking_utils.sdpa_mask  # the module attribute: registering ours leaves it alone


def _attention_mask(kind: str, batch: int, length: int, gen: torch.Generator):
    if kind == "none":
        return None
    if kind == "ones":
        return torch.ones(batch, length, dtype=torch.bool)
    if kind == "left":  # batched decoding pads on the left
        return torch.arange(length)[None, :] >= torch.randint(1, length // 2, (batch, 1), generator=gen)
    if kind == "right":  # training batches pad on the right
        return torch.arange(length)[None, :] < torch.randint(length // 2, length, (batch, 1), generator=gen)
    if kind == "short_int":  # shorter than the keys (padded by transformers), integer dtype
        return (torch.rand(batch, length - 1, generator=gen) > 0.3).long()
    return torch.rand(batch, length, generator=gen) > 0.3


CASES = [
    (batch, q, kv, offset, kind, skip)
    for batch, q, kv, offset, kind, skip in itertools.product(
        (1, 3), (1, 4, 7), (7, 12), (0, 5), ("none", "ones", "left", "right", "short_int", "holes"), (True, False)
    )
    if q <= kv
]


@pytest.mark.parametrize(("batch", "q", "kv", "offset", "kind", "skip"), CASES)
def test_the_mask_is_transformers_mask_values_dtype_shape_and_strides(batch, q, kv, offset, kind, skip):
    gen = torch.Generator().manual_seed(1000 * batch + 100 * q + 10 * kv + offset)
    args = dict(
        batch_size=batch,
        cache_position=torch.arange(kv - q, kv) + offset,
        kv_length=kv,
        kv_offset=offset,
        attention_mask=_attention_mask(kind, batch, kv + offset, gen),
        allow_is_causal_skip=skip,
    )
    theirs, ours = TRANSFORMERS_MASK(**args), sdpa_mask.sdpa_mask(**args)
    if theirs is None:  # SDPA runs with is_causal instead of a mask: the same decision
        assert ours is None
        return
    assert ours is not None
    assert (ours.dtype, ours.shape, ours.stride()) == (theirs.dtype, theirs.shape, theirs.stride())
    assert torch.equal(ours, theirs)


def test_other_mask_patterns_are_left_to_transformers():
    window = masking_utils.sliding_window_causal_mask_function(3)
    causal = masking_utils.causal_mask_function(0, 0, torch.arange(6)[:, None], torch.arange(6)[None, :])
    for extra in ({"mask_function": window}, {"local_size": 2}):
        args = dict(batch_size=2, cache_position=torch.arange(6), kv_length=6, allow_is_causal_skip=False, **extra)
        ours = sdpa_mask.sdpa_mask(**args)
        assert ours is not None and torch.equal(ours, TRANSFORMERS_MASK(**args))
        if "mask_function" in extra:
            assert not torch.equal(ours[0, 0], causal)  # the window's pattern, not the causal one


@pytest.fixture
def tiny_model(tokenizer, tiny_model_kwargs):
    from r1interp.organism.train import build_model

    model = build_model(len(tokenizer), **tiny_model_kwargs).eval()
    yield model
    sdpa_mask.install()  # what every r1interp process runs with


def test_build_and_load_install_it(tiny_model, tokenizer, tmp_path):
    from r1interp.models import load_model

    assert tiny_model.config._attn_implementation == "sdpa"
    assert masking_utils.ALL_MASK_ATTENTION_FUNCTIONS["sdpa"] is sdpa_mask.sdpa_mask
    sdpa_mask.uninstall()
    assert masking_utils.ALL_MASK_ATTENTION_FUNCTIONS["sdpa"] is TRANSFORMERS_MASK
    tiny_model.save_pretrained(tmp_path, safe_serialization=True)
    tokenizer.save_pretrained(tmp_path)
    load_model(tmp_path)
    assert masking_utils.ALL_MASK_ATTENTION_FUNCTIONS["sdpa"] is sdpa_mask.sdpa_mask
    sdpa_mask.install()  # twice: still ours, and uninstall goes back to transformers' own
    sdpa_mask.uninstall()
    assert masking_utils.ALL_MASK_ATTENTION_FUNCTIONS["sdpa"] is TRANSFORMERS_MASK


def _decode_and_train(model, tokenizer) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Greedy completions of a left-padded batch, and the loss and gradients of one right-padded training batch."""
    from r1interp.organism.evaluate import generate

    texts = generate(model, tokenizer, ["What is 12 + 345?", "What is 7 * 8?", "1"], max_new_tokens=12, batch_size=3)
    ids = torch.tensor([[5, 6, 7, 8, 9, 10], [11, 12, 13, 0, 0, 0]])
    mask = (torch.arange(6)[None, :] < torch.tensor([[6], [3]])).long()
    model.zero_grad()
    loss = model(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).loss
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return texts, loss.detach(), grads


def test_a_model_decodes_and_trains_to_the_same_bits(tiny_model, tokenizer):
    sdpa_mask.install()
    ours = _decode_and_train(tiny_model, tokenizer)
    calls = []
    original = sdpa_mask.sdpa_mask

    def counted(**kwargs):
        calls.append(kwargs["attention_mask"] is not None)
        return original(**kwargs)

    masking_utils.AttentionMaskInterface.register("sdpa", counted)
    _decode_and_train(tiny_model, tokenizer)
    assert any(calls)  # the padded batches did build their masks through it
    sdpa_mask.uninstall()
    theirs = _decode_and_train(tiny_model, tokenizer)
    assert ours[0] == theirs[0]
    assert torch.equal(ours[1], theirs[1]) and torch.equal(ours[2], theirs[2])
