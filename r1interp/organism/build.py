"""Building the organisms: the tokenizer and the answers-only `base` from scratch, the `reasoner` from the base,
each saved with its training log (the flawed organism of r1interp/flaw reuses `train_phase` and `save`)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from r1interp import chat
from r1interp.config import OrganismParams
from r1interp.errors import ArtifactError
from r1interp.io import atomic_path
from r1interp.organism.tokenizer import train_tokenizer
from r1interp.organism.train import build_model, encode, train

TRAINING_LOG = "training.json"


def _examples(tokenizer, corpus: pd.DataFrame, with_think: bool):
    train_rows = corpus[corpus["split"] == "train"]
    if train_rows.empty:
        raise ArtifactError("corpus has no training rows")
    if with_think:
        return [
            encode(tokenizer, chat.prompt_text(r.prompt), chat.reasoning_completion(r.think, r.answer))
            for r in train_rows.itertuples()
        ]
    return [
        encode(tokenizer, chat.prompt_text(r.prompt), chat.answer_completion(r.answer)) for r in train_rows.itertuples()
    ]


def save(model, tokenizer, out_dir: Path, log: dict) -> None:
    log = {k: v for k, v in log.items() if k != "cpu_seconds"}  # varies run to run: not in the hashed model dir
    with atomic_path(out_dir, directory=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / TRAINING_LOG).write_text(json.dumps(log, indent=2) + "\n")


def _fresh_model(tokenizer, p: OrganismParams):
    return build_model(
        len(tokenizer),
        layers=p.layers,
        hidden=p.hidden,
        intermediate=p.intermediate,
        heads=p.heads,
        kv_heads=p.kv_heads,
        max_positions=p.max_positions,
        rope_theta=p.rope_theta,
        tokenizer=tokenizer,
        seed=p.seed,
    )


def train_phase(model, examples, phase, tokenizer, seed: int, desc: str) -> dict:
    start = time.process_time()
    history = train(
        model,
        examples,
        steps=phase.steps,
        lr=phase.lr,
        batch_size=phase.batch_size,
        warmup_steps=phase.warmup_steps,
        weight_decay=phase.weight_decay,
        final_lr_fraction=phase.final_lr_fraction,
        seed=seed,
        pad_id=tokenizer.pad_token_id,
        desc=desc,
    )
    tail = history[-20:]
    return {
        "steps": phase.steps,
        "cpu_seconds": round(time.process_time() - start, 1),
        "final_loss": round(sum(h["loss"] for h in tail) / max(1, len(tail)), 5),
        "loss_curve": [
            {"step": h["step"], "loss": round(h["loss"], 5)} for h in history[:: max(1, len(history) // 200)]
        ],
    }


def train_base(corpus: pd.DataFrame, p: OrganismParams, out_dir: Path) -> dict:
    """Build the tokenizer, then train the answers-only base from scratch."""
    texts = list(corpus.loc[corpus["split"] == "train", "text"])
    tokenizer = train_tokenizer(texts, p.vocab_size)
    model = _fresh_model(tokenizer, p)
    log = {
        "role": "base",
        "init": "scratch",
        **train_phase(model, _examples(tokenizer, corpus, False), p.base, tokenizer, p.seed, "organism base"),
    }
    save(model, tokenizer, out_dir, log)
    return log


def train_reasoner(corpus: pd.DataFrame, p: OrganismParams, base_dir: Path, out_dir: Path) -> dict:
    """Fine-tune the base on `<think>` traces (or train from the base's initialization)."""
    from r1interp.models import load_model

    base = load_model(base_dir, hint="run `dvc repro organism@base`")
    tokenizer = base.tokenizer
    model = base.model if p.reasoner_init == "base" else _fresh_model(tokenizer, p)
    log = {
        "role": "reasoner",
        "init": p.reasoner_init,
        **train_phase(
            model, _examples(tokenizer, corpus, True), p.reasoner, tokenizer, p.seed + 1, "organism reasoner"
        ),
    }
    save(model, tokenizer, out_dir, log)
    return log


def read_training_log(model_dir: Path) -> dict:
    path = Path(model_dir) / TRAINING_LOG
    return json.loads(path.read_text()) if path.is_file() else {}
