"""Spliced evaluation of transcoders on held-out tokens.

For every layer alone and for all layers at once, the MLP output is replaced by the
transcoder's (or by zero / the mean output, the ablation baselines) and we measure:
CE-loss increase over the clean model (nats/token), KL(clean || spliced), fraction of
CE recovered relative to zero- and mean-ablation, FVU, L0 and dead-feature %, on all
tokens and separately on the `<think>` span and the answer span.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from r1interp.transcoders.splice import mlp_modules, splice

SPANS = ("all", "completion", "think", "answer")  # completion = think + answer (what the model was trained to produce)


class _Sums:
    """Running sums of per-token CE and KL over each span."""

    def __init__(self):
        self.ce = defaultdict(float)
        self.kl = defaultdict(float)
        self.n = defaultdict(int)

    def add(self, ce: torch.Tensor, kl: torch.Tensor | None, masks: dict[str, torch.Tensor]) -> None:
        for span, mask in masks.items():
            self.ce[span] += float(ce[mask].sum())
            if kl is not None:
                self.kl[span] += float(kl[mask].sum())
            self.n[span] += int(mask.sum())

    def mean(self, span: str) -> tuple[float, float]:
        n = max(1, self.n[span])
        return self.ce[span] / n, self.kl[span] / n


def _next_token_stats(logits: torch.Tensor, ids: torch.Tensor, clean_logp: torch.Tensor | None):
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
    ce = -logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
    kl = None if clean_logp is None else (clean_logp.exp() * (clean_logp - logp)).sum(-1)
    return logp, ce, kl


@torch.no_grad()
def mean_mlp_outputs(model, batches) -> dict[int, torch.Tensor]:
    sums, count = {}, 0
    handles = []
    for layer, mlp in enumerate(mlp_modules(model)):

        def hook(module, inputs, output, layer=layer):
            sums[layer] = sums.get(layer, 0) + output.reshape(-1, output.shape[-1]).sum(0)

        handles.append(mlp.register_forward_hook(hook))
    try:
        for batch in batches:
            model(batch["input_ids"])
            count += batch["input_ids"].numel()
    finally:
        for h in handles:
            h.remove()
    return {layer: s / count for layer, s in sums.items()}


@torch.no_grad()
def evaluate(model, coders: dict[int, object], batches: list[dict[str, torch.Tensor]], keep_token_ids=()) -> dict:
    """Metrics per layer (spliced alone) and for all layers; see the module docstring.

    Positions holding `keep_token_ids` (the special tokens excluded from training) keep the
    model's own MLP output; statistics (FVU, L0, dead) cover the replaced positions.
    """
    keep_ids = torch.tensor(sorted(set(keep_token_ids)), dtype=torch.long)
    means = mean_mlp_outputs(model, batches)
    layers = sorted(coders)
    conditions = {("clean", None): {}}
    for layer in layers:
        conditions[("coder", layer)] = {layer: coders[layer]}
        conditions[("zero", layer)] = {layer: "zero"}
        conditions[("mean", layer)] = {layer: means[layer]}
    conditions[("coder", "all")] = dict(coders)
    conditions[("zero", "all")] = {layer: "zero" for layer in layers}
    conditions[("mean", "all")] = {layer: means[layer] for layer in layers}

    sums = {key: _Sums() for key in conditions}
    fvu_num = defaultdict(float)
    l0_sum = defaultdict(float)
    fired = {layer: torch.zeros(coders[layer].num_latents, dtype=torch.bool) for layer in layers}
    y_sum = defaultdict(lambda: 0)
    y_sq = defaultdict(float)
    n_tokens = 0
    n_replaced = 0

    for batch in tqdm(batches, desc="evaluate", unit="batch", mininterval=2.0):
        ids = batch["input_ids"]
        keep = torch.isin(ids, keep_ids.to(ids.device)) if len(keep_ids) else None
        masks = {
            # every next-token prediction except those of the kept special tokens (padding, tags)
            "all": ~torch.isin(ids[:, 1:], keep_ids.to(ids.device)),
            "think": batch["in_think"][:, 1:].bool(),
            "answer": batch["in_answer"][:, 1:].bool(),
            "completion": batch["in_think"][:, 1:].bool() | batch["in_answer"][:, 1:].bool(),
        }
        clean_logp, ce, _ = _next_token_stats(model(ids).logits, ids, None)
        sums[("clean", None)].add(ce, torch.zeros_like(ce), masks)
        for key, replacements in conditions.items():
            if key[0] == "clean":
                continue
            record = {} if key[0] == "coder" and key[1] != "all" else None
            with splice(model, replacements, record, keep=keep if key[0] == "coder" else None):
                logits = model(ids).logits
            _, ce, kl = _next_token_stats(logits, ids, clean_logp)
            sums[key].add(ce, kl, masks)
            if record:
                (layer,) = record
                x, y, y_hat, acts, idx = record[layer]
                y2 = y.reshape(-1, y.shape[-1]).double()
                fvu_num[layer] += float((y2 - y_hat.reshape(y2.shape).double()).pow(2).sum())
                y_sum[layer] = y_sum[layer] + y2.sum(0)
                y_sq[layer] += float(y2.pow(2).sum())
                l0_sum[layer] += float((acts > 0).sum())
                fired[layer][idx[acts > 0]] = True
        n_tokens += ids.numel()
        n_replaced += ids.numel() - (0 if keep is None else int(keep.sum()))

    result: dict = {"tokens": n_tokens, "replaced_tokens": n_replaced, "layers": {}}
    clean = sums[("clean", None)]

    def summarize(tag) -> dict:
        out = {}
        for span in SPANS:
            ce_clean, _ = clean.mean(span)
            ce_coder, kl = sums[("coder", tag)].mean(span)
            ce_zero, _ = sums[("zero", tag)].mean(span)
            ce_mean, _ = sums[("mean", tag)].mean(span)
            entry = {
                "ce_clean": ce_clean,
                "ce_spliced": ce_coder,
                "ce_increase": ce_coder - ce_clean,
                "kl": kl,
                "ce_zero_ablation": ce_zero,
                "ce_mean_ablation": ce_mean,
                "frac_recovered_zero": _recovered(ce_clean, ce_coder, ce_zero),
                "frac_recovered_mean": _recovered(ce_clean, ce_coder, ce_mean),
                "tokens": clean.n[span],
            }
            out[span] = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in entry.items()}
        return out

    for layer in layers:
        total_var = y_sq[layer] - float((y_sum[layer] ** 2).sum()) / n_replaced
        entry = summarize(layer)
        entry["fvu"] = round(fvu_num[layer] / max(total_var, 1e-12), 6)
        entry["l0"] = round(l0_sum[layer] / n_replaced, 3)
        entry["dead_pct"] = round(100.0 * float((~fired[layer]).float().mean()), 3)
        entry["num_latents"] = int(coders[layer].num_latents)
        entry["k"] = int(coders[layer].cfg.k)
        result["layers"][str(layer)] = entry
    result["all_layers"] = summarize("all")
    per_layer = [result["layers"][str(layer)] for layer in layers]
    # Targets are judged on the completion: prompt positions were never trained (their
    # next tokens are random operands), so CE there measures nothing the model learned.
    result["summary"] = {
        "max_ce_increase_single": round(max(e["completion"]["ce_increase"] for e in per_layer), 6),
        "ce_increase_all_layers": result["all_layers"]["completion"]["ce_increase"],
        "kl_all_layers": result["all_layers"]["completion"]["kl"],
        "mean_fvu": round(float(np.mean([e["fvu"] for e in per_layer])), 6),
        "max_dead_pct": round(max(e["dead_pct"] for e in per_layer), 3),
        "mean_l0": round(float(np.mean([e["l0"] for e in per_layer])), 3),
    }
    return result


def _recovered(clean: float, spliced: float, ablated: float) -> float | None:
    gap = ablated - clean
    return None if abs(gap) < 1e-9 else round((ablated - spliced) / gap, 6)
