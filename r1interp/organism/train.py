"""Training loop for the model organisms (tiny Qwen2 causal LMs).

Supervised fine-tuning style: the loss covers only the assistant's completion,
never the prompt, so `base` learns to answer directly and `reasoner` learns to
think first.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase, Qwen2Config, Qwen2ForCausalLM

from r1interp import sdpa_mask


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    n_prompt: int  # tokens of prompt; loss starts after them


def encode(tokenizer: PreTrainedTokenizerBase, prompt: str, completion: str) -> Example:
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    c = tokenizer(completion, add_special_tokens=False)["input_ids"]
    return Example(p + c, len(p))


def build_model(
    vocab_size: int,
    *,
    layers: int,
    hidden: int,
    intermediate: int,
    heads: int,
    kv_heads: int,
    max_positions: int,
    rope_theta: float,
    tokenizer: PreTrainedTokenizerBase,
    seed: int,
) -> Qwen2ForCausalLM:
    sdpa_mask.install()  # the same attention masks, built without vmap
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions,
        rope_theta=rope_theta,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return Qwen2ForCausalLM(config)


def _batch(examples: list[Example], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, e.n_prompt : n] = ids[row, e.n_prompt : n]
        mask[row, :n] = 1
    return ids, labels, mask


def lr_at(step: int, *, steps: int, warmup: int, peak: float, final_fraction: float) -> float:
    """Linear warm-up then cosine decay to `final_fraction * peak`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress)))


def train(
    model: Qwen2ForCausalLM,
    examples: list[Example],
    *,
    steps: int,
    lr: float,
    batch_size: int,
    warmup_steps: int,
    weight_decay: float,
    seed: int,
    pad_id: int,
    desc: str,
    final_lr_fraction: float = 0.05,
) -> list[dict]:
    """Train in place; returns a per-step log of loss and learning rate."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=weight_decay)
    order: list[int] = []
    history = []
    bar = tqdm(range(steps), desc=desc, unit="step", mininterval=2.0)
    for step in bar:
        if len(order) < batch_size:
            fresh = list(range(len(examples)))
            rng.shuffle(fresh)
            order.extend(fresh)
        idx, order = order[:batch_size], order[batch_size:]
        ids, labels, mask = _batch([examples[i] for i in idx], pad_id)
        current_lr = lr_at(step, steps=steps, warmup=warmup_steps, peak=lr, final_fraction=final_lr_fraction)
        for group in opt.param_groups:
            group["lr"] = current_lr
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        history.append({"step": step, "loss": loss.item(), "lr": current_lr})
        if step % 20 == 0:
            bar.set_postfix(loss=f"{history[-1]['loss']:.4f}")
    model.eval()
    return history
