"""Skip-transcoder training with EleutherAI sparsify, metrics routed to dvclive.

sparsify assembles its per-step metrics (fvu/, dead_pct/, auxk/) only when it logs to
Weights & Biases and has no logger callback, so we hand it a small stand-in `wandb`
module whose `log` writes to dvclive instead. sparsify writes its checkpoint into a
scratch directory; it is validated and moved into place only after `fit()` returns, so
an interrupted run never leaves a checkpoint that looks finished.

The distributed option runs the same training under `torchrun` with sparsify's
`distribute_modules` (each rank owns a slice of the layers; activations are all-gathered),
gloo on CPU or NCCL on GPUs.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

from r1interp.errors import ConfigError, R1InterpError
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


def sparsify_configs(tp, hookpoints: list[str], exclude_tokens: list[int], save_dir: Path, distribute: bool = False):
    """Our train params -> sparsify's TrainConfig (with its SparseCoderConfig)."""
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
        log_to_wandb=True,  # needed for sparsify to assemble metrics; routed to dvclive
        wandb_log_frequency=tp.log_every,
        save_dir=str(save_dir),
        run_name="run",
        distribute_modules=distribute,
    )


def _train_in_process(model, dataset, tp, hookpoints, exclude_tokens, scratch: Path, live, distribute=False) -> dict:
    from sparsify import Trainer

    cfg = sparsify_configs(tp, hookpoints, exclude_tokens, scratch, distribute)
    with wandb_to_dvclive(live) as shim:
        trainer = Trainer(cfg, dataset, model)
        start = time.perf_counter()
        trainer.fit()
        seconds = time.perf_counter() - start
    tokens = len(dataset) * len(dataset[0]["input_ids"])
    return {"seconds": seconds, "tokens": tokens, "tokens_per_second": tokens / seconds, "history": shim.history}


def _publish(scratch: Path, hookpoints: list[str], d_model: int, out_dir: Path) -> None:
    run = scratch / "run"
    for hookpoint in hookpoints:
        check_sparsify_coder(run / hookpoint, d_model=d_model)
    out_dir.mkdir(parents=True, exist_ok=True)
    for hookpoint in hookpoints:
        target = out_dir / hookpoint
        shutil.rmtree(target, ignore_errors=True)
        shutil.move(str(run / hookpoint), str(target))


@contextlib.contextmanager
def _scratch_for(out_dir: Path) -> Iterator[Path]:
    scratch = out_dir.parent / f".{out_dir.name}.training"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def fit(model, dataset, tp, hookpoints: list[str], exclude_tokens: list[int], out_dir: Path, live=None) -> dict:
    """Train one coder per hookpoint in a single model pass; returns timing and the metric history."""
    out_dir = Path(out_dir)
    with _scratch_for(out_dir) as scratch:
        result = _train_in_process(model, dataset, tp, hookpoints, exclude_tokens, scratch, live)
        _publish(scratch, hookpoints, model.config.hidden_size, out_dir)
    return result


# ----------------------------------------------------------------------------- distributed


def fit_distributed(job: dict, tp, hookpoints: list[str], d_model: int, out_dir: Path) -> dict:
    """Run `_rank_main` under torchrun; `job` says where the model and tokens are."""
    nproc = tp.distributed.nproc
    if len(hookpoints) % nproc:
        raise ConfigError(
            f"train.distributed.nproc ({nproc}) must divide the number of layers in the group ({len(hookpoints)}): "
            "sparsify gives every rank the same number of layers"
        )
    out_dir = Path(out_dir)
    with _scratch_for(out_dir) as scratch:
        job = {**job, "hookpoints": hookpoints, "scratch": str(scratch), "train": dataclasses.asdict(tp)}
        job_file = scratch / "job.json"
        job_file.write_text(json.dumps(job))
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            "r1interp.transcoders.train",
            str(job_file),
        ]
        start = time.perf_counter()
        proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
        if proc.returncode != 0:
            raise R1InterpError(f"distributed transcoder training failed (torchrun exited with {proc.returncode})")
        seconds = time.perf_counter() - start
        result = json.loads((scratch / "result.json").read_text())
        _publish(scratch, hookpoints, d_model, out_dir)
    result["wall_seconds_including_launch"] = seconds
    return result


def _rank_main(job_file: str) -> None:
    import torch
    import torch.distributed as dist

    from r1interp.config import TrainParams, parse_section
    from r1interp.data import load_token_split, training_rows
    from r1interp.models import load_model

    job = json.loads(Path(job_file).read_text())
    tp = parse_section(TrainParams, job["train"], "train")
    backend = tp.distributed.backend
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    device = f"cuda:{rank}" if backend == "nccl" else "cpu"
    if backend == "nccl":
        torch.cuda.set_device(rank)
    torch.set_num_threads(1)
    loaded = load_model(job["model_dir"], device=device)
    ds, _ = load_token_split(job["tokens"])
    rows = job["rows"] - job["rows"] % world
    dataset = training_rows(ds, rows, tp.seed).shard(world, rank).with_format("torch")
    live = None
    if rank == 0 and job.get("live_dir"):
        from dvclive import Live

        live = Live(dir=job["live_dir"], save_dvc_exp=False, dvcyaml=None, report=None)
    result = _train_in_process(
        loaded.model, dataset, tp, job["hookpoints"], job["exclude_tokens"], Path(job["scratch"]), live, distribute=True
    )
    if live is not None:
        live.end()
    if rank == 0:
        result["tokens"] *= world  # every rank saw its own shard
        result["tokens_per_second"] = result["tokens"] / result["seconds"]
        result["world_size"] = world
        (Path(job["scratch"]) / "result.json").write_text(json.dumps(result))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="one rank of distributed transcoder training (run by torchrun)")
    parser.add_argument("job_file")
    _rank_main(parser.parse_args().job_file)
