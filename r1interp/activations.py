"""Feature activation tables and example windows, streamed over held-out tokens.

Sampling follows EleutherAI's delphi: per feature, the top-N activating examples, a
uniform sample of activating occurrences split into equal-count activation quantiles
(10 bins), and random windows where the feature never fires (negatives for scoring).
Examples are windows of `window` tokens around the activating token, with the
feature's activation at every token of the window.

Memory does not grow with the token budget: every per-feature sample lives in a
fixed number of slots (`SlotTable`), updated batch by batch. The uniform sample is a
bottom-k sample on random keys (each occurrence draws u ~ U(0,1); a feature keeps the
S smallest), so it is exactly uniform over all occurrences without knowing their count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from r1interp.transcoders.splice import mlp_modules

DENSE_LOOKUP_LIMIT = 1 << 24  # elements (64 MiB of float32) per layer and batch
SILENT_WINDOWS_PER_ROW = 4  # random windows per row offered as negatives (dense features rarely fall silent)


@dataclass
class Window:
    """Where an example window sits in a batch: rows, [start, end) and the target position."""

    row: torch.Tensor  # [C] row within the batch
    start: torch.Tensor  # [C]
    length: torch.Tensor  # [C] <= window (short documents)
    target: torch.Tensor  # [C] index of the sampled token inside the window


def place_windows(row: torch.Tensor, pos: torch.Tensor, valid_len: torch.Tensor, window: int) -> Window:
    """Windows of up to `window` tokens ending shortly after `pos` (the context before matters
    more to a causal model), kept inside the row's valid tokens."""
    lead = (window * 3) // 4
    length = valid_len[row].clamp(max=window)
    start = torch.minimum((pos - lead).clamp(min=0), (valid_len[row] - length).clamp(min=0))
    return Window(row, start, length, pos - start)


class SlotTable:
    """Per feature, the `slots` candidates with the smallest keys, with their example payload.

    Keys lie in [0, 1); 1.0 marks an empty slot. `offer` merges a batch of candidates with
    one sort; payloads (window tokens and activations) are extracted only for candidates
    that actually enter, and written into the slots of the entries they evict.
    """

    EMPTY = 1.0

    def __init__(self, n_features: int, slots: int, window: int, with_acts: bool = True):
        self.slots, self.window = slots, window
        self.key = torch.full((n_features, slots), self.EMPTY)
        # token ids are not stored: they are read back from the token split at the end
        self.fields = {
            "activation": torch.zeros(n_features, slots),
            "row": torch.full((n_features, slots), -1, dtype=torch.long),
            "position": torch.full((n_features, slots), -1, dtype=torch.long),
            "in_think": torch.zeros(n_features, slots, dtype=torch.bool),
            "target": torch.zeros(n_features, slots, dtype=torch.long),
            "length": torch.zeros(n_features, slots, dtype=torch.long),
        }
        if with_acts:
            self.fields["acts"] = torch.zeros(
                n_features, slots, window, dtype=torch.float16
            )  # 65k latents x 28 layers add up

    def thresholds(self) -> torch.Tensor:
        """The key a candidate must beat to enter, per feature (1.0 while slots are free)."""
        return self.key.max(dim=1).values

    def offer(self, feature: torch.Tensor, key: torch.Tensor, extract) -> None:
        """Candidates (feature, key in [0, 1)); `extract(index)` returns payload fields for candidates `index`.

        Surviving entries stay in their slots; each entering candidate takes the slot of an
        entry it evicts, and only entering candidates have their payload extracted.
        """
        if feature.numel() == 0:
            return
        S = self.slots
        touched, group = torch.unique(feature, return_inverse=True)
        T = len(touched)
        # A feature with c candidates can lose at most its c largest entries, so only the
        # m = max(c) largest keys of each touched feature take part in the merge.
        m = min(S, int(torch.bincount(group, minlength=T).max()))
        old_key, old_slot = self.key[touched].topk(m, dim=1)
        all_group = torch.cat([torch.arange(T).repeat_interleave(m), group])
        all_key = torch.cat([old_key.reshape(-1), key])
        order, rank = _group_rank(all_group, all_key)
        kept, is_old = rank < m, order < T * m
        # both lists come out grouped by feature, with equal counts per feature: pair them up
        evicted = order[~kept & is_old]
        entering = order[kept & ~is_old] - T * m
        if entering.numel() == 0:
            return
        feat, slot = touched[evicted // m], old_slot.reshape(-1)[evicted]
        payload = extract(entering)
        self.key[feat, slot] = key[entering]
        for name, table in self.fields.items():
            table[feat, slot] = payload[name].to(table.dtype)

    def filled(self) -> torch.Tensor:
        return self.key < self.EMPTY


def _group_rank(group: torch.Tensor, key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Order by (group, key) and each element's rank within its group, in that order.
    Keys lie in [0, 1], so `2 * group + key` sorts groups first with a single sort."""
    order = torch.argsort(group.double() * 2 + key.double())
    counts = torch.bincount(group)
    rank = torch.arange(len(order)) - (torch.cumsum(counts, 0) - counts)[group[order]]
    return order, rank


class LayerCollector:
    """Streaming statistics and samples for one transcoder."""

    def __init__(self, num_latents: int, cfg, generator: torch.Generator):
        self.cfg, self.gen = cfg, generator
        F = num_latents
        self.count = torch.zeros(F, dtype=torch.long)
        self.think_count = torch.zeros(F, dtype=torch.long)
        self.act_sum = torch.zeros(F, dtype=torch.float64)
        self.act_max = torch.zeros(F)
        self.n_tokens = 0
        self.top = SlotTable(F, cfg.top_n, cfg.window)
        self.sample = SlotTable(F, cfg.quantile_bins * cfg.per_quantile, cfg.window)
        self.silent = SlotTable(F, cfg.non_activating, cfg.window, with_acts=False) if cfg.non_activating else None

    def update(self, acts, idx, ids, valid, in_think, row_offset: int) -> None:
        """acts/idx: [B, T, k] top-k encoder output; valid: [B, T] positions that count;
        row_offset: index of the batch's first row in the token split (examples name global rows)."""
        self.row_offset = row_offset
        B, T, k = idx.shape
        F = len(self.count)
        nz = ((acts > 0) & valid[..., None]).reshape(-1).nonzero().squeeze(1)  # one pass, then gathers
        flat_f = idx.reshape(-1)[nz]
        flat_a = acts.reshape(-1)[nz].float()
        pos_index = nz // k
        tok_think = in_think.reshape(-1)[pos_index]
        self.n_tokens += int(valid.sum())
        self.count += torch.bincount(flat_f, minlength=F)
        self.think_count += torch.bincount(flat_f[tok_think], minlength=F)
        self.act_sum.index_add_(0, flat_f, flat_a.double())
        self.act_max.scatter_reduce_(0, flat_f, flat_a, reduce="amax")
        self._index_occurrences(pos_index, flat_f, flat_a, B * T)

        valid_len = _valid_prefix(valid)
        row_of, pos_of = pos_index // T, pos_index % T

        def extractor(rows, poss, feats, activation):
            def extract(sel):
                w = place_windows(rows[sel], poss[sel], valid_len, self.cfg.window)
                return self._payload(w, feats[sel], activation[sel], ids, in_think)

            return extract

        # top-N: key = 1 / (1 + activation), in (0, 1) and smallest for the strongest;
        # the prefilter compares activations with each feature's entry bar (1 / key - 1)
        bar = 1.0 / self.top.thresholds() - 1.0
        sel = (flat_a > bar[flat_f]).nonzero().squeeze(1)
        key = 1.0 / (1.0 + flat_a[sel])
        self.top.offer(flat_f[sel], key, extractor(row_of[sel], pos_of[sel], flat_f[sel], flat_a[sel]))
        # uniform sample of occurrences: bottom-S on random keys
        u = torch.rand(len(flat_f), generator=self.gen)
        keep = u < self.sample.thresholds()[flat_f]
        sel = keep.nonzero().squeeze(1)
        self.sample.offer(flat_f[sel], u[sel], extractor(row_of[sel], pos_of[sel], flat_f[sel], flat_a[sel]))
        if self.silent is not None:
            self._offer_silent(idx, acts, valid, valid_len, in_think)

    def _offer_silent(self, idx, acts, valid, valid_len, in_think):
        """Negatives: random windows of the batch's rows, offered to every feature that stays
        silent throughout one (random keys, so the kept ones are a uniform sample)."""
        B, T, k = idx.shape
        F = len(self.count)
        rows = (valid_len > 0).nonzero().squeeze(1).repeat(SILENT_WINDOWS_PER_ROW)
        if rows.numel() == 0:
            return
        pos = (torch.rand(len(rows), generator=self.gen) * valid_len[rows]).long()
        w = place_windows(rows, pos, valid_len, self.cfg.window)
        offs = torch.arange(self.cfg.window)
        cols = (w.start[:, None] + offs).clamp(max=T - 1)
        inside = (offs < w.length[:, None])[..., None] & (acts[rows[:, None], cols] > 0)  # [P, W, k]
        fired = torch.zeros(len(rows), F + 1, dtype=torch.bool)
        fired.scatter_(1, torch.where(inside, idx[rows[:, None], cols], F).reshape(len(rows), -1), True)
        u = torch.rand(len(rows), F, generator=self.gen)
        cand = ~fired[:, :F] & (u < self.silent.thresholds()[None, :])
        window_of, feature = cand.nonzero(as_tuple=True)
        target_pos = w.start + w.target

        def extract(sel):
            p = window_of[sel]
            return {
                "activation": torch.zeros(len(p)),
                "row": rows[p] + self.row_offset,
                "position": target_pos[p],
                "in_think": in_think[rows[p], target_pos[p]].bool(),
                "target": w.target[p],
                "length": w.length[p],
            }

        self.silent.offer(feature, u[window_of, feature], extract)

    def _payload(self, w: Window, feats, activation, ids, in_think) -> dict[str, torch.Tensor]:
        offs = torch.arange(self.cfg.window)
        cols = (w.start[:, None] + offs).clamp(max=ids.shape[1] - 1)  # [C, W]
        inside = offs < w.length[:, None]
        window_acts = torch.where(
            inside, self._activation_at(w.row[:, None] * ids.shape[1] + cols, feats[:, None]), 0.0
        )
        target_pos = w.start + w.target
        return {
            "activation": activation,
            "row": w.row + self.row_offset,
            "position": target_pos,
            "in_think": in_think[w.row, target_pos].bool(),
            "target": w.target,
            "length": w.length,
            "acts": window_acts,
        }

    def _index_occurrences(
        self, flat_pos: torch.Tensor, flat_f: torch.Tensor, flat_a: torch.Tensor, n_pos: int
    ) -> None:
        """Make the batch's activations addressable by (position, feature) for window lookups:
        a dense [positions x features] matrix when small, else sorted sparse keys (65k latents
        at real scale would need gigabytes dense)."""
        F = len(self.count)
        if n_pos * F <= DENSE_LOOKUP_LIMIT:
            dense = torch.zeros(n_pos * F)
            dense[flat_pos * F + flat_f] = flat_a
            self._occ = ("dense", dense, F)
        else:
            keys, order = torch.sort(flat_pos * F + flat_f)
            self._occ = ("sparse", (keys, flat_a[order]), F)

    def _activation_at(self, flat_pos: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        mode, data, F = self._occ
        query = flat_pos * F + feature
        if mode == "dense":
            return data[query]
        keys, values = data
        if keys.numel() == 0:
            return torch.zeros(query.shape)
        i = torch.searchsorted(keys, query).clamp(max=keys.numel() - 1)
        return torch.where(keys[i] == query, values[i], 0.0)


def _valid_prefix(valid: torch.Tensor) -> torch.Tensor:
    """Length of each row's content: up to the last valid position (padding sits at the end)."""
    T = valid.shape[1]
    last = torch.where(valid, torch.arange(T), -1).max(dim=1).values
    return last + 1


def token_batches(ds, rows: int, batch_size: int, device: str = "cpu"):
    """The first `rows` rows of a token split as `collect` batches, lazily (memory does not grow with rows)."""
    view = ds.with_format("torch")
    for start in range(0, rows, batch_size):
        chunk = view[start : min(rows, start + batch_size)]
        yield {"input_ids": chunk["input_ids"].to(device), "in_think": chunk["in_think"], "row_offset": start}


@torch.no_grad()
def collect(
    model, coders: dict[int, object], batches, cfg, *, exclude_token_ids=(), seed: int = 0, progress: bool = True
):
    """Stream `batches` ({input_ids, in_think, row_offset}) through the model; returns {layer: LayerCollector}.

    Features are read on the clean model's MLP inputs (no splicing); positions holding
    `exclude_token_ids` (special tokens the transcoders were not trained on) are ignored.
    """
    gen = torch.Generator().manual_seed(seed)
    collectors = {layer: LayerCollector(coder.num_latents, cfg, gen) for layer, coder in coders.items()}
    exclude = torch.tensor(sorted(set(exclude_token_ids)), dtype=torch.long)
    captured: dict[int, torch.Tensor] = {}
    handles = [
        mlp_modules(model)[layer].register_forward_hook(
            lambda m, inp, out, layer=layer: captured.__setitem__(layer, inp[0])
        )
        for layer in coders
    ]
    try:
        for batch in tqdm(batches, desc="activations", unit="batch", disable=not progress, mininterval=2.0):
            ids = batch["input_ids"]
            model(ids)
            valid = ~torch.isin(ids, exclude.to(ids.device)) if len(exclude) else torch.ones_like(ids, dtype=torch.bool)
            ids_cpu, valid_cpu, think_cpu = ids.cpu(), valid.cpu(), batch["in_think"].bool().cpu()
            for layer, coder in coders.items():
                x = captured.pop(layer)
                acts, idx, _ = coder.encode(x.reshape(-1, x.shape[-1]).to(coder.dtype))
                shape = (*ids.shape, acts.shape[-1])
                collectors[layer].update(
                    acts.reshape(shape).float().cpu(),
                    idx.reshape(shape).cpu(),
                    ids_cpu,
                    valid_cpu,
                    think_cpu,
                    batch["row_offset"],
                )
    finally:
        for h in handles:
            h.remove()
    return collectors


# ---------------------------------------------------------------------------- tables


def _list_array(values: torch.Tensor, lengths: torch.Tensor):
    """[N, W] padded rows -> an Arrow list array of each row's first `length` entries."""
    import pyarrow as pa

    W = values.shape[1]
    inside = torch.arange(W)[None, :] < lengths[:, None]
    offsets = np.concatenate([[0], np.cumsum(lengths.numpy())])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values[inside].numpy()))


def example_table(col: LayerCollector, model_name: str, layer: int, token_rows):
    """All sampled examples of one layer as an Arrow table (see `schemas.ExampleSchema`).

    `token_rows(rows)` returns the token ids ([n, ctx_len]) of rows of the token split:
    windows keep only their place during collection and get their tokens here.
    """
    import pyarrow as pa

    parts = []
    for kind, table in (("top", col.top), ("quantile", col.sample), ("non_activating", col.silent)):
        if table is None:
            continue
        f = table.fields
        filled = table.filled()
        n_filled = filled.sum(1)
        # rank: strongest first (random order for the silent windows); slots are unordered
        score = f["activation"] if kind != "non_activating" else -table.key
        order = torch.argsort(torch.where(filled, score, -float("inf")), dim=1, descending=True, stable=True)
        rank = torch.empty_like(order)
        rank.scatter_(1, order, torch.arange(order.shape[1]).expand_as(order))
        if kind == "quantile":
            # equal-count bins over the uniform sample: 0 = weakest decile ... bins-1 = strongest
            asc = n_filled[:, None] - 1 - rank
            quantile = (asc * col.cfg.quantile_bins) // n_filled.clamp(min=1)[:, None]
        else:
            quantile = torch.full_like(rank, -1)
        feat = torch.arange(filled.shape[0])[:, None].expand_as(filled)
        m = filled
        length = f["length"][m]
        start = f["position"][m] - f["target"][m]
        row = f["row"][m]
        unique_rows, where = torch.unique(row, return_inverse=True)
        ids = torch.as_tensor(np.asarray(token_rows(unique_rows.numpy())))
        cols = (start[:, None] + torch.arange(col.cfg.window)).clamp(max=ids.shape[1] - 1)
        tokens = ids[where[:, None], cols]
        acts = f["acts"][m] if "acts" in f else torch.zeros(len(row), col.cfg.window)
        parts.append(
            {
                "kind": np.full(int(m.sum()), kind),
                "feature": feat[m].numpy(),
                "rank": rank[m].numpy(),
                "quantile": quantile[m].numpy(),
                "row": f["row"][m].numpy(),
                "position": f["position"][m].numpy(),
                "activation": f["activation"][m].numpy().astype(np.float64),
                "in_think": f["in_think"][m].numpy(),
                "target": f["target"][m].numpy(),
                "tokens": _list_array(tokens, length),
                "acts": _list_array(acts.float(), length),
            }
        )
    tables = []
    for part in parts:
        n = len(part["feature"])
        columns = {"model": pa.array([model_name] * n), "layer": pa.array(np.full(n, layer, dtype=np.int64))}
        columns.update({k: (v if isinstance(v, pa.Array) else pa.array(v)) for k, v in part.items()})
        tables.append(pa.table(columns))
    out = pa.concat_tables(tables)
    return out.sort_by([("feature", "ascending"), ("kind", "ascending"), ("rank", "ascending")])


@torch.no_grad()
def logit_effects(coder, model, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k (values, token ids) of each feature's decoder direction read through the final
    norm's gain and the unembedding: the tokens a feature's output promotes most directly."""
    unembed = model.get_output_embeddings().weight.float()  # [V, d]
    gain = model.base_model.norm.weight.float()  # [d]
    values, ids = [], []
    for chunk in coder.W_dec.float().split(4096):
        effect = (chunk * gain) @ unembed.T
        v, i = effect.topk(min(k, effect.shape[1]), dim=1)
        values.append(v)
        ids.append(i)
    return torch.cat(values), torch.cat(ids)


def feature_table(col: LayerCollector, model_name: str, layer: int, logit_values, logit_ids, tokenizer) -> pd.DataFrame:
    """One row per feature of one layer (see `schemas.FeatureSchema`)."""
    count = col.count.numpy()
    from r1interp.models import token_strings

    vocab = token_strings(tokenizer)
    names = [[vocab[i] if i < len(vocab) else f"<{i}>" for i in row] for row in logit_ids.tolist()]
    n = max(1, col.n_tokens)
    return pd.DataFrame(
        {
            "model": model_name,
            "layer": np.int64(layer),
            "feature": np.arange(len(count), dtype=np.int64),
            "n_tokens": np.int64(col.n_tokens),
            "count": count.astype(np.int64),
            "density": count / n,
            "max_act": col.act_max.numpy().astype(np.float64),
            "mean_act": np.divide(col.act_sum.numpy(), count, out=np.zeros(len(count)), where=count > 0),
            "think_fraction": np.divide(col.think_count.numpy(), count, out=np.zeros(len(count)), where=count > 0),
            "top_output_tokens": names,
            "top_output_logits": [np.round(v, 5).tolist() for v in logit_values.numpy()],
        }
    )
