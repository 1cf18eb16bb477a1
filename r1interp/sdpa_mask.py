"""transformers' SDPA attention mask built by broadcasting instead of four nested `torch.vmap`s: the same mask.

transformers (pinned, 4.57) builds the boolean mask of every padded forward pass — each step of batched greedy
decoding, each training batch with padding — by vmapping the mask function over batch, head, query and key
indices. That is pure Python dispatch (torch's pytree machinery): about 3.6 ms per call on a 2-core machine,
against 0.4 ms by broadcasting, whatever the model's size. Padded greedy decoding of the default reasoner takes
0.56x (100 problems) to 0.71x (400) the time with this function (bench/sdpa_mask.py); the tiny test profile's
decoding about a third.

`install()` registers `sdpa_mask` for the "sdpa" implementation through transformers' own extension point
(`AttentionMaskInterface.register`). For the one mask the Qwen2 models ask for — causal, plus the padding of the
2-D attention mask, no sliding window — it returns the identical tensor (same values, dtype, shape and strides),
or None exactly where transformers would (then SDPA runs with `is_causal`); anything else goes to transformers'
own function. The attention therefore sees the same inputs and every artifact keeps its bytes
(tests/test_sdpa_mask.py compares the two functions case by case; bench/sdpa_mask.py times greedy decoding).
"""

from __future__ import annotations

from typing import Any

_state: dict[str, Any] = {"original": None}


def sdpa_mask(
    batch_size: int,
    cache_position,
    kv_length: int,
    kv_offset: int = 0,
    mask_function=None,
    attention_mask=None,
    local_size: int | None = None,
    allow_is_causal_skip: bool = True,
    **kwargs: Any,
):
    """`transformers.masking_utils.sdpa_mask` (same arguments, same result) without vmap for causal + padding."""
    import torch
    from transformers import masking_utils

    original = _state["original"] or masking_utils.sdpa_mask
    if mask_function is None:
        mask_function = masking_utils.causal_mask_function
    if mask_function is not masking_utils.causal_mask_function or local_size is not None:
        return original(
            batch_size=batch_size,
            cache_position=cache_position,
            kv_length=kv_length,
            kv_offset=kv_offset,
            mask_function=mask_function,
            attention_mask=attention_mask,
            local_size=local_size,
            allow_is_causal_skip=allow_is_causal_skip,
            **kwargs,
        )
    padding_mask = masking_utils.prepare_padding_mask(attention_mask, kv_length, kv_offset, _slice=False)
    q_length = cache_position.shape[0]
    # transformers' own rule for leaving the mask to SDPA's is_causal (private, hence the equality test)
    if allow_is_causal_skip and masking_utils._ignore_causal_mask_sdpa(
        padding_mask, q_length, kv_length, kv_offset, local_size
    ):
        return None
    kv_index = torch.arange(kv_length, device=cache_position.device) + kv_offset
    mask = (kv_index[None, :] <= cache_position[:, None])[None, None].expand(batch_size, 1, q_length, kv_length)
    if padding_mask is not None:  # padding_mask_function: key kv_index of row b counts where the 2-D mask is set
        mask = mask & padding_mask[:, kv_index][:, None, None, :]  # a new, contiguous tensor, as vmap's
    return mask  # without padding, vmap's too is the causal block expanded over the batch (batch stride 0)


def install() -> None:
    """Use `sdpa_mask` for every model with SDPA attention in this process (idempotent)."""
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    current = ALL_MASK_ATTENTION_FUNCTIONS["sdpa"]
    if current is sdpa_mask:
        return
    _state["original"] = current
    AttentionMaskInterface.register("sdpa", sdpa_mask)


def uninstall() -> None:
    """Back to transformers' own function (the baseline of tests and benchmarks)."""
    from transformers.masking_utils import AttentionMaskInterface

    if _state["original"] is not None:
        AttentionMaskInterface.register("sdpa", _state["original"])
        _state["original"] = None
