"""Real-shape CPU benchmark: DeepSeek-R1-Distill-Qwen-1.5B's widths with random weights but few layers, on a CPU.

The widths are the real ones (hidden 1536, intermediate 8960, 12 / 2 heads, vocab 151,936, untied embeddings,
transcoders of 65,536 latents at k 32); only the depth is cut (`--layers`, default 2). Every stage's core runs on
small budgets, each in its own try/except, with seconds and peak RSS per section (results written after each):

  build        Qwen2ForCausalLM at the real widths (random init) + a word-level tokenizer over the whole vocabulary
  generate     greedy `model.generate` as organism-eval / interventions / graphs call it: batch 4, 32 new tokens;
               prefill and per-step decode seconds; scaling probe: the same at vocab 32,768 (a second model)
  train        skip-transcoder training through sparsify (our `sparsify_configs`, as train@<group>): the group
               "all" (one coder per layer, trained together), then scaling probes: a one-layer group ("0") and
               "all" at 16,384 latents; tokens/s and seconds per step (the "all" coders are kept for later)
  evaluate     `r1interp.transcoders.evaluate.evaluate` (CE / KL with the coders spliced, zero / mean ablations)
  activations  `r1interp.activations.collect` over a few batches, with encode and LayerCollector.update timed per
               layer (wrapped at run time; activations.py is not touched); probe: 16,384-latent coders
  update_profile  LayerCollector.update alone (ONE layer) at the profile's batch shape (8 x 1024 tokens, k 32) on
               synthetic top-k outputs (each feature fires with probability k / latents, as with a random coder):
               seconds per batch while the slot tables fill, cProfile (python functions) and torch.profiler (ops)
               of it, at 65,536 and 16,384 latents
  attribution  circuit-tracer (TransformerLens backend, as r1interp.graphs.replacement) with the trained coders,
               one prompt each at 64 / 128 / 256 tokens: seconds, phases, extrapolation to the profile's nodes

Peak RSS per section: the kernel's peak-RSS counter (VmHWM, which getrusage's ru_maxrss reads) is reset at the
start of every section through /proc/self/clear_refs, so `peak_rss_gib` is that section's own peak; the run's
peak is the largest of them. psutil's RSS before / after every section is recorded too.

The model / tokenizer / sparsify / circuit-tracer helpers are bench/gpu_real_shape.py's, imported from it.

    python bench/cpu_real_shape.py --smoke --out /tmp/cpu_smoke.json     # tiny widths, 1 thread, < 1 min
    python bench/cpu_real_shape.py                                        # real widths, 2 layers, 2 threads

Every number is for random weights: time and memory depend on the shapes, not the values.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import gc
import importlib.util
import io
import json
import math
import os
import pstats
import resource
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SECTIONS = ("generate", "train", "evaluate", "activations", "update_profile", "attribution")


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--smoke", action="store_true", help="tiny widths, 1 thread: the same code paths in < 1 min")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "cpu_real_shape.json"))
    p.add_argument("--threads", type=int, default=None, help="torch threads (default 2; smoke 1)")
    p.add_argument("--layers", type=int, default=2, help="decoder layers (the real model has 28)")
    p.add_argument(
        "--latents", type=int, default=None, help="transcoder latents (default: the profile's 65536; smoke 1024)"
    )
    p.add_argument(
        "--latents-probe",
        type=int,
        default=None,
        help="second width for train/activations/update (default 16384; smoke 256; 0 skips)",
    )
    p.add_argument(
        "--vocab-probe",
        type=int,
        default=None,
        help="second vocabulary for generate (default 32768; smoke 128; 0 skips)",
    )
    p.add_argument("--sections", default=",".join(SECTIONS))
    p.add_argument(
        "--total-budget", type=float, default=None, help="seconds for the whole run (default 690; smoke 120)"
    )
    p.add_argument(
        "--workdir", default=None, help="scratch (circuit-tracer files: ~0.8 GB per layer); default a temp dir"
    )
    p.add_argument(
        "--ctx-len",
        type=int,
        default=None,
        help="tokens per row for train / evaluate / collect (default 256; smoke 32)",
    )
    # generate
    p.add_argument("--gen-batch", type=int, default=4)
    p.add_argument("--gen-prompt", type=int, default=None, help="prompt tokens (default 64; smoke 16)")
    p.add_argument("--gen-new", type=int, default=None, help="new tokens (default 32; smoke 8)")
    # train
    p.add_argument("--train-batch", type=int, default=2, help="rows per step (the profile: 8 of 1024 tokens)")
    p.add_argument("--train-steps", type=int, default=None, help="steps per run (default 4; smoke 3)")
    p.add_argument("--train-warmup-steps", type=int, default=1, help="first steps left out of the rate")
    # evaluate
    p.add_argument("--eval-rows", type=int, default=1, help="rows (one batch) for the spliced evaluation")
    # activations
    p.add_argument("--act-batch", type=int, default=2, help="rows per collect batch")
    p.add_argument("--act-batches", type=int, default=None, help="collect batches (default 3; smoke 3)")
    # update_profile
    p.add_argument(
        "--profile-rows",
        type=int,
        default=None,
        help="rows per synthetic batch (default: activations.batch_size of the profile, 8; smoke 2)",
    )
    p.add_argument(
        "--profile-ctx",
        type=int,
        default=None,
        help="tokens per synthetic row (default: the profile's ctx_len, 1024; smoke 32)",
    )
    p.add_argument("--profile-batches", type=int, default=None, help="synthetic batches per width (default 6; smoke 3)")
    # attribution
    p.add_argument("--prompt-lengths", default=None, help="default 64,128,256; smoke 16,24,32")
    p.add_argument(
        "--max-feature-nodes",
        type=int,
        default=None,
        help="circuit-tracer max_feature_nodes (default 64; smoke 16): "
        "phase 4 is linear in it and is extrapolated to the profile's graphs.max_feature_nodes",
    )
    p.add_argument(
        "--attr-batch",
        type=int,
        default=None,
        help="circuit-tracer batch_size (default: the profile's graphs.batch_size, 16)",
    )
    args = p.parse_args(argv)

    def pick(name, real, tiny):
        if getattr(args, name) is None:
            setattr(args, name, tiny if args.smoke else real)

    pick("threads", 2, 1)
    pick("latents_probe", 16384, 256)
    pick("vocab_probe", 32768, 128)
    pick("total_budget", 690.0, 120.0)
    pick("ctx_len", 256, 32)
    pick("gen_prompt", 64, 16)
    pick("gen_new", 32, 8)
    pick("train_steps", 4, 3)
    pick("act_batches", 3, 3)
    pick("profile_batches", 6, 3)
    pick("prompt_lengths", "64,128,256", "16,24,32")
    pick("max_feature_nodes", 64, 16)
    args.prompt_lengths = sorted(int(x) for x in str(args.prompt_lengths).split(",") if x.strip())
    return args


ARGS = parse_args()
os.environ["R1INTERP_NUMERICS"] = "native"  # as gpu_real_shape: the machine's own kernels
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = str(ARGS.threads)


def _import_gpu_bench():
    """bench/gpu_real_shape.py as a module. It parses sys.argv at import, so it sees a CPU command line."""
    argv = sys.argv
    sys.argv = [str(ROOT / "bench" / "gpu_real_shape.py"), "--device", "cpu", "--threads", str(ARGS.threads)] + (
        ["--smoke"] if ARGS.smoke else []
    )
    try:
        spec = importlib.util.spec_from_file_location("gpu_real_shape", ROOT / "bench" / "gpu_real_shape.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules["gpu_real_shape"] = mod
        spec.loader.exec_module(mod)
    finally:
        sys.argv = argv
    return mod


G = _import_gpu_bench()

import psutil  # noqa: E402
import torch  # noqa: E402

log = G.log
SectionTimeout = G.SectionTimeout
alarm = G.alarm
gib = G.gib
STARTED = time.perf_counter()
PROC = psutil.Process()


def remaining() -> float:
    return ARGS.total_budget - (time.perf_counter() - STARTED)


def budget(share: float) -> float:
    """`share` of the total budget, cut to what is left."""
    return max(5.0, min(share * ARGS.total_budget, remaining() - 5.0))


# ---------------------------------------------------------------------------- memory


def reset_peak_rss() -> bool:
    """Reset the peak-RSS counter (VmHWM; getrusage's ru_maxrss reads it too). False where the kernel refuses."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_gib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30, 3)


def rss_gib() -> float:
    return round(PROC.memory_info().rss / 2**30, 3)


class Results:
    def __init__(self, path: str):
        self.path = Path(path)
        self.data: dict = {"benchmark": "bench/cpu_real_shape.py", "smoke": ARGS.smoke, "sections": {}}
        self.peak = 0.0

    def write(self) -> None:
        self.data["wall_seconds"] = round(time.perf_counter() - STARTED, 2)
        self.data["peak_rss_gib"] = self.peak
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str) + "\n")
        tmp.replace(self.path)


@contextlib.contextmanager
def section(res: Results, name: str):
    """Seconds, RSS before / after and the section's own peak RSS; errors are recorded, not raised."""
    sec = res.data["sections"].setdefault(name, {})
    sec["status"] = "running"
    per_section = reset_peak_rss()
    sec["rss_before_gib"] = rss_gib()
    res.write()
    log(f"section {name} (RSS {sec['rss_before_gib']} GiB, {remaining():.0f} s of the budget left)")
    t0 = time.perf_counter()
    try:
        yield sec
        if sec.get("status") == "running":
            sec["status"] = "ok"
    except (Exception, SectionTimeout) as exc:
        sec.update(G.error_record(exc))
        log(f"section {name} failed: {sec['error'][:400]}")
        print(sec["traceback"], flush=True)
    finally:
        sec["seconds"] = round(time.perf_counter() - t0, 2)
        sec["peak_rss_gib"] = peak_rss_gib()
        sec["peak_rss_scope"] = "this section" if per_section else "process so far (clear_refs refused)"
        gc.collect()
        sec["rss_after_gib"] = rss_gib()
        res.peak = max(res.peak, sec["peak_rss_gib"])
        res.write()
        log(f"  {name}: {sec['status']} in {sec['seconds']} s, peak RSS {sec['peak_rss_gib']} GiB")


# ---------------------------------------------------------------------------- sections


def shape_for(vocab: int | None = None) -> dict:
    base = G.SMOKE_SHAPE if ARGS.smoke else G.REAL_SHAPE
    return {**base, "layers": ARGS.layers, **({"vocab": vocab} if vocab else {})}


def section_build(sec: dict) -> None:
    t0 = time.perf_counter()
    G.TOKENIZER = G.build_tokenizer(G.SHAPE["vocab"])
    sec["tokenizer_seconds"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    G.MODEL = G.build_model(G.SHAPE, "cpu", torch.float32)
    sec["model_seconds"] = round(time.perf_counter() - t0, 2)
    G.MODEL_FLOPS = G.MODEL_FLOPS_ACT = G.model_flops(G.MODEL, ARGS.ctx_len)
    sec.update({k: v for k, v in G.MODEL_FLOPS.items()})
    sec["params_gib_fp32"] = gib(4 * G.MODEL_FLOPS["params_total"])


@torch.no_grad()
def generate_once(model, vocab: int) -> dict:
    """Greedy generation as r1interp.organism.evaluate.generate calls it (batch of prompts, do_sample=False),
    on random prompt ids; min_new_tokens keeps every row going for exactly --gen-new tokens."""
    ids = G.random_rows(ARGS.gen_batch, ARGS.gen_prompt, vocab, seed=21)
    mask = torch.ones_like(ids)
    kw = dict(attention_mask=mask, do_sample=False, pad_token_id=3, eos_token_id=2)
    model.generate(ids[:, :8], attention_mask=mask[:, :8], max_new_tokens=2, do_sample=False, pad_token_id=3)  # warm-up
    t0 = time.perf_counter()
    model(ids, attention_mask=mask, logits_to_keep=1)  # as generate's prefill: the last position's logits only
    prefill = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = model.generate(ids, max_new_tokens=ARGS.gen_new, min_new_tokens=ARGS.gen_new, **kw)
    total = time.perf_counter() - t0
    new = out.shape[1] - ids.shape[1]
    decode = max(total - prefill, 1e-9)
    return {
        "vocab": vocab,
        "batch": ARGS.gen_batch,
        "prompt_tokens": ARGS.gen_prompt,
        "new_tokens": new,
        "generate_seconds": round(total, 3),
        "prefill_seconds": round(prefill, 3),
        "decode_seconds_per_step": round(decode / max(1, new - 1), 4),
        "new_tokens_per_second": round(ARGS.gen_batch * new / total, 2),
    }


def section_generate(sec: dict) -> None:
    with alarm(budget(0.12)):
        sec["real_vocab"] = generate_once(G.MODEL, G.SHAPE["vocab"])
        log(f"  vocab {G.SHAPE['vocab']}: {sec['real_vocab']}")
        if ARGS.vocab_probe:
            t0 = time.perf_counter()
            small = G.build_model(shape_for(ARGS.vocab_probe), "cpu", torch.float32)
            build_s = time.perf_counter() - t0
            try:
                rec = generate_once(small, ARGS.vocab_probe)
            finally:
                del small
                gc.collect()
            rec["model_seconds"] = round(build_s, 2)
            sec["vocab_probe"] = rec
            log(f"  vocab {ARGS.vocab_probe}: {rec}")
            a, b = sec["real_vocab"], rec
            sec["scaling"] = {
                "decode_step_ratio_real_vs_probe": round(
                    a["decode_seconds_per_step"] / b["decode_seconds_per_step"], 2
                ),
                "prefill_ratio_real_vs_probe": round(a["prefill_seconds"] / b["prefill_seconds"], 2),
                "vocab_ratio": round(G.SHAPE["vocab"] / ARGS.vocab_probe, 2),
            }


def _train(tp, group: str, seed: int, time_share: float) -> tuple[dict, dict]:
    from r1interp.transcoders import group_layers

    layers = group_layers(group, ARGS.layers)
    b = budget(time_share)
    log(
        f"  train group {group!r}: {len(layers)} coder(s) x {tp.num_latents} latents, {ARGS.train_steps} steps of "
        f"{tp.batch_size} x {ARGS.ctx_len} tokens (budget {b:.0f} s)"
    )
    reset_peak_rss()
    t0 = time.perf_counter()
    with alarm(b + 60):
        rec, coders = G.train_group(G.MODEL, tp, layers, ARGS.train_steps, b, seed=seed)
    rec.update(group=group, status="ok", wall_seconds=round(time.perf_counter() - t0, 2), peak_rss_gib=peak_rss_gib())
    for key in ("achieved_tflops", "mfu"):  # GPU notions
        rec.pop(key, None)
    rec["achieved_gflops"] = (
        round(rec["tokens_per_second"] * rec["train_flops_per_token"] / 1e9, 1)
        if rec.get("tokens_per_second")
        else None
    )
    log(f"    {rec['tokens_per_second']} tok/s, steps {rec['step_seconds']}, peak RSS {rec['peak_rss_gib']} GiB")
    return rec, coders


def section_train(sec: dict) -> None:
    base = G.PARAMS.train
    tp = dataclasses.replace(
        base,
        batch_size=ARGS.train_batch,
        num_latents=ARGS.latents or base.num_latents,
        log_every=max(1, min(base.log_every, ARGS.train_steps)),
    )
    sec["config"] = {
        "num_latents": tp.num_latents,
        "k": tp.k,
        "rows_per_step": tp.batch_size,
        "ctx_len": ARGS.ctx_len,
        "steps": ARGS.train_steps,
        "warmup_steps_not_counted": ARGS.train_warmup_steps,
        "optimizer": tp.optimizer,
        "transcoders": "skip (transcode=True, skip_connection=True), TopK",
    }
    runs = sec["runs"] = {}
    rec, coders = _train(tp, "all", seed=0, time_share=0.14)
    runs[f"all ({ARGS.layers} layers) @ {tp.num_latents}"] = rec
    G.CODERS.update(coders)
    del coders
    if ARGS.layers > 1:
        try:
            rec, coders = _train(tp, "0", seed=1, time_share=0.08)
            del coders
        except (Exception, SectionTimeout) as exc:
            rec = G.error_record(exc)
        runs[f"0 (1 layer) @ {tp.num_latents}"] = rec
    if ARGS.latents_probe:
        try:
            rec, coders = _train(
                dataclasses.replace(tp, num_latents=ARGS.latents_probe), "all", seed=2, time_share=0.08
            )
            del coders
        except (Exception, SectionTimeout) as exc:
            rec = G.error_record(exc)
        runs[f"all ({ARGS.layers} layers) @ {ARGS.latents_probe}"] = rec
    gc.collect()
    ok = {k: r for k, r in runs.items() if r.get("status") == "ok" and r.get("tokens_per_second")}
    main_key = f"all ({ARGS.layers} layers) @ {tp.num_latents}"
    scaling = {}
    if main_key in ok:
        main = ok[main_key]
        one = ok.get(f"0 (1 layer) @ {tp.num_latents}")
        if one:
            scaling["seconds_per_token_all_vs_1_layer"] = round(one["tokens_per_second"] / main["tokens_per_second"], 3)
            scaling["peak_rss_all_vs_1_layer_gib"] = [main["peak_rss_gib"], one["peak_rss_gib"]]
        probe = ok.get(f"all ({ARGS.layers} layers) @ {ARGS.latents_probe}")
        if probe:
            scaling["seconds_per_token_latents_ratio"] = round(
                probe["tokens_per_second"] / main["tokens_per_second"], 3
            )
            scaling["latents_ratio"] = round(tp.num_latents / ARGS.latents_probe, 2)
            scaling["peak_rss_main_vs_probe_gib"] = [main["peak_rss_gib"], probe["peak_rss_gib"]]
    sec["scaling"] = scaling
    if len(ok) < len(runs):
        sec["status"] = "partial"


def section_evaluate(sec: dict) -> None:
    from r1interp.transcoders.evaluate import evaluate

    if not G.CODERS:
        G.CODERS.update(random_coders(ARGS.latents or G.PARAMS.train.num_latents))
        sec["coders"] = "random init (train section missing)"
    rows, ctx = ARGS.eval_rows, ARGS.ctx_len
    ids = G.random_rows(rows, ctx, G.SHAPE["vocab"], seed=31)
    g = torch.Generator().manual_seed(32)
    think = torch.rand(rows, ctx, generator=g) < 0.7
    batches = [{"input_ids": ids, "in_think": think, "in_answer": ~think}]
    n_forwards = 1 + 1 + 3 * (len(G.CODERS) + 1)  # mean outputs, clean, {coder, zero, mean} x (each layer, all)
    sec["config"] = {"rows": rows, "ctx_len": ctx, "layers": sorted(G.CODERS), "model_forwards_per_batch": n_forwards}
    t0 = time.perf_counter()
    with alarm(budget(0.1)):
        result = evaluate(G.MODEL, G.CODERS, batches, keep_token_ids=[1, 2, 3])
    s = time.perf_counter() - t0
    sec.update(
        evaluate_seconds=round(s, 2),
        tokens=rows * ctx,
        tokens_per_second=round(rows * ctx / s, 2),
        seconds_per_model_forward_token=round(s / (rows * ctx * n_forwards), 6),
        summary=result.get("summary"),
    )


class _Timer:
    def __init__(self):
        self.seconds: dict = {}

    def wrap(self, key, fn):
        def timed(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - t0

        return timed


def random_coders(num_latents: int) -> dict:
    from sparsify import SparseCoder

    cfg = dataclasses.replace(G.coder_config(), num_latents=num_latents)
    out = {}
    for layer in range(ARGS.layers):
        torch.manual_seed(2000 + layer)
        out[layer] = SparseCoder(G.SHAPE["hidden"], cfg, "cpu", dtype=torch.float32).eval().requires_grad_(False)
    return out


def collect_timed(coders: dict, cfg, n_batches: int, time_share: float) -> dict:
    """collect() with encode and LayerCollector.update timed per layer (wrapped for this call only)."""
    import r1interp.activations as act

    ctx, batch = ARGS.ctx_len, cfg.batch_size
    rows = batch * n_batches
    ids = G.random_rows(rows, ctx, G.SHAPE["vocab"], seed=41)
    think = torch.rand(rows, ctx, generator=torch.Generator().manual_seed(42)) < 0.8
    timer = _Timer()
    deadline = time.perf_counter() + budget(time_share)
    done = {"rows": 0, "first": None, "batch_seconds": [], "t": None}

    def batches():
        done["first"] = time.perf_counter()  # collect() allocates its tables before asking for the first batch
        for start in range(0, rows, batch):
            now = time.perf_counter()
            if done["t"] is not None:
                done["batch_seconds"].append(round(now - done["t"], 3))
            done["t"] = now
            if now > deadline:
                done["t"] = None
                return
            done["rows"] += batch
            yield {
                "input_ids": ids[start : start + batch],
                "in_think": think[start : start + batch],
                "row_offset": start,
            }

    orig_update, orig_init = act.LayerCollector.update, act.LayerCollector.__init__
    created: list = []  # collect() builds its collectors in the coders' order

    def init(self, *a, **kw):
        orig_init(self, *a, **kw)
        created.append(self)

    def update(self, *a, **kw):
        t0 = time.perf_counter()
        try:
            return orig_update(self, *a, **kw)
        finally:
            key = f"update_layer_{list(coders)[created.index(self)]}"
            timer.seconds[key] = timer.seconds.get(key, 0.0) + time.perf_counter() - t0

    for layer, coder in coders.items():
        coder.encode = timer.wrap(f"encode_layer_{layer}", coder.encode)
    act.LayerCollector.update, act.LayerCollector.__init__ = update, init
    try:
        reset_peak_rss()
        t0 = time.perf_counter()
        with alarm(budget(time_share) + 60):
            collectors = act.collect(G.MODEL, coders, batches(), cfg, seed=0, progress=False)
        seconds = time.perf_counter() - t0
        if done["t"] is not None:
            done["batch_seconds"].append(round(time.perf_counter() - done["t"], 3))
    finally:
        act.LayerCollector.update, act.LayerCollector.__init__ = orig_update, orig_init
        for coder in coders.values():
            coder.__dict__.pop("encode", None)
    table_bytes = sum(
        t.numel() * t.element_size()
        for c in collectors.values()
        for tab in (c.top, c.sample, c.silent)
        if tab is not None
        for t in [tab.key, *tab.fields.values()]
    )
    del collectors, created[:]
    tokens = done["rows"] * ctx
    alloc = (done["first"] - t0) if done["first"] else None
    enc = sum(v for k, v in timer.seconds.items() if k.startswith("encode"))
    upd = sum(v for k, v in timer.seconds.items() if k.startswith("update"))
    stream = seconds - (alloc or 0.0)
    n_layers = len(coders)
    return {
        "num_latents": next(iter(coders.values())).num_latents,
        "layers": n_layers,
        "rows_per_batch": batch,
        "ctx_len": ctx,
        "batches": done["rows"] // batch,
        "tokens": tokens,
        "seconds": round(seconds, 3),
        "tokens_per_second": round(tokens / seconds, 2),
        "table_allocation_seconds": round(alloc, 3) if alloc is not None else None,
        "tables_gib": gib(table_bytes),
        "batch_seconds": done["batch_seconds"],
        "seconds_by_part": {k: round(v, 3) for k, v in sorted(timer.seconds.items())},
        "forward_and_rest_seconds": round(stream - enc - upd, 3),
        "per_token_ms": {
            "forward_and_rest": round(1e3 * (stream - enc - upd) / tokens, 3),
            "encode_per_layer": round(1e3 * enc / n_layers / tokens, 3),
            "update_per_layer": round(1e3 * upd / n_layers / tokens, 3),
        },
        "peak_rss_gib": peak_rss_gib(),
    }


def section_activations(sec: dict) -> None:
    cfg = dataclasses.replace(G.PARAMS.activations, batch_size=ARGS.act_batch)
    if ARGS.smoke:
        cfg = dataclasses.replace(cfg, window=min(cfg.window, ARGS.ctx_len))
    sec["config"] = {
        "window": cfg.window,
        "top_n": cfg.top_n,
        "quantile_slots": cfg.quantile_bins * cfg.per_quantile,
        "non_activating": cfg.non_activating,
        "rows_per_batch": cfg.batch_size,
        "ctx_len": ARGS.ctx_len,
    }
    coders = G.CODERS if G.CODERS else random_coders(ARGS.latents or G.PARAMS.train.num_latents)
    sec["coders"] = "trained (train section)" if G.CODERS else "random init (train section missing)"
    rec = sec["main"] = collect_timed(coders, cfg, ARGS.act_batches, 0.07)
    log(
        f"  collect @ {rec['num_latents']}: {rec['tokens_per_second']} tok/s, per token ms {rec['per_token_ms']}, "
        f"tables {rec['tables_gib']} GiB"
    )
    if ARGS.latents_probe:
        probe = random_coders(ARGS.latents_probe)
        try:
            sec["latents_probe"] = collect_timed(probe, cfg, ARGS.act_batches, 0.05)
        except (Exception, SectionTimeout) as exc:
            sec["latents_probe"] = G.error_record(exc)
        del probe
        p = sec["latents_probe"]
        if "per_token_ms" in p:
            log(f"  collect @ {p['num_latents']}: {p['tokens_per_second']} tok/s, per token ms {p['per_token_ms']}")
            sec["scaling"] = {
                "update_per_layer_ratio_main_vs_probe": round(
                    rec["per_token_ms"]["update_per_layer"] / max(p["per_token_ms"]["update_per_layer"], 1e-9), 2
                ),
                "encode_per_layer_ratio_main_vs_probe": round(
                    rec["per_token_ms"]["encode_per_layer"] / max(p["per_token_ms"]["encode_per_layer"], 1e-9), 2
                ),
                "tables_gib_main_vs_probe": [rec["tables_gib"], p["tables_gib"]],
                "latents_ratio": round(rec["num_latents"] / p["num_latents"], 2),
            }


def synthetic_topk(rows: int, ctx: int, num_latents: int, k: int, seed: int):
    """Top-k outputs where each feature fires with probability k / num_latents at every token, k distinct
    features per token (one per stripe of num_latents / k), as a random-init TopK coder gives."""
    g = torch.Generator().manual_seed(seed)
    stripe = num_latents // k
    idx = (torch.arange(k) * stripe + torch.randint(0, stripe, (rows, ctx, k), generator=g)).long()
    acts = torch.rand(rows, ctx, k, generator=g).mul_(3.0).add_(0.01)
    ids = torch.randint(4, 1000, (rows, ctx), generator=g)
    valid = torch.ones(rows, ctx, dtype=torch.bool)
    in_think = torch.rand(rows, ctx, generator=g) < 0.8
    return acts, idx, ids, valid, in_think


def update_profile(
    num_latents: int, cfg, rows: int, ctx: int, n_batches: int, time_share: float, profile: bool
) -> dict:
    import r1interp.activations as act

    k = G.PARAMS.train.k
    reset_peak_rss()
    t0 = time.perf_counter()
    col = act.LayerCollector(num_latents, cfg, torch.Generator().manual_seed(0))
    alloc = time.perf_counter() - t0
    deadline = time.perf_counter() + budget(time_share)
    times, pr, tp_table = [], None, None
    with alarm(budget(time_share) + 60):
        for b in range(n_batches):
            if time.perf_counter() > deadline:
                break
            data = synthetic_topk(rows, ctx, num_latents, k, seed=100 + b)
            if profile and b == 1:  # torch.profiler on one batch (not the first: it is all inserts into empty tables)
                from torch.profiler import ProfilerActivity
                from torch.profiler import profile as tprofile

                with tprofile(activities=[ProfilerActivity.CPU]) as prof:
                    col.update(*data, row_offset=b * rows)
                tp_table = [
                    {"op": e.key, "self_cpu_ms": round(e.self_cpu_time_total / 1e3, 1), "calls": e.count}
                    for e in sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:15]
                ]
                continue
            if profile and b >= 2 and pr is None:
                pr = cProfile.Profile()
            t1 = time.perf_counter()
            if pr is not None:
                pr.enable()
            col.update(*data, row_offset=b * rows)
            if pr is not None:
                pr.disable()
            times.append(round(time.perf_counter() - t1, 3))
    out = {
        "num_latents": num_latents,
        "rows": rows,
        "ctx_len": ctx,
        "k": k,
        "tokens_per_batch": rows * ctx,
        "candidates_per_batch": rows * ctx * k,
        "table_allocation_seconds": round(alloc, 3),
        "batch_seconds": times,
        "profiled_batch": 1 if tp_table else None,
        "tokens_per_second_per_layer": round(len(times) * rows * ctx / sum(times), 1) if times else None,
        "filled_slots": {
            "top": round(float(col.top.filled().float().mean()), 3),
            "sample": round(float(col.sample.filled().float().mean()), 3),
            "silent": round(float(col.silent.filled().float().mean()), 3) if col.silent is not None else None,
        },
        "peak_rss_gib": peak_rss_gib(),
    }
    if pr is not None:
        stats = pstats.Stats(pr, stream=io.StringIO())
        rows_out = []
        for (file, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():
            name = f"{Path(file).name}:{line}:{func}" if file != "~" else func
            rows_out.append({"function": name, "calls": nc, "tottime_s": round(tt, 3), "cumtime_s": round(ct, 3)})
        total = sum(times[1:]) if len(times) > 1 else sum(times)
        out["cprofile_batches"] = f"batches 2..{1 + len(times) - 1} ({total:.2f} s)" if len(times) > 1 else "batch 2"
        out["cprofile_activations_py_by_cumtime"] = sorted(
            [r for r in rows_out if r["function"].startswith("activations.py")], key=lambda r: -r["cumtime_s"]
        )[:12]
        out["cprofile_by_tottime"] = sorted(rows_out, key=lambda r: -r["tottime_s"])[:15]
    if tp_table:
        out["torch_profiler_ops_by_self_cpu"] = tp_table
    del col
    return out


def section_update_profile(sec: dict) -> None:
    cfg = G.PARAMS.activations
    rows = ARGS.profile_rows or (2 if ARGS.smoke else cfg.batch_size)
    ctx = ARGS.profile_ctx or (32 if ARGS.smoke else G.PARAMS.tokens.ctx_len)
    if ARGS.smoke:
        cfg = dataclasses.replace(cfg, window=min(cfg.window, ctx))
    m = ARGS.latents or G.PARAMS.train.num_latents
    sec["main"] = update_profile(m, cfg, rows, ctx, ARGS.profile_batches, 0.09, profile=True)
    log(
        f"  update @ {m}: batches {sec['main']['batch_seconds']} s, "
        f"{sec['main']['tokens_per_second_per_layer']} tok/s per layer"
    )
    for r in sec["main"].get("cprofile_by_tottime", [])[:6]:
        log(f"    {r['tottime_s']:8.3f} s self  {r['cumtime_s']:8.3f} s cum  {r['function']}")
    for r in sec["main"].get("torch_profiler_ops_by_self_cpu", [])[:6]:
        log(f"    {r['self_cpu_ms']:8.1f} ms self  {r['op']} x{r['calls']}")
    if ARGS.latents_probe:
        sec["latents_probe"] = update_profile(
            ARGS.latents_probe, cfg, rows, ctx, ARGS.profile_batches, 0.04, profile=False
        )
        log(f"  update @ {ARGS.latents_probe}: batches {sec['latents_probe']['batch_seconds']} s")


def section_attribution(sec: dict) -> None:
    from circuit_tracer import attribute
    from circuit_tracer.graph import compute_graph_scores

    if not G.CODERS:
        G.CODERS.update(random_coders(ARGS.latents or G.PARAMS.train.num_latents))
        sec["coders"] = "random init (train section missing)"
    gp = G.PARAMS.graphs
    bs = ARGS.attr_batch or gp.batch_size
    k = next(iter(G.CODERS.values())).cfg.k
    sec["config"] = {
        "backend": "transformerlens",
        "dtype": "fp32",
        "max_feature_nodes": ARGS.max_feature_nodes,
        "profile_max_feature_nodes": gp.max_feature_nodes,
        "batch_size": bs,
        "max_n_logits": gp.max_n_logits,
        "desired_logit_prob": gp.desired_logit_prob,
    }
    end = time.perf_counter() + budget(0.3)
    model_dir, ct_dir = Path(G.WORKDIR) / "model", Path(G.WORKDIR) / "circuit-tracer"
    G.MODEL.config.architectures = ["Qwen2ForCausalLM"]
    G.MODEL.config.save_pretrained(model_dir)
    G.TOKENIZER.save_pretrained(model_dir)
    sec["write_ct_files_seconds"] = round(G.write_ct_set(G.CODERS, ct_dir, k), 2)
    sec["ct_files_gib"] = gib(sum(f.stat().st_size for f in ct_dir.glob("*.safetensors")))
    G.CODERS.clear()
    gc.collect()
    t0 = time.perf_counter()
    with alarm(max(30.0, end - time.perf_counter())):
        rm = G.load_replacement(model_dir, ct_dir, torch.float32, n_ctx=max(ARGS.prompt_lengths))
    sec["load_seconds"] = round(time.perf_counter() - t0, 2)
    sec["rss_after_load_gib"] = rss_gib()
    log(f"  ReplacementModel loaded in {sec['load_seconds']} s, RSS {sec['rss_after_load_gib']} GiB")
    import logging

    phase_log = G.PhaseLog()
    ct_logger = logging.getLogger("attribution")
    ct_logger.addFilter(phase_log)
    common = dict(
        max_n_logits=gp.max_n_logits,
        desired_logit_prob=gp.desired_logit_prob,
        batch_size=bs,
        max_feature_nodes=ARGS.max_feature_nodes,
        verbose=True,
    )
    prompts = sec["prompts"] = {}
    try:
        warm = G.random_rows(1, min(16, ARGS.prompt_lengths[0]), G.SHAPE["vocab"], seed=12)[0]
        t0 = time.perf_counter()
        with alarm(max(20.0, end - time.perf_counter())):
            attribute(warm, rm, **{**common, "max_feature_nodes": min(ARGS.max_feature_nodes, bs)})
        sec["warmup_seconds"] = round(time.perf_counter() - t0, 2)
        last = None
        for n in ARGS.prompt_lengths:
            left = end - time.perf_counter()
            if last is not None:
                predicted = last[1] * (n / last[0]) ** 1.5
                if predicted > left:
                    prompts[str(n)] = {
                        "status": "skipped",
                        "reason": f"predicted {predicted:.0f} s > {left:.0f} s left",
                    }
                    log(f"  {n} tokens: skipped ({prompts[str(n)]['reason']})")
                    continue
            ids = G.random_rows(1, n, G.SHAPE["vocab"], seed=13 + n)[0]
            phase_log.lines.clear()
            reset_peak_rss()
            log(
                f"  {n} tokens: attribute (max_feature_nodes={ARGS.max_feature_nodes}, batch_size={bs}, {left:.0f} s left)"
            )
            t0 = time.perf_counter()
            try:
                with alarm(max(10.0, left)):
                    graph = attribute(ids, rm, **common)
                t_attr = time.perf_counter() - t0
                rec = {
                    "status": "ok",
                    "tokens": n,
                    "attribute_seconds": round(t_attr, 2),
                    "n_logits": int(len(graph.logit_targets)),
                    "selected_features": int(graph.selected_features.shape[0]),
                    **phase_log.phases(),
                }
                fa = rec.get("feature_attributions_s")
                if fa is not None:
                    n_b = math.ceil(ARGS.max_feature_nodes / bs)
                    rec["seconds_per_feature_batch"] = round(fa / n_b, 3)
                    rec["extrapolated_attribute_seconds_at_profile_max_feature_nodes"] = round(
                        t_attr - fa + fa * gp.max_feature_nodes / ARGS.max_feature_nodes, 1
                    )
                t1 = time.perf_counter()
                with alarm(max(10.0, end - t1 + 20)):
                    replacement, completeness = compute_graph_scores(graph)
                rec.update(
                    scores_seconds=round(time.perf_counter() - t1, 2),
                    replacement_score=round(float(replacement), 4),
                    completeness_score=round(float(completeness), 4),
                )
                del graph
                last = (n, t_attr)
            except (Exception, SectionTimeout) as exc:
                rec = {"tokens": n, **G.error_record(exc), "seconds_until_failure": round(time.perf_counter() - t0, 2)}
                last = (n, float("inf"))
            rec["peak_rss_gib"] = peak_rss_gib()
            prompts[str(n)] = rec
            log(
                f"    {rec.get('status')}: {rec.get('attribute_seconds')} s, phases "
                f"{ {k2: v for k2, v in rec.items() if k2.endswith('_s')} }, peak RSS {rec['peak_rss_gib']} GiB"
            )
    finally:
        ct_logger.removeFilter(phase_log)
        del rm
        gc.collect()
    ok = [p for p in prompts.values() if p.get("status") == "ok"]
    if len(ok) >= 2:
        a, b = ok[0], ok[-1]
        sec["scaling"] = {
            "attribute_seconds_exponent_in_tokens": round(
                math.log(b["attribute_seconds"] / a["attribute_seconds"]) / math.log(b["tokens"] / a["tokens"]), 2
            )
        }
    if len(ok) < len(prompts):
        sec["status"] = "partial"


# ---------------------------------------------------------------------------- table and main


def table_rows(data: dict) -> list[tuple[str, str, str, str]]:
    """(stage, seconds, peak RSS GiB, throughput / scaling) rows: the README table."""
    s, rows = data["sections"], []

    def row(name, sec, seconds, what):
        rows.append((name, "" if seconds is None else f"{seconds}", f"{sec.get('peak_rss_gib', '')}", what))

    if "build" in s:
        b = s["build"]
        row(
            "build (model init + tokenizer)",
            b,
            b.get("seconds"),
            f"{b.get('params_total', 0) / 1e6:.0f} M params ({b.get('params_gib_fp32')} GiB fp32)"
            if b.get("status") == "ok"
            else b.get("status"),
        )
    if "generate" in s:
        g = s["generate"]
        r = g.get("real_vocab", {})
        what = (
            f"batch {r.get('batch')}: prefill {r.get('prompt_tokens')} tok {r.get('prefill_seconds')} s, "
            f"{r.get('decode_seconds_per_step')} s/step"
            if r
            else g.get("status", "")
        )
        if g.get("vocab_probe"):
            p = g["vocab_probe"]
            what += f"; vocab {p['vocab']}: {p['decode_seconds_per_step']} s/step"
        row(f"generate ({ARGS.gen_new} new tokens)", g, r.get("generate_seconds"), what)
    if "train" in s:
        t = s["train"]
        for name, r in t.get("runs", {}).items():
            if r.get("status") == "ok":
                row(
                    f"train {name}",
                    r,
                    r.get("wall_seconds"),
                    f"{r['tokens_per_second']} tok/s ({r['steps_counted']} steps of {r['tokens_per_step']} tok, "
                    f"{r.get('achieved_gflops')} GFLOP/s)",
                )
            else:
                rows.append((f"train {name}", "", "", r.get("status", "?") + " " + (r.get("error") or "")[:60]))
        if "error" in t:
            rows.append(("train", "", "", t["error"][:80]))
    if "evaluate" in s:
        e = s["evaluate"]
        row(
            "evaluate (spliced CE/KL)",
            e,
            e.get("evaluate_seconds"),
            f"{e.get('tokens_per_second')} tok/s ({(e.get('config') or {}).get('model_forwards_per_batch')} forwards per batch)"
            if e.get("status") == "ok"
            else (e.get("error") or "")[:80],
        )
    if "activations" in s:
        a = s["activations"]
        for key in ("main", "latents_probe"):
            r = a.get(key)
            if r and "tokens_per_second" in r:
                pt = r["per_token_ms"]
                row(
                    f"activations collect() @ {r['num_latents']}",
                    r,
                    r["seconds"],
                    f"{r['tokens_per_second']} tok/s; ms/token: forward {pt['forward_and_rest']}, per layer encode "
                    f"{pt['encode_per_layer']} + update {pt['update_per_layer']}; tables {r['tables_gib']} GiB",
                )
        if "error" in a:
            rows.append(("activations", "", "", a["error"][:80]))
    if "update_profile" in s:
        u = s["update_profile"]
        for key in ("main", "latents_probe"):
            r = u.get(key)
            if r and r.get("batch_seconds"):
                hot = (r.get("cprofile_by_tottime") or [{}])[0].get("function", "")
                row(
                    f"LayerCollector.update @ {r['num_latents']} (1 layer, {r['tokens_per_batch']} tok/batch)",
                    r,
                    round(sum(r["batch_seconds"]), 2),
                    f"{r['tokens_per_second_per_layer']} tok/s per layer; batches "
                    f"{r['batch_seconds']} s" + (f"; hottest: {hot}" if hot else ""),
                )
        if "error" in u:
            rows.append(("update_profile", "", "", u["error"][:80]))
    if "attribution" in s:
        a = s["attribution"]
        if "load_seconds" in a:
            row(
                "attribution: write CT files + load",
                a,
                round(a.get("write_ct_files_seconds", 0) + a["load_seconds"], 2),
                f"{a.get('ct_files_gib')} GiB on disk",
            )
        for n, p in a.get("prompts", {}).items():
            if p.get("status") == "ok":
                rows.append(
                    (
                        f"attribution {n} tokens",
                        f"{p['attribute_seconds']}",
                        f"{p['peak_rss_gib']}",
                        f"{p.get('feature_attributions_s')} s in phase 4 ({a['config']['max_feature_nodes']} nodes); "
                        f"~{p.get('extrapolated_attribute_seconds_at_profile_max_feature_nodes')} s at "
                        f"{a['config']['profile_max_feature_nodes']}",
                    )
                )
            else:
                rows.append(
                    (
                        f"attribution {n} tokens",
                        "",
                        "",
                        p.get("status", "?") + " " + (p.get("error") or p.get("reason") or "")[:60],
                    )
                )
        if "error" in a:
            rows.append(("attribution", "", "", a["error"][:80]))
    return rows


def print_table(data: dict) -> None:
    rows = table_rows(data)
    data["table"] = [dict(zip(("stage", "seconds", "peak_rss_gib", "notes"), r, strict=True)) for r in rows]
    shape = data.get("shape", {})
    print("\n" + "=" * 100)
    print(
        f"real-shape CPU benchmark{' (SMOKE: tiny widths)' if data['smoke'] else ''}: {shape}, "
        f"{data.get('environment', {}).get('torch_threads')} threads"
    )
    print("| stage | seconds | peak RSS (GiB) | notes |\n|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")
    for name, sec in data["sections"].items():
        if sec.get("scaling"):
            print(f"scaling {name}: {sec['scaling']}")
    print(f"run peak RSS {data.get('peak_rss_gib')} GiB; wall {data.get('wall_seconds')} s")
    print("=" * 100, flush=True)


def main() -> int:
    torch.set_num_threads(ARGS.threads)
    G.DEVICE = "cpu"
    G.SHAPE = shape_for()
    G.ARGS.ctx_len = ARGS.ctx_len
    G.ARGS.train_warmup_steps = ARGS.train_warmup_steps
    G.CODERS = {}
    res = Results(ARGS.out)
    own_workdir = ARGS.workdir is None
    G.WORKDIR = tempfile.mkdtemp(prefix="cpu_real_shape_") if own_workdir else ARGS.workdir
    Path(G.WORKDIR).mkdir(parents=True, exist_ok=True)
    wanted = [s.strip() for s in ARGS.sections.split(",") if s.strip()]
    bad = [s for s in wanted if s not in SECTIONS]
    if bad:
        raise SystemExit(f"unknown sections {bad}; known: {SECTIONS}")
    try:
        env = G.environment()
        env.update(
            torch_threads=torch.get_num_threads(),
            cpu_count=os.cpu_count(),
            memory_total_gib=gib(psutil.virtual_memory().total),
            load_average=os.getloadavg(),
        )
        with contextlib.suppress(Exception):
            env["cpu_model"] = next(
                line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")
            )
        res.data.update(environment=env, args=vars(ARGS), shape=G.SHAPE)
        G.PARAMS, source = G.profile_params()
        res.data["profile"] = source
        if ARGS.smoke:
            G.PARAMS = dataclasses.replace(
                G.PARAMS, train=dataclasses.replace(G.PARAMS.train, num_latents=ARGS.latents or 1024)
            )
        log(f"CPU, {ARGS.threads} threads, shape {G.SHAPE}, latents {ARGS.latents or G.PARAMS.train.num_latents}")
        with section(res, "build") as sec:
            section_build(sec)
        if res.data["sections"]["build"]["status"] != "ok":
            return 1
        fns = {
            "generate": section_generate,
            "train": section_train,
            "evaluate": section_evaluate,
            "activations": section_activations,
            "update_profile": section_update_profile,
            "attribution": section_attribution,
        }
        for name in wanted:
            if remaining() < 10:
                res.data["sections"][name] = {"status": "skipped", "reason": "total budget spent"}
                continue
            with section(res, name) as sec:
                fns[name](sec)
    except KeyboardInterrupt:
        res.data["interrupted"] = f"after {time.perf_counter() - STARTED:.0f} s"
    finally:
        if own_workdir:
            shutil.rmtree(G.WORKDIR, ignore_errors=True)
        try:
            print_table(res.data)
        except Exception:  # noqa: BLE001
            traceback.print_exc()
        res.data.setdefault("environment", {})["load_average_end"] = os.getloadavg()
        res.write()
        log(f"results: {res.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
