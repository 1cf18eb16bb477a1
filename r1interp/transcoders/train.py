"""Skip-transcoder training with EleutherAI sparsify, metrics routed to dvclive.

sparsify assembles its per-step metrics (fvu/, dead_pct/, auxk/) only when it logs to
Weights & Biases and has no logger callback, so we hand it a small stand-in `wandb`
module whose `log` writes to dvclive instead. The checkpoint is written by sparsify
into a scratch directory and moved into place (validated) only when `fit()` returns,
so an interrupted run never leaves a checkpoint that looks finished.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

from r1interp.transcoders.layout import check_sparsify_coder


class _DvcLiveWandb(types.ModuleType):
    """Just enough of the `wandb` module for sparsify's Trainer.fit()."""

    def __init__(self, live):
        super().__init__("wandb")
        self._live = live
        self.history: list[dict] = []

    def init(self, **_: object) -> None:
        return None

    def log(self, info: dict, step: int) -> None:
        self.history.append({"step": step, **info})
        if self._live is None:
            return
        self._live.step = step
        for key, value in info.items():
            # "fvu/layers.0.mlp" -> "fvu/layers.0.mlp" (dvclive nests by slash)
            self._live.log_metric(f"train/{key}", float(value), plot=True)
        self._live.next_step()


@contextlib.contextmanager
def wandb_to_dvclive(live) -> Iterator[_DvcLiveWandb]:
    shim = _DvcLiveWandb(live)
    saved = sys.modules.get("wandb")
    sys.modules["wandb"] = shim
    try:
        yield shim
    finally:
        if saved is None:
            sys.modules.pop("wandb", None)
        else:
            sys.modules["wandb"] = saved


def sparsify_configs(tp, hookpoints: list[str], exclude_tokens: list[int], save_dir: Path, log: bool):
    """Our train params -> sparsify's (SparseCoderConfig, TrainConfig)."""
    from sparsify import SparseCoderConfig, TrainConfig

    coder = SparseCoderConfig(
        activation="topk",
        expansion_factor=tp.expansion_factor,
        num_latents=tp.num_latents,
        k=tp.k,
        transcode=True,
        skip_connection=True,
    )
    return TrainConfig(
        coder,
        batch_size=tp.batch_size,
        loss_fn="fvu",
        optimizer=tp.optimizer,
        lr=tp.lr or None,
        lr_warmup_steps=tp.lr_warmup_steps,
        auxk_alpha=tp.auxk_alpha,
        dead_feature_threshold=tp.dead_feature_threshold,
        exclude_tokens=exclude_tokens,
        hookpoints=hookpoints,
        init_seeds=[tp.seed],
        save_every=10**9,  # one save at the end; partial saves are never trusted anyway
        log_to_wandb=log,
        wandb_log_frequency=tp.log_every,
        save_dir=str(save_dir),
        run_name="run",
    )


def fit(model, dataset, tp, hookpoints: list[str], exclude_tokens: list[int], out_dir: Path, live=None) -> dict:
    """Train one coder per hookpoint in a single model pass; returns timing and the metric history."""
    from sparsify import Trainer

    out_dir = Path(out_dir)
    scratch = out_dir.parent / f".{out_dir.name}.training"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        cfg = sparsify_configs(tp, hookpoints, exclude_tokens, scratch, log=True)
        with wandb_to_dvclive(live) as shim:
            trainer = Trainer(cfg, dataset, model)
            start = time.perf_counter()
            trainer.fit()
            seconds = time.perf_counter() - start
        run = scratch / "run"
        for hookpoint in hookpoints:
            check_sparsify_coder(run / hookpoint, d_model=model.config.hidden_size)
        out_dir.mkdir(parents=True, exist_ok=True)
        for hookpoint in hookpoints:
            target = out_dir / hookpoint
            shutil.rmtree(target, ignore_errors=True)
            shutil.move(str(run / hookpoint), str(target))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    tokens = len(dataset) * len(dataset[0]["input_ids"])
    return {"seconds": seconds, "tokens": tokens, "tokens_per_second": tokens / seconds, "history": shim.history}
