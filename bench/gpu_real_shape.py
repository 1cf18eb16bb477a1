"""Real-shape GPU benchmark: DeepSeek-R1-Distill-Qwen-1.5B's shape with random weights, run once on a GPU.

What it measures (each section in its own try/except; results are written to `--out` after every section):
  train        skip-transcoder training with sparsify, all 28 layers in the real profile's layer groups
               (4 groups of 7 MLPs, 65,536 latents, k=32): tokens/s per group, MFU, peak memory; plus group 0
               once more with an fp32 model forward (what `r1interp.models.load_model` loads) for comparison
  activations  `r1interp.activations.collect` (MLP hooks + transcoder encode + the per-feature tables) over
               ~256k tokens: tokens/s; plus the bare forward + encoders alone (GPU only) for comparison
  attribution  circuit-tracer (TransformerLens backend, as `r1interp.graphs.replacement`) with the trained
               transcoders, one prompt each at 512 / 1024 / 2048 tokens: seconds, circuit-tracer's phase
               times and torch.cuda.max_memory_allocated per prompt

Nothing downloads: the model is a `Qwen2ForCausalLM` built from a `Qwen2Config` with the real widths and
random weights, the tokenizer a word-level one covering the whole vocabulary, the tokens random ids.
It is never needed by the tests. `--smoke` runs the same code paths at tiny widths on a CPU (< 2 min).

    python bench/gpu_real_shape.py --smoke --out /tmp/smoke.json          # CPU, tiny widths, ~15 s
    python bench/gpu_real_shape.py --out "$OUT/gpu_real_shape.json"        # one GPU, ~5 min (--total-budget 300)

On the GPU machine the dependencies the image lacks come as wheels (`.whl/`, git-ignored, ~23 MB), installed into
a target directory that shadows the image's transformers 5 / huggingface_hub 1 / tokenizers 0.23 (circuit-tracer
0.5.0 pins transformers<=4.57.3 and huggingface_hub<1.0; we run 4.57.3 / 0.36.2 / 0.22.2 as on the CPU machines):

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \\
      && PYTHONPATH=/tmp/site python3 -u bench/gpu_real_shape.py --out "$OUT/gpu_real_shape.json"

Every number is for random weights: throughput and memory depend on the shapes, not the values, except that
attribution's active-feature count is exactly k per token and layer (TopK) either way.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import logging
import math
import os
import platform
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------- shapes and defaults

# DeepSeek-R1-Distill-Qwen-1.5B's config.json (rope 1e4, untied embeddings). max_position_embeddings is 131072
# there; the benchmark never goes past 2048 tokens, and nothing here allocates by it, so 4096 is enough.
REAL_SHAPE = dict(
    hidden=1536,
    intermediate=8960,
    layers=28,
    heads=12,
    kv_heads=2,
    vocab=151936,
    max_positions=4096,
    rope_theta=10000.0,
    rms_norm_eps=1e-6,
)
SMOKE_SHAPE = dict(
    hidden=64,
    intermediate=128,
    layers=2,
    heads=4,
    kv_heads=2,
    vocab=512,
    max_positions=512,
    rope_theta=10000.0,
    rms_norm_eps=1e-6,
)

# The real profile's keys that matter here, as in configs/r1-distill-qwen-1.5b.yaml (read from there instead
# when that file exists, so the benchmark follows the profile).
PROFILE_FILE = ROOT / "configs" / "r1-distill-qwen-1.5b.yaml"
PROFILE_FALLBACK = {
    "tokens": {"ctx_len": 1024},
    "train": {
        "layer_groups": ["0-6", "7-13", "14-20", "21-27"],
        "num_latents": 65536,
        "k": 32,
        "lr": 0.0,
        "batch_size": 8,
        "dead_feature_threshold": 10_000_000,
    },
    "activations": {"batch_size": 8},
    "graphs": {"max_feature_nodes": 4096, "batch_size": 256},
}

H200_BF16_DENSE_TFLOPS = 989.5  # NVIDIA H200 SXM spec: 1,979 TFLOP/s bf16 "with sparsity", half of it dense

FLOP_FORMULAS = {
    "model_forward_per_token": "2*P_fwd + n_layers*2*2*d_attn*(T+1)/2   (P_fwd = all parameters except the input "
    "embedding, lm_head included: sparsify runs the whole CausalLM; the second term is "
    "causal attention QK^T and AV over T tokens of context)",
    "transcoder_train_per_token_per_layer": "2*d*M (encoder fwd, dense) + 2*d*d fwd + 2*d*d bwd (W_skip) + "
    "2*k*d (sparse decode fwd) + 2*k*d + 2*k*d (sparse W_dec and W_enc "
    "grads: sparsify's fused encoder backward touches only the k selected "
    "rows) = 2dM + 4d^2 + 6kd; AuxK adds nothing here (no latent is dead "
    "within dead_feature_threshold tokens)",
    "train_step_per_token": "model_forward + n_coders_in_group * transcoder_train (optimizer step not counted)",
    "activations_per_token": "model_forward + n_layers * 2*d*M (encoders); the CPU-side tables are not FLOPs",
    "mfu": "achieved FLOP/s / peak; peak = --peak-tflops (default: H200 bf16 dense spec 989.5 TFLOP/s) for every "
    "section, also the fp32 ones (TF32 dense peak is half of it)",
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--smoke", action="store_true", help="tiny widths, CPU-friendly: the same code paths in < 2 min")
    p.add_argument(
        "--out", default=str(ROOT / "bench" / "gpu_real_shape.json"), help="results JSON (written after every section)"
    )
    p.add_argument("--device", default="auto", help="auto | cuda | cpu")
    p.add_argument(
        "--dtype",
        default="auto",
        choices=("auto", "bf16", "fp32"),
        help="model dtype for training and activations (auto: bf16 on CUDA, fp32 on CPU)",
    )
    p.add_argument(
        "--attr-dtype",
        default="fp32",
        choices=("fp32", "bf16"),
        help="circuit-tracer dtype (fp32: what r1interp.graphs.replacement.load_replacement_model uses)",
    )
    p.add_argument("--sections", default="train,activations,attribution")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: 1 with --smoke, else all cores)")
    p.add_argument(
        "--workdir",
        default=None,
        help="scratch for the circuit-tracer files (~23 GB at the real shape; "
        "default: a new directory under $TMPDIR, removed at the end). Never under $OUT",
    )
    p.add_argument("--peak-tflops", type=float, default=H200_BF16_DENSE_TFLOPS)
    p.add_argument(
        "--total-budget",
        type=float,
        default=None,
        help="seconds for the whole run, model init included (default 300; smoke 110)",
    )
    # train
    p.add_argument("--train-steps", type=int, default=None, help="steps per layer group (default 20; smoke 3)")
    p.add_argument(
        "--train-warmup-steps", type=int, default=None, help="first steps left out of the rate (default 3; smoke 1)"
    )
    p.add_argument(
        "--train-budget", type=float, default=None, help="seconds per group, then stop (default 15; smoke 30)"
    )
    p.add_argument(
        "--fp32-steps",
        type=int,
        default=None,
        help="steps of the fp32-model comparison on group 0 (0: skip; default 10; smoke 2)",
    )
    p.add_argument(
        "--ctx-len", type=int, default=None, help="tokens per row (default: the profile's tokens.ctx_len, 1024)"
    )
    p.add_argument(
        "--train-batch", type=int, default=None, help="rows per step (default: the profile's train.batch_size, 8)"
    )
    # activations
    p.add_argument(
        "--act-tokens", type=int, default=None, help="token budget of the collection (default 262144; smoke 1024)"
    )
    p.add_argument(
        "--act-budget", type=float, default=None, help="seconds for collect(), then stop (default 40; smoke 30)"
    )
    p.add_argument(
        "--act-batch", type=int, default=None, help="rows per batch (default: the profile's activations.batch_size, 8)"
    )
    # attribution
    p.add_argument("--prompt-lengths", default=None, help="comma-separated (default 512,1024,2048; smoke 16,32,48)")
    p.add_argument(
        "--max-feature-nodes",
        type=int,
        default=None,
        help="circuit-tracer max_feature_nodes (default 512, an eighth of the profile's 4096, to fit the "
        "time budget: phase 4 is linear in it and is extrapolated; GPU memory does not grow with "
        "it, the CPU edge matrix does; smoke 24)",
    )
    p.add_argument(
        "--attr-batch", type=int, default=None, help="circuit-tracer batch_size (default: the profile's 256; smoke 8)"
    )
    p.add_argument("--attr-budget", type=float, default=None, help="seconds for all prompts (default 150; smoke 40)")
    p.add_argument(
        "--min-attr-batch",
        type=int,
        default=32,
        help="on a CUDA OOM a prompt is retried with half the batch size, down to this",
    )
    p.add_argument("--fake-oom-batch", type=int, default=0, help=argparse.SUPPRESS)  # tests the OOM retry on a CPU
    args = p.parse_args(argv)
    smoke = args.smoke

    def pick(name, real, tiny):
        if getattr(args, name) is None:
            setattr(args, name, tiny if smoke else real)

    pick("total_budget", 300.0, 110.0)
    pick("train_steps", 20, 3)
    pick("train_warmup_steps", 3, 1)
    pick("train_budget", 15.0, 30.0)
    pick("fp32_steps", 10, 2)
    pick("act_tokens", 262_144, 1024)
    pick("act_budget", 40.0, 30.0)
    pick("prompt_lengths", "512,1024,2048", "16,32,48")
    pick("max_feature_nodes", 512, 24)
    pick("attr_budget", 150.0, 40.0)
    args.prompt_lengths = [int(x) for x in str(args.prompt_lengths).split(",") if x.strip()]
    if not args.threads:
        args.threads = 1 if smoke else (os.cpu_count() or 1)
    return args


ARGS = parse_args()

# Before r1interp, torch or numpy load: r1interp pins CPU numerics (AVX2 kernels, MKL CBWR, ...) on import for
# byte-identical DVC artifacts; a benchmark wants the machine's own kernels (r1interp/numerics.py: native mode).
os.environ["R1INTERP_NUMERICS"] = "native"
os.environ.setdefault("PYTHONUNBUFFERED", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, str(ARGS.threads))

sys.path.insert(0, str(ROOT))

import r1interp  # noqa: E402,F401  (numerics: native, see above)

# isort: split
import torch  # noqa: E402

STARTED = time.perf_counter()
with contextlib.suppress(AttributeError, ValueError):
    sys.stdout.reconfigure(line_buffering=True)  # progress lines arrive as they happen, also through a pipe


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - STARTED:7.1f}s] {msg}", flush=True)


# ---------------------------------------------------------------------------- budgets and bookkeeping


class SectionTimeout(BaseException):
    """Raised by SIGALRM when a section (or one prompt) overruns its budget. A BaseException so that no
    library's `except Exception` swallows it."""


class BudgetExceeded(Exception):
    """Raised from a forward pre-hook to end a training run early (checked between steps)."""


@contextlib.contextmanager
def alarm(seconds: float | None):
    """Interrupt the block after `seconds` (main thread; Python code between CUDA calls sees it)."""
    if not seconds or seconds <= 0 or not hasattr(signal, "setitimer"):
        yield
        return

    def handler(signum, frame):
        raise SectionTimeout(f"interrupted after the {seconds:.0f} s budget")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def remaining() -> float:
    return ARGS.total_budget - (time.perf_counter() - STARTED)


def within(budget: float, reserve: float = 0.0) -> float:
    """A section's budget cut to what the whole run has left (keeping `reserve` seconds for later sections)."""
    return max(1.0, min(budget, remaining() - reserve))


def sync(device) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def gib(n_bytes: float | int | None):
    return None if n_bytes is None else round(n_bytes / 2**30, 3)


def reset_peak(device) -> None:
    gc.collect()
    if str(device).startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak(device) -> dict:
    out = {"cpu_max_rss_gib": gib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)}
    if str(device).startswith("cuda"):
        out.update(
            peak_allocated_gib=gib(torch.cuda.max_memory_allocated()),
            peak_reserved_gib=gib(torch.cuda.max_memory_reserved()),
            allocated_now_gib=gib(torch.cuda.memory_allocated()),
        )
    return out


def error_record(exc: BaseException) -> dict:
    kind = type(exc).__name__
    oom = "out of memory" in str(exc).lower() or kind == "OutOfMemoryError"
    return {
        "status": "timeout" if isinstance(exc, SectionTimeout) else ("oom" if oom else "error"),
        "error": f"{kind}: {str(exc)[:2000]}",
        "traceback": traceback.format_exc(limit=12)[-4000:],
    }


class Results:
    def __init__(self, path: str):
        self.path = Path(path)
        self.data: dict = {
            "benchmark": "bench/gpu_real_shape.py",
            "smoke": ARGS.smoke,
            "flop_formulas": FLOP_FORMULAS,
            "sections": {},
        }

    def write(self) -> None:
        self.data["wall_seconds"] = round(time.perf_counter() - STARTED, 2)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str) + "\n")
        tmp.replace(self.path)


# ---------------------------------------------------------------------------- model, tokenizer, params


def build_tokenizer(vocab_size: int):
    """A word-level tokenizer with one token per model id (`<tN>`), so every id the model can emit decodes."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(vocab={f"<t{i}>": i for i in range(vocab_size)}, unk_token="<t0>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<t0>",
        bos_token="<t1>",
        eos_token="<t2>",
        pad_token="<t3>",
        model_max_length=1 << 20,
    )


def build_model(shape: dict, device: str, dtype: torch.dtype):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=shape["vocab"],
        hidden_size=shape["hidden"],
        intermediate_size=shape["intermediate"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"],
        num_key_value_heads=shape["kv_heads"],
        max_position_embeddings=shape["max_positions"],
        rope_theta=shape["rope_theta"],
        rms_norm_eps=shape["rms_norm_eps"],
        tie_word_embeddings=False,
        use_sliding_window=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
        attn_implementation="sdpa",
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM(config)
    return model.to(dtype).eval().requires_grad_(False)


def profile_params():
    """Our Params for the real profile (configs/r1-distill-qwen-1.5b.yaml, else the copy above)."""
    from r1interp.config import Params, _deep_merge, merge_override, parse_params, to_dict

    problem = "not found"
    if PROFILE_FILE.is_file():
        try:
            return parse_params(merge_override(PROFILE_FILE), str(PROFILE_FILE)), str(PROFILE_FILE.relative_to(ROOT))
        except Exception as exc:  # noqa: BLE001  (a file being edited must not cost the GPU run)
            problem = f"unusable: {exc}"
    return (
        parse_params(_deep_merge(Params, to_dict(Params()), PROFILE_FALLBACK)),
        f"built-in copy of the profile ({PROFILE_FILE.relative_to(ROOT)} {problem})",
    )


def model_flops(model, ctx_len: int) -> dict:
    cfg = model.config
    embed = model.get_input_embeddings().weight.numel()
    p_fwd = sum(p.numel() for p in model.parameters()) - embed
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    d_attn = cfg.num_attention_heads * head_dim
    attn = cfg.num_hidden_layers * 2 * 2 * d_attn * (ctx_len + 1) / 2
    return {
        "params_total": p_fwd + embed,
        "params_forward": p_fwd,
        "forward_flops_per_token": 2 * p_fwd + attn,
        "attention_flops_per_token": attn,
    }


def coder_train_flops(d: int, m: int, k: int) -> float:
    return 2 * d * m + 4 * d * d + 6 * k * d


def mfu(flops_per_second: float) -> float | None:
    if not str(DEVICE).startswith("cuda"):
        return None  # no meaningful peak for a CPU smoke run
    return round(flops_per_second / (ARGS.peak_tflops * 1e12), 4)


# ---------------------------------------------------------------------------- sections


class StepClock:
    """Per-step wall times of sparsify's Trainer.fit(), from a forward pre-hook on the model (one model call
    per step with loss_fn=fvu); raises BudgetExceeded at the start of a step once `budget` seconds have passed."""

    def __init__(self, model, budget: float):
        self.budget, self.times, self.end = budget, [], None
        self.handle = model.register_forward_pre_hook(self._pre)

    def _pre(self, module, args):
        sync(DEVICE)
        now = time.perf_counter()
        if self.times and now - self.times[0] > self.budget:
            self.end = now
            raise BudgetExceeded(f"stopped after {len(self.times)} steps: {self.budget:.0f} s budget")
        self.times.append(now)

    def finish(self) -> None:
        sync(DEVICE)
        if self.end is None:
            self.end = time.perf_counter()
        self.handle.remove()

    def rate(self, warmup: int) -> tuple[int, float]:
        """(steps counted, seconds) after the first `warmup` steps (all steps when too few ran)."""
        n = len(self.times)
        w = warmup if n > warmup else 0
        return n - w, self.end - self.times[w] if n else 0.0


def random_rows(rows: int, ctx: int, vocab: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, vocab, (rows, ctx), generator=g)
    ids[:, 0] = 1  # BOS, as packed real rows start
    return ids


def train_group(model, tp, layers: list[int], steps: int, budget: float, seed: int) -> tuple[dict, dict]:
    """One layer group through sparsify's Trainer, configured by our `sparsify_configs` and with our wandb->dvclive
    shim (as `r1interp.transcoders.train.fit` does). Not through `fit` itself: at this width its final checkpoint
    (coders + Adam state, ~17 GB per 7-layer group) and the validation read-back are disk I/O, not training, and
    four of them would not fit the GPU machine's disk; so `save` is a no-op here and the coders stay in memory."""
    from datasets import Dataset
    from sparsify import Trainer

    from r1interp.transcoders.train import sparsify_configs, wandb_to_dvclive

    ctx, batch = ARGS.ctx_len, tp.batch_size
    ids = random_rows(steps * batch, ctx, model.config.vocab_size, seed)
    dataset = Dataset.from_dict({"input_ids": ids.numpy()}).with_format("torch")
    hookpoints = [f"layers.{layer}.mlp" for layer in layers]
    reset_peak(DEVICE)
    with tempfile.TemporaryDirectory(prefix="sparsify-", dir=WORKDIR) as scratch, wandb_to_dvclive(None) as shim:
        cfg = sparsify_configs(tp, hookpoints, [], Path(scratch))
        t0 = time.perf_counter()
        trainer = Trainer(cfg, dataset, model)
        sync(DEVICE)
        init_s = time.perf_counter() - t0
        trainer.save = lambda: None  # see the docstring
        clock = StepClock(model, budget)
        stopped = None
        try:
            trainer.fit()
        except BudgetExceeded as exc:
            stopped = str(exc)
        finally:
            clock.finish()
        coders = {int(name.split(".")[1]): sae.eval().requires_grad_(False) for name, sae in trainer.saes.items()}
        history = shim.history
        del trainer
    n, seconds = clock.rate(ARGS.train_warmup_steps)
    tokens = n * batch * ctx
    tps = tokens / seconds if seconds > 0 else None
    d = model.config.hidden_size
    m = next(iter(coders.values())).num_latents
    per_token = MODEL_FLOPS["forward_flops_per_token"] + len(layers) * coder_train_flops(d, m, tp.k)
    step_times = [round(b - a, 4) for a, b in zip(clock.times, clock.times[1:] + [clock.end], strict=True)]
    fvu = {k: v for k, v in (history[-1] if history else {}).items() if k.startswith("fvu/")}
    rec = {
        "layers": layers,
        "num_latents": m,
        "k": tp.k,
        "rows_per_step": batch,
        "ctx_len": ctx,
        "tokens_per_step": batch * ctx,
        "steps_run": len(clock.times),
        "steps_counted": n,
        "seconds_counted": round(seconds, 3),
        "tokens_per_second": round(tps, 1) if tps else None,
        "trainer_init_seconds": round(init_s, 3),
        "first_step_seconds": step_times[0] if step_times else None,
        "step_seconds": step_times,
        "train_flops_per_token": per_token,
        "achieved_tflops": round(tps * per_token / 1e12, 2) if tps else None,
        "mfu": mfu(tps * per_token) if tps else None,
        "stopped_early": stopped,
        "last_logged_mean_fvu": round(sum(fvu.values()) / len(fvu), 4) if fvu else None,
        "model_dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        **peak(DEVICE),
    }
    return rec, coders


def section_train(res: Results, sec: dict) -> None:
    from r1interp.transcoders import group_layers

    tp = dataclasses.replace(
        PARAMS.train,
        batch_size=ARGS.train_batch or PARAMS.train.batch_size,
        log_every=max(1, min(PARAMS.train.log_every, ARGS.train_steps)),
    )
    if ARGS.smoke:
        tp = dataclasses.replace(tp, num_latents=1024, layer_groups=[str(i) for i in range(SHAPE["layers"])])
    sec["config"] = {
        "layer_groups": tp.layer_groups,
        "num_latents": tp.num_latents,
        "k": tp.k,
        "optimizer": tp.optimizer,
        "lr": tp.lr or "auto (sparsify: 2e-4 / sqrt(M / 2^14))",
        "batch_size_rows": tp.batch_size,
        "ctx_len": ARGS.ctx_len,
        "steps_per_group": ARGS.train_steps,
        "warmup_steps_not_counted": ARGS.train_warmup_steps,
        "budget_seconds_per_group": ARGS.train_budget,
        "dead_feature_threshold": tp.dead_feature_threshold,
        "auxk_alpha": tp.auxk_alpha,
        "transcoders": "skip (transcode=True, skip_connection=True), TopK",
        "coder_dtype": "fp32 params, bf16 autocast in sparsify's SparseCoder.forward on CUDA",
        "fp32_matmul_precision": torch.get_float32_matmul_precision(),
    }
    sec["groups"] = {}
    sec["status"] = "running"
    res.write()
    n_groups = len(tp.layer_groups)
    for gi, group in enumerate(tp.layer_groups):
        layers = group_layers(group, SHAPE["layers"])
        # keep time for the later sections: ~45% of the run for training
        budget = within(ARGS.train_budget, reserve=0.55 * ARGS.total_budget * (1 - gi / n_groups))
        log(
            f"train group {group}: {len(layers)} coders x {tp.num_latents} latents, {ARGS.train_steps} steps "
            f"(budget {budget:.0f} s)"
        )
        try:
            with alarm(budget + 90):  # sparsify init + a stuck step: the pre-hook stop comes first normally
                rec, coders = train_group(MODEL, tp, layers, ARGS.train_steps, budget, seed=gi)
            CODERS.update(coders)
            rec["status"] = "ok"
            log(
                f"  {rec['tokens_per_second']} tok/s, MFU {rec['mfu']}, peak {rec.get('peak_allocated_gib')} GiB, "
                f"steps {rec['steps_run']}, first step {rec['first_step_seconds']} s"
            )
        except (Exception, SectionTimeout) as exc:
            rec = error_record(exc)
            log(f"  group {group} failed: {rec['error'][:300]}")
        sec["groups"][group] = rec
        res.write()
    # The same group 0 with the model in fp32: r1interp.models.load_model always loads fp32, so this is the rate
    # the pipeline's train stage would see on a GPU today (bf16 above is what sparsify's own CLI uses).
    if ARGS.fp32_steps and remaining() > 0.5 * ARGS.total_budget:
        layers = group_layers(tp.layer_groups[0], SHAPE["layers"])
        budget = within(ARGS.train_budget, reserve=0.5 * ARGS.total_budget)
        log(f"train group {tp.layer_groups[0]} again with an fp32 model: {ARGS.fp32_steps} steps")
        was = next(MODEL.parameters()).dtype
        try:
            MODEL.float()
            with alarm(budget + 90):
                rec, coders = train_group(MODEL, tp, layers, ARGS.fp32_steps, budget, seed=100)
            del coders
            rec["status"] = "ok"
            log(f"  fp32 model: {rec['tokens_per_second']} tok/s, MFU {rec['mfu']}")
        except (Exception, SectionTimeout) as exc:
            rec = error_record(exc)
            log(f"  fp32 comparison failed: {rec['error'][:300]}")
        finally:
            MODEL.to(was)
            reset_peak(DEVICE)
        sec["fp32_model_group0"] = rec
    elif ARGS.fp32_steps:
        sec["fp32_model_group0"] = {"status": "skipped", "reason": "less than half the total budget left"}
    ok = [g for g in sec["groups"].values() if g.get("status") == "ok" and g.get("tokens_per_second")]
    if ok:
        # all 28 layers once: a token passes every group, so the groups' times add up
        sec["all_layers_tokens_per_second"] = (
            round(1 / sum(1 / g["tokens_per_second"] for g in ok), 1) if len(ok) == len(sec["groups"]) else None
        )
    sec["status"] = "ok" if len(ok) == len(sec["groups"]) else "partial"


def ensure_coders(tp_coder_cfg) -> list[int]:
    """Every layer gets a coder: trained ones from the train section, else sparsify's random init."""
    from sparsify import SparseCoder

    missing = [layer for layer in range(SHAPE["layers"]) if layer not in CODERS]
    for layer in missing:
        torch.manual_seed(1000 + layer)
        CODERS[layer] = (
            SparseCoder(SHAPE["hidden"], tp_coder_cfg, DEVICE, dtype=torch.float32).eval().requires_grad_(False)
        )
    return missing


def coder_config():
    from r1interp.transcoders.train import sparsify_configs

    tp = PARAMS.train if not ARGS.smoke else dataclasses.replace(PARAMS.train, num_latents=1024)
    return sparsify_configs(tp, ["layers.0.mlp"], [], Path(WORKDIR)).sae


@torch.no_grad()
def bare_encode_rate(model, coders, ids: torch.Tensor, batch: int, max_batches: int) -> dict:
    """The forward pass and every encoder alone (what any activation reader must do at least)."""
    from r1interp.transcoders.splice import mlp_modules

    captured = {}
    mlps = mlp_modules(model)
    handles = [
        mlps[layer].register_forward_hook(lambda m, i, o, layer=layer: captured.__setitem__(layer, i[0]))
        for layer in coders
    ]
    times = []
    try:
        for b in range(min(max_batches, len(ids) // batch)):
            sync(DEVICE)
            t0 = time.perf_counter()
            x_ids = ids[b * batch : (b + 1) * batch].to(DEVICE)
            model(x_ids)
            for layer, coder in coders.items():
                x = captured.pop(layer)
                coder.encode(x.reshape(-1, x.shape[-1]).to(coder.dtype))
            sync(DEVICE)
            times.append(time.perf_counter() - t0)
    finally:
        for h in handles:
            h.remove()
    counted = times[1:] if len(times) > 1 else times
    tokens = len(counted) * batch * ids.shape[1]
    tps = tokens / sum(counted) if counted else None
    d, m = SHAPE["hidden"], next(iter(coders.values())).num_latents
    per_token = MODEL_FLOPS_ACT["forward_flops_per_token"] + len(coders) * 2 * d * m
    return {
        "batches": len(times),
        "batches_counted": len(counted),
        "tokens_per_second": round(tps, 1) if tps else None,
        "flops_per_token": per_token,
        "mfu": mfu(tps * per_token) if tps else None,
    }


def section_activations(res: Results, sec: dict) -> None:
    from r1interp.activations import collect

    cfg = dataclasses.replace(PARAMS.activations, batch_size=ARGS.act_batch or PARAMS.activations.batch_size)
    if ARGS.smoke:
        cfg = dataclasses.replace(cfg, window=min(cfg.window, ARGS.ctx_len))
    missing = ensure_coders(coder_config())
    ctx, batch = ARGS.ctx_len, cfg.batch_size
    rows = max(batch, ARGS.act_tokens // ctx)
    ids = random_rows(rows, ctx, SHAPE["vocab"], seed=7)
    think = torch.rand(rows, ctx, generator=torch.Generator().manual_seed(8)) < 0.8
    budget = within(ARGS.act_budget, reserve=0.45 * ARGS.total_budget)
    sec["config"] = {
        "layers": len(CODERS),
        "random_init_layers": missing,
        "ctx_len": ctx,
        "rows_per_batch": batch,
        "token_budget": rows * ctx,
        "budget_seconds": round(budget, 1),
        "window": cfg.window,
        "top_n": cfg.top_n,
        "quantile_slots": cfg.quantile_bins * cfg.per_quantile,
        "non_activating": cfg.non_activating,
        "model_dtype": str(next(MODEL.parameters()).dtype),
        "coder_dtype": "fp32 (as load_coders reads them); encode runs outside autocast",
        "cpu_threads": torch.get_num_threads(),
    }
    sec["status"] = "running"
    res.write()

    done = {"rows": 0, "first": None}
    deadline = time.perf_counter() + budget

    def batches():
        # collect() allocates its per-feature slot tables (every layer) before asking for the first batch
        done["first"] = time.perf_counter()
        for start in range(0, rows, batch):
            if time.perf_counter() > deadline:
                return
            chunk = ids[start : start + batch]
            done["rows"] += len(chunk)
            yield {"input_ids": chunk.to(DEVICE), "in_think": think[start : start + batch], "row_offset": start}

    reset_peak(DEVICE)
    log(f"activations: collect() over up to {rows * ctx} tokens, {len(CODERS)} layers (budget {budget:.0f} s)")
    t0 = time.perf_counter()
    with alarm(budget + 60):
        collectors = collect(MODEL, CODERS, batches(), cfg, seed=0, progress=False)
    sync(DEVICE)
    seconds = time.perf_counter() - t0
    tokens = done["rows"] * ctx
    active = sum(int((c.count > 0).sum()) for c in collectors.values())
    del collectors
    streaming = t0 + seconds - done["first"] if done["first"] else None
    sec["collect"] = {
        "tokens": tokens,
        "seconds": round(seconds, 3),
        "tokens_per_second": round(tokens / seconds, 1),
        "table_allocation_seconds": round(done["first"] - t0, 3) if done["first"] else None,
        "tokens_per_second_after_allocation": round(tokens / streaming, 1) if streaming else None,
        "stopped_by_budget": done["rows"] < rows,
        "features_seen_active": active,
        **peak(DEVICE),
    }
    log(f"  collect: {sec['collect']['tokens_per_second']} tok/s over {tokens} tokens")
    res.write()
    reset_peak(DEVICE)
    with alarm(within(30.0) + 30):
        sec["bare_forward_and_encode"] = bare_encode_rate(
            MODEL, CODERS, ids, batch, max_batches=9 if not ARGS.smoke else 3
        )
    sec["bare_forward_and_encode"].update(peak(DEVICE))
    log(
        f"  bare forward+encode: {sec['bare_forward_and_encode']['tokens_per_second']} tok/s, "
        f"MFU {sec['bare_forward_and_encode']['mfu']}"
    )
    sec["status"] = "ok"


class PhaseLog(logging.Filter):
    """Keeps circuit-tracer's 'attribution' logger lines (phase timings) while attribute(verbose=True) prints them."""

    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def filter(self, record):
        self.lines.append(record.getMessage())
        return True

    def phases(self) -> dict:
        import re

        out = {}
        for line in self.lines:
            m = re.match(
                r"(Precomputation|Forward pass|Logit attributions|Feature attributions|"
                r"Attribution) completed in ([\d.]+)s",
                line,
            ) or re.match(r"(Input vectors) built in ([\d.]+)s", line)
            if m:
                out[m.group(1).lower().replace(" ", "_") + "_s"] = float(m.group(2))
            m = re.match(r"Found (\d+) active features", line)
            if m:
                out["active_features"] = int(m.group(1))
        return out


def write_ct_set(coders: dict, ct_dir: Path, k: int) -> float:
    """Our circuit-tracer layout (`r1interp.transcoders.layout`): layer_N.safetensors with sparsify's keys renamed
    by SPARSIFY_TO_CT, and write_circuit_tracer_config. Written straight from the coders in memory (the transcoders
    stage goes through sparsify checkpoints on disk first: twice the I/O, ~45 GB here)."""
    from safetensors.torch import save_file

    from r1interp.transcoders.layout import SPARSIFY_TO_CT, write_circuit_tracer_config

    ct_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    t0 = time.perf_counter()
    for layer, coder in sorted(coders.items()):
        tensors = {
            SPARSIFY_TO_CT[name]: t.detach().to("cpu", torch.float32).contiguous()
            for name, t in coder.state_dict().items()
            if name in SPARSIFY_TO_CT
        }
        files[layer] = f"layer_{layer}.safetensors"
        save_file(tensors, str(ct_dir / files[layer]))
        del tensors
    write_circuit_tracer_config(ct_dir, files, scan="r1interp/bench-real-shape", k=k)
    return time.perf_counter() - t0


def load_replacement(model_dir: Path, ct_dir: Path, dtype: torch.dtype, n_ctx: int):
    """`r1interp.graphs.replacement.load_replacement_model`, step for step, except that the HF model object is
    handed to TransformerLens (`hf_model=`, `tokenizer=`) instead of being read back from a 7 GB safetensors
    directory, and `n_ctx` is passed (TransformerLens caps Qwen2 at 2048 positions otherwise)."""
    import transformer_lens.supported_models as supported

    from r1interp.graphs.replacement import TopK
    from r1interp.transcoders.layout import read_circuit_tracer_config

    model_dir, ct_dir = str(Path(model_dir).resolve()), str(Path(ct_dir).resolve())
    config = read_circuit_tracer_config(ct_dir)
    if model_dir not in supported.OFFICIAL_MODEL_NAMES:
        supported.OFFICIAL_MODEL_NAMES.append(model_dir)

    from circuit_tracer import ReplacementModel
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)  # TL re-reads it by name_or_path (to add a BOS variant)
    rm = ReplacementModel.from_pretrained(
        model_dir,
        ct_dir,
        backend="transformerlens",
        device=torch.device(DEVICE),
        dtype=dtype,
        hf_model=MODEL,
        tokenizer=tokenizer,
        n_ctx=n_ctx,
    )
    k = int(config["activation"]["k"])
    for transcoder in rm.transcoders.transcoders:
        transcoder.activation_function = TopK(k)
    return rm


def section_attribution(res: Results, sec: dict) -> None:
    from circuit_tracer import attribute
    from circuit_tracer.graph import compute_graph_scores

    gp = PARAMS.graphs
    batch_size = ARGS.attr_batch or (8 if ARGS.smoke else gp.batch_size)
    dtype = torch.float32 if ARGS.attr_dtype == "fp32" else torch.bfloat16
    missing = ensure_coders(coder_config())
    k = next(iter(CODERS.values())).cfg.k
    lengths = sorted(ARGS.prompt_lengths)
    sec["config"] = {
        "backend": "transformerlens",
        "dtype": ARGS.attr_dtype,
        "max_feature_nodes": ARGS.max_feature_nodes,
        "profile_max_feature_nodes": gp.max_feature_nodes,
        "batch_size": batch_size,
        "max_n_logits": gp.max_n_logits,
        "desired_logit_prob": gp.desired_logit_prob,
        "lazy_decoder": True,
        "offload": None,
        "random_init_layers": missing,
        "k": k,
        "fp32_matmul_precision": torch.get_float32_matmul_precision(),
    }
    sec["status"] = "running"
    res.write()

    model_dir, ct_dir = Path(WORKDIR) / "model", Path(WORKDIR) / "circuit-tracer"
    MODEL.config.architectures = ["Qwen2ForCausalLM"]  # as in a saved model's config.json (TL dispatches on it)
    MODEL.config.save_pretrained(model_dir)  # TransformerLens reads the config from here, weights from hf_model
    TOKENIZER.save_pretrained(model_dir)
    log(f"attribution: writing the circuit-tracer set ({len(CODERS)} layers) to {ct_dir}")
    sec["write_ct_files_seconds"] = round(write_ct_set(CODERS, ct_dir, k), 2)
    sec["ct_files_gib"] = gib(sum(f.stat().st_size for f in ct_dir.glob("*.safetensors")))
    CODERS.clear()  # the encoders are read again by circuit-tracer; the decoders stay on disk (lazy_decoder)
    reset_peak(DEVICE)
    t0 = time.perf_counter()
    with alarm(within(180.0) + 30):
        rm = load_replacement(model_dir, ct_dir, dtype, n_ctx=max(lengths))
    sync(DEVICE)
    sec["load_seconds"] = round(time.perf_counter() - t0, 2)
    sec["after_load"] = peak(DEVICE)
    log(
        f"  ReplacementModel loaded in {sec['load_seconds']} s, {sec['after_load'].get('allocated_now_gib')} GiB on the GPU"
    )
    res.write()

    budget_end = time.perf_counter() + within(ARGS.attr_budget, reserve=10.0)
    phase_log = PhaseLog()
    ct_logger = logging.getLogger("attribution")
    ct_logger.addFilter(phase_log)
    common = dict(
        max_n_logits=gp.max_n_logits,
        desired_logit_prob=gp.desired_logit_prob,
        batch_size=batch_size,
        max_feature_nodes=ARGS.max_feature_nodes,
        verbose=True,
    )
    prompts = sec["prompts"] = {}
    graphs: dict = {}
    try:
        # warm-up (kernels, allocator): a short prompt, not reported as a measurement
        warm = random_rows(1, min(32, lengths[0]), SHAPE["vocab"], seed=12)[0]
        t0 = time.perf_counter()
        with alarm(max(30.0, budget_end - time.perf_counter())):
            attribute(warm, rm, **{**common, "max_feature_nodes": min(ARGS.max_feature_nodes, batch_size)})
        sec["warmup_seconds"] = round(time.perf_counter() - t0, 2)
        last, next_bs = None, batch_size
        for n in lengths:
            left = budget_end - time.perf_counter()
            if last is not None:
                n0, s0 = last
                predicted = s0 * (n / n0) ** 1.5
                if predicted > left:
                    prompts[str(n)] = {
                        "status": "skipped",
                        "reason": f"predicted {predicted:.0f} s (from {s0:.0f} s at "
                        f"{n0} tokens, x (n/n0)^1.5) > {left:.0f} s left of the budget",
                    }
                    log(f"  {n} tokens: skipped ({prompts[str(n)]['reason']})")
                    res.write()
                    continue
            ids = random_rows(1, n, SHAPE["vocab"], seed=13 + n)[0]
            graph, attempts, bs = None, [], next_bs
            while True:
                phase_log.lines.clear()
                reset_peak(DEVICE)
                left = budget_end - time.perf_counter()
                log(
                    f"  {n} tokens: attribute (max_feature_nodes={ARGS.max_feature_nodes}, batch_size={bs}, "
                    f"{left:.0f} s left)"
                )
                try:
                    t0 = time.perf_counter()
                    with alarm(max(5.0, left)):
                        if ARGS.fake_oom_batch and bs > ARGS.fake_oom_batch and n == lengths[-1]:
                            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated by --fake-oom-batch)")
                        graph = attribute(ids, rm, **{**common, "batch_size": bs})
                        sync(DEVICE)
                    t_attr = time.perf_counter() - t0
                    rec = {
                        "status": "ok",
                        "tokens": n,
                        "batch_size": bs,
                        "attribute_seconds": round(t_attr, 2),
                        "n_logits": int(len(graph.logit_targets)),
                        "selected_features": int(graph.selected_features.shape[0]),
                        "adjacency_gib_cpu": gib(
                            graph.adjacency_matrix.numel() * graph.adjacency_matrix.element_size()
                        ),
                        **phase_log.phases(),
                        **peak(DEVICE),
                    }
                    if attempts:
                        rec["failed_attempts"] = attempts
                    fa = rec.get("feature_attributions_s")
                    if fa is not None:
                        n_batches = math.ceil(ARGS.max_feature_nodes / bs)
                        rec["feature_batches"] = n_batches
                        rec["seconds_per_feature_batch"] = round(fa / n_batches, 3)
                        rec["extrapolated_attribute_seconds_at_profile_max_feature_nodes"] = round(
                            t_attr - fa + fa * gp.max_feature_nodes / ARGS.max_feature_nodes, 1
                        )
                    last = (n, t_attr)
                    log(
                        f"    {t_attr:.1f} s, peak {rec.get('peak_allocated_gib')} GiB GPU, phases "
                        f"{ {k2: v for k2, v in rec.items() if k2.endswith('_s')} }"
                    )
                    graphs[n] = graph  # scored after all prompts: attribution first, the CPU scoring with what is left
                    next_bs = bs  # a longer prompt needs at least as much memory per batch row
                    break
                except (Exception, SectionTimeout) as exc:
                    rec = {
                        "tokens": n,
                        "batch_size": bs,
                        **error_record(exc),
                        **peak(DEVICE),
                        "seconds_until_failure": round(time.perf_counter() - t0, 2),
                    }
                    log(f"    {n} tokens, batch_size {bs} failed: {rec['error'][:300]}")
                    graph = None
                    # circuit-tracer gathers grads[:, active positions] per layer in each backward batch:
                    # batch x (n_tokens x k) x d_model floats; halve the batch and try again while time is left
                    if (
                        rec["status"] == "oom"
                        and bs // 2 >= ARGS.min_attr_batch
                        and budget_end - time.perf_counter() > 10
                    ):
                        attempts.append({k2: v for k2, v in rec.items() if k2 != "traceback"})
                        bs //= 2
                        continue
                    if attempts:
                        rec["failed_attempts"] = attempts
                    if rec["status"] in ("oom", "timeout"):
                        last = (n, float("inf"))  # longer prompts are skipped by the prediction above
                    break
            prompts[str(n)] = rec
            del graph
            res.write()
        # the graphs stage scores every graph too (compute_graph_scores: CPU, on the dense adjacency)
        for n, graph in list(graphs.items()):
            rec = prompts[str(n)]
            try:
                t1 = time.perf_counter()
                with alarm(max(5.0, budget_end - t1 + 20)):
                    replacement, completeness = compute_graph_scores(graph)
                rec.update(
                    scores_seconds=round(time.perf_counter() - t1, 2),
                    replacement_score=round(float(replacement), 4),
                    completeness_score=round(float(completeness), 4),
                )
                log(f"  {n} tokens: compute_graph_scores {rec['scores_seconds']} s")
            except (Exception, SectionTimeout) as exc:
                rec["scores"] = error_record(exc)
                log(f"  {n} tokens: compute_graph_scores failed: {rec['scores']['error'][:200]}")
            rec.update(cpu_max_rss_gib=peak("cpu")["cpu_max_rss_gib"])
            del graphs[n], graph
            res.write()
    finally:
        ct_logger.removeFilter(phase_log)
        graphs.clear()
        del rm
        reset_peak(DEVICE)
    sec["status"] = "ok" if all(p.get("status") == "ok" for p in prompts.values()) else "partial"


# ---------------------------------------------------------------------------- main


def sparse_decoder_preflight() -> dict:
    """sparsify decodes with a Triton kernel when `triton` imports. Triton compiles at the first call and needs a
    C compiler for its launcher; if that fails here, sparsify is switched to its eager decoder (embedding_bag), as
    SPARSIFY_DISABLE_TRITON=1 would, so the training section still measures something."""
    import sparsify.sparse_coder as sc
    import sparsify.utils as su

    out = {"sparsify_decoder": getattr(su.decoder_impl, "__name__", str(su.decoder_impl))}
    if su.decoder_impl is su.eager_decode or not str(DEVICE).startswith("cuda"):
        return out
    try:
        idx = torch.randint(0, 64, (8, 4), device=DEVICE)
        acts = torch.rand(8, 4, device=DEVICE)
        w = torch.randn(16, 64, device=DEVICE)
        got, want = su.triton_decode(idx, acts, w), su.eager_decode(idx, acts, w)
        sync(DEVICE)
        out["triton_decode_max_abs_diff"] = float((got - want).abs().max())
    except Exception as exc:  # noqa: BLE001
        sc.decoder_impl = su.decoder_impl = su.eager_decode
        out.update(sparsify_decoder="eager_decode (fallback)", triton_error=f"{type(exc).__name__}: {str(exc)[:500]}")
    return out


def environment() -> dict:
    from importlib import metadata

    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "device": DEVICE,
        "torch_threads": torch.get_num_threads(),
        "numerics": os.environ.get("R1INTERP_NUMERICS"),
        "sys_path_head": sys.path[:3],
    }
    for dist in (
        "transformers",
        "tokenizers",
        "huggingface-hub",
        "eai-sparsify",
        "circuit-tracer",
        "transformer-lens",
        "datasets",
        "safetensors",
        "numpy",
        "triton",
        "pytorch-triton",
        "bitsandbytes",
    ):
        try:
            env[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            env[dist] = None
    if str(DEVICE).startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        env.update(
            gpu=props.name,
            gpu_memory_gib=gib(props.total_memory),
            gpu_capability=f"{props.major}.{props.minor}",
            gpu_count=torch.cuda.device_count(),
            bf16_supported=torch.cuda.is_bf16_supported(),
            peak_tflops_used=ARGS.peak_tflops,
            peak_note="H200 SXM bf16 dense spec"
            if ARGS.peak_tflops == H200_BF16_DENSE_TFLOPS
            else "from --peak-tflops",
        )
        if "H200" not in props.name and ARGS.peak_tflops == H200_BF16_DENSE_TFLOPS:
            env["peak_warning"] = f"GPU is {props.name}, not an H200: MFU uses the H200 peak (pass --peak-tflops)"
    return env


def print_table(data: dict) -> None:
    rows: list[tuple[str, str, str]] = []
    s = data["sections"]
    tr = s.get("train", {})
    for group, g in tr.get("groups", {}).items():
        if g.get("status") == "ok":
            rows.append(
                (
                    f"train {group} ({len(g['layers'])} coders, {g['model_dtype']})",
                    f"{g['tokens_per_second']} tok/s  MFU {g['mfu']}",
                    f"peak {g.get('peak_allocated_gib')} GiB, {g['steps_run']} steps, 1st {g['first_step_seconds']} s",
                )
            )
        else:
            rows.append((f"train {group}", g.get("status", "?"), (g.get("error") or "")[:80]))
    if "fp32_model_group0" in tr:
        g = tr["fp32_model_group0"]
        rows.append(
            (
                "train group 0, fp32 model",
                f"{g.get('tokens_per_second')} tok/s  MFU {g.get('mfu')}"
                if g.get("status") == "ok"
                else g.get("status", "?"),
                f"peak {g.get('peak_allocated_gib')} GiB"
                if g.get("status") == "ok"
                else (g.get("error") or g.get("reason") or "")[:80],
            )
        )
    if tr.get("all_layers_tokens_per_second"):
        n_layers = sum(len(g["layers"]) for g in tr["groups"].values())
        rows.append(
            (f"train all {n_layers} layers (groups in sequence)", f"{tr['all_layers_tokens_per_second']} tok/s", "")
        )
    if "error" in tr:
        rows.append(("train", tr.get("status", "?"), tr["error"][:80]))
    ac = s.get("activations", {})
    if "collect" in ac:
        c = ac["collect"]
        rows.append(
            (
                "activations collect()",
                f"{c['tokens_per_second']} tok/s",
                f"{c['tokens']} tokens, peak {c.get('peak_allocated_gib')} GiB GPU, {c.get('cpu_max_rss_gib')} GiB RSS",
            )
        )
    if "bare_forward_and_encode" in ac:
        b = ac["bare_forward_and_encode"]
        rows.append(("activations bare forward+encode", f"{b['tokens_per_second']} tok/s  MFU {b['mfu']}", ""))
    if "error" in ac:
        rows.append(("activations", ac.get("status", "?"), ac["error"][:80]))
    at = s.get("attribution", {})
    if "load_seconds" in at:
        rows.append(
            (
                "attribution: write CT files + load",
                f"{at.get('write_ct_files_seconds')} s + {at['load_seconds']} s",
                f"{at.get('ct_files_gib')} GiB on disk",
            )
        )
    for n, p in at.get("prompts", {}).items():
        if p.get("status") == "ok":
            rows.append(
                (
                    f"attribution {n} tokens",
                    f"{p['attribute_seconds']} s",
                    f"batch {p['batch_size']}{' (after OOM at ' + ', '.join(str(a['batch_size']) for a in p['failed_attempts']) + ')' if p.get('failed_attempts') else ''}, "
                    f"peak {p.get('peak_allocated_gib')} GiB GPU, {p.get('active_features')} active features, "
                    f"~{p.get('extrapolated_attribute_seconds_at_profile_max_feature_nodes')} s at "
                    f"{at['config']['profile_max_feature_nodes']} nodes",
                )
            )
        else:
            rows.append(
                (f"attribution {n} tokens", p.get("status", "?"), (p.get("error") or p.get("reason") or "")[:100])
            )
    if "error" in at:
        rows.append(("attribution", at.get("status", "?"), at["error"][:80]))
    w = max([len(r[0]) for r in rows] + [10])
    w2 = max([len(r[1]) for r in rows] + [10])
    print("\n" + "=" * 100)
    env = data.get("environment", {})
    print(
        f"real-shape benchmark{' (SMOKE: tiny widths)' if data['smoke'] else ''}: {env.get('gpu') or env.get('device')}, "
        f"torch {env.get('torch')} (CUDA {env.get('torch_cuda')}), transformers {env.get('transformers')}, "
        f"sparsify {env.get('eai-sparsify')}, circuit-tracer {env.get('circuit-tracer')}"
    )
    for a, b, c in rows:
        print(f"  {a:<{w}}  {b:<{w2}}  {c}")
    print(
        f"  overall peak GPU memory: {data.get('overall_peak_allocated_gib')} GiB;  wall {data.get('wall_seconds')} s"
    )
    print("=" * 100, flush=True)


def main() -> int:
    global DEVICE, SHAPE, PARAMS, MODEL, TOKENIZER, CODERS, WORKDIR, MODEL_FLOPS, MODEL_FLOPS_ACT
    torch.set_num_threads(ARGS.threads)
    DEVICE = ("cuda" if torch.cuda.is_available() else "cpu") if ARGS.device == "auto" else ARGS.device
    SHAPE = SMOKE_SHAPE if ARGS.smoke else REAL_SHAPE
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}.get(ARGS.dtype) or (
        torch.bfloat16 if DEVICE.startswith("cuda") else torch.float32
    )
    if DEVICE.startswith("cuda"):
        torch.set_float32_matmul_precision("high")  # what sparsify's fit() sets for the whole process anyway
    res = Results(ARGS.out)
    own_workdir = ARGS.workdir is None
    WORKDIR = tempfile.mkdtemp(prefix="gpu_real_shape_") if own_workdir else ARGS.workdir
    Path(WORKDIR).mkdir(parents=True, exist_ok=True)
    CODERS = {}
    overall_peak = 0.0
    try:
        res.data["environment"] = environment()
        try:
            res.data["environment"].update(sparse_decoder_preflight())
        except Exception as exc:  # noqa: BLE001  (sparsify itself missing: the train section reports it)
            res.data["environment"]["sparsify_import_error"] = f"{type(exc).__name__}: {exc}"
        res.data["args"] = vars(ARGS)
        res.data["shape"] = SHAPE
        log(
            f"device {DEVICE} ({res.data['environment'].get('gpu', 'cpu')}), torch {torch.__version__}, "
            f"transformers {res.data['environment']['transformers']}, model dtype {dtype}"
        )
        PARAMS, source = profile_params()
        ARGS.ctx_len = ARGS.ctx_len or (32 if ARGS.smoke else PARAMS.tokens.ctx_len)
        res.data["profile"] = source
        t0 = time.perf_counter()
        TOKENIZER = build_tokenizer(SHAPE["vocab"])
        MODEL = build_model(SHAPE, DEVICE, dtype)
        sync(DEVICE)
        MODEL_FLOPS = model_flops(MODEL, ARGS.ctx_len)
        MODEL_FLOPS_ACT = MODEL_FLOPS
        res.data["model"] = {
            "init_seconds": round(time.perf_counter() - t0, 2),
            "dtype": str(dtype),
            "attn_implementation": getattr(MODEL.config, "_attn_implementation", None),
            **MODEL_FLOPS,
        }
        log(f"model built in {res.data['model']['init_seconds']} s: {MODEL_FLOPS['params_total']:,} parameters")
        res.write()
    except (Exception, SectionTimeout) as exc:
        res.data["setup"] = error_record(exc)
        res.write()
        print(res.data["setup"]["traceback"], flush=True)
        print_table(res.data)
        return 1
    sections = {"train": section_train, "activations": section_activations, "attribution": section_attribution}
    wanted = [s.strip() for s in ARGS.sections.split(",") if s.strip()]
    try:
        for name in wanted:
            sec = res.data["sections"][name] = {}
            if remaining() < 15:
                sec.update(status="skipped", reason=f"total budget {ARGS.total_budget:.0f} s spent")
                log(f"section {name}: skipped (budget spent)")
                continue
            log(f"section {name}")
            t0 = time.perf_counter()
            try:
                sections[name](res, sec)
            except (Exception, SectionTimeout) as exc:
                sec.update(error_record(exc))
                log(f"section {name} failed: {sec['error'][:500]}")
                print(sec["traceback"], flush=True)
            sec["section_seconds"] = round(time.perf_counter() - t0, 2)
            if DEVICE.startswith("cuda"):
                overall_peak = max(
                    overall_peak,
                    torch.cuda.max_memory_allocated() / 2**30,
                    *[v for v in _walk(sec, "peak_allocated_gib")],
                )
                res.data["overall_peak_allocated_gib"] = round(overall_peak, 3)
            res.write()
    except KeyboardInterrupt:
        res.data["interrupted"] = f"KeyboardInterrupt after {time.perf_counter() - STARTED:.0f} s"
        log("interrupted: writing what was measured")
    finally:
        res.write()
        if own_workdir:
            shutil.rmtree(WORKDIR, ignore_errors=True)
        print_table(res.data)
        log(f"results: {res.path}")
    return 0


def _walk(obj, key):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key and isinstance(v, (int, float)):
                yield v
            else:
                yield from _walk(v, key)


DEVICE = SHAPE = PARAMS = MODEL = TOKENIZER = WORKDIR = MODEL_FLOPS = MODEL_FLOPS_ACT = None
CODERS: dict = {}

if __name__ == "__main__":
    sys.exit(main())
