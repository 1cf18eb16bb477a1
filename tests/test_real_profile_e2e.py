"""`dvc repro` on the real profile (r1-distill-qwen-1.5b), every stage, through the local Hub server.

Stand-ins: two tiny Qwen2 models trained here (by the organism training code) on an OpenR1-Math-layout parquet
whose traces read like R1's (an opening line, deductions, "Wait, ..." backtracking, "Let me check" example
testing, "Hmm, I think ..." uncertainty, a `\\boxed{}` answer), uploaded to the local Hub server under the
profile's repo ids and re-keyed to its pinned commits. Nothing in the pipeline knows their sizes: the same
params as `configs/r1-distill-qwen-1.5b.yaml` (profile, anchors, segmentation, behaviour step types, packing)
with tiny budgets. The whole stage graph must run, the site must build, and the real-profile outputs must
carry what the profile promises: gold answers graded by math-verify, graph windows cut at sentence starts,
sentence steps annotated with R1 behaviours, interventions scored with behaviour metrics.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from helpers import REPO, _env, make_project, tiny_params_dict
from hub_server import PinningHubServer
from r1interp.config import parse_params, to_dict, write_params
from r1interp.models import PROFILES

pytestmark = pytest.mark.slow
PROFILE = "r1-distill-qwen-1.5b"
TOKEN = "hf_real_profile_token"
REAL_CONFIG = REPO / "configs" / f"{PROFILE}.yaml"


def _trace(rng: random.Random, a: int, b: int) -> tuple[str, str]:
    c = a + b
    lines = [f"Okay, so I need to add {a} and {b}.", f"The ones give {a % 10 + b % 10}."]
    if rng.random() < 0.6:
        lines.append(f"Wait, I should carry. The tens give {a // 10 + b // 10}.")
    if rng.random() < 0.5:
        lines.append(f"Let me check: {c} - {b} = {a}.")
    if rng.random() < 0.4:
        lines.append("Hmm, I think that is right.")
    lines.append(f"So {a} + {b} = {c}.")
    return "\n".join(lines), f"The answer is \\boxed{{{c}}}."


def openr1_parquet(path: Path, n: int = 240, seed: int = 0) -> Path:
    """OpenR1-Math-220k's layout (problem, answer, problem_type, uuid, generations, correctness_math_verify)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        think, answer = _trace(rng, a, b)
        rows.append({
            "problem": f"What is {a} plus {b}?", "solution": f"{a + b}", "answer": str(a + b),
            "problem_type": "Algebra" if i % 2 else "Number Theory", "uuid": f"uuid-{i:04d}",
            "generations": ["<think>\nunfinished", f"<think>\n{think}\n</think>\n\n{answer}"],
            "correctness_math_verify": [False, True],
        })  # fmt: skip
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = (
            _deep_merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
        )
    return out


def real_tiny_params(data_files: Path) -> dict:
    """The tiny budgets, with every real-profile key of configs/r1-distill-qwen-1.5b.yaml that is not a budget."""
    real = yaml.safe_load(REAL_CONFIG.read_text())
    over = {
        "model": real["model"],
        "corpus": {"hub": {"data_files": str(data_files), "max_examples": 240}},
        "organism": {"eval": {"problems_per_task": 6, "batch_size": 12, "max_new_tokens": 120},
                     "max_positions": 1024},  # the stand-ins' context: the benchmark prompts are long
        "tokens": {"packing": real["tokens"]["packing"], "ctx_len": 64},
        "graphs": {k: real["graphs"][k] for k in ("think_anchor", "answer_anchor")}
        | {"window_tokens": 48, "max_new_tokens": 120},
        "clusters": {"segment": real["clusters"]["segment"], "k_max": 4, "problems": 0},
        "interventions": {"target_step_type": real["interventions"]["target_step_type"],
                          "contrast_step_type": real["interventions"]["contrast_step_type"],
                          "finetune": {"step_type": real["interventions"]["finetune"]["step_type"], "problems": 8,
                                       "steps": 3, "features": 8},
                          "problems_per_group": 4, "max_new_tokens": 120, "batch_size": 16,
                          "ablation_sizes": [4], "edit": {"sizes": [2], "scales": [0.0]}},
    }  # fmt: skip
    return to_dict(parse_params(_deep_merge(tiny_params_dict(), over)))


@pytest.fixture(scope="module")
def standins(tmp_path_factory) -> tuple[dict[str, Path], Path]:
    """role -> a trained stand-in directory, and the OpenR1-layout parquet they were trained on."""
    from r1interp.corpus import openr1_corpus
    from r1interp.organism import build

    root = tmp_path_factory.mktemp("standins")
    parquet = openr1_parquet(root / "openr1.parquet")
    params = parse_params(real_tiny_params(parquet))
    corpus = openr1_corpus(params.corpus.hub, seed=0)
    dirs = {"base": root / "base", "reasoner": root / "reasoner"}
    build.train_base(corpus, params.organism, dirs["base"])
    build.train_reasoner(corpus, params.organism, dirs["base"], dirs["reasoner"])
    return dirs, parquet


@pytest.fixture(scope="module")
def hub(standins):
    from huggingface_hub import HfApi

    dirs, _ = standins
    with PinningHubServer(token=TOKEN, username="test-user") as server:
        api = HfApi(endpoint=server.url, token=TOKEN)
        for role, spec in PROFILES[PROFILE].items():
            api.create_repo(spec.repo_id)
            api.upload_folder(repo_id=spec.repo_id, folder_path=dirs[role], commit_message="stand-in",
                              allow_patterns=["*.json", "*.safetensors", "*.jinja", "*.txt"])  # fmt: skip
            server.pin_head(spec.repo_id, spec.revision)
        yield server


def _dvc(project: Path, env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=project, env=env, capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, f"dvc {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def test_dvc_repro_runs_every_stage_on_the_real_profile(hub, standins, tmp_path):
    _, parquet = standins
    project = make_project(tmp_path / "project")
    write_params(real_tiny_params(parquet), project / "params.yaml")
    env = _env() | {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_DISABLE_TELEMETRY": "1",
                    "HF_TOKEN": TOKEN}  # fmt: skip
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        env.pop(key, None)

    out = _dvc(project, env, "repro").stdout
    status = _dvc(project, env, "status").stdout
    assert "up to date" in status, status
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    stages = set(yaml.safe_load((project / "dvc.yaml").read_text())["stages"])
    assert {name.split("@")[0] for name in lock} == stages  # every stage of the graph ran, none by hand
    assert "installed from models/hub/reasoner" in out

    # the fetched models are what every later stage loads
    for role, spec in PROFILES[PROFILE].items():
        receipt = json.loads((project / "models/lm" / role / "fetch.json").read_text())
        assert (receipt["repo_id"], receipt["revision"]) == (spec.repo_id, spec.revision)

    # graded real problems: gold answers kept, graded by math-verify
    corpus = pd.read_parquet(project / "data/corpus/corpus.parquet")
    assert (
        corpus["gold"].astype(int) == corpus["prompt"].str.extract(r"What is (\d+) plus (\d+)").astype(int).sum(axis=1)
    ).all()
    bench = json.loads((project / "reports/metrics/organism.json").read_text())
    assert bench["grader"] == "math-verify" and bench["heldout_problems"] == 12
    assert set(bench["reasoner"]["accuracy"]) == {"Algebra", "Number Theory", "overall"}
    lo, hi = bench["reasoner"]["ci95"]["overall"]
    assert 0 <= lo <= bench["reasoner"]["accuracy"]["overall"] <= hi <= 1

    # graphs: targets at the profile's anchors, inputs cut to the window at a sentence start
    index = pd.read_parquet(project / "data/graphs/index.parquet")
    ok = index[index["status"] == "ok"]
    assert len(ok) > 0 and (ok["n_tokens"] <= 48).all(), index[["slug", "status", "reason", "n_tokens"]]
    cut = ok[ok["window_start"] > 0]
    assert len(cut) > 0
    graph = json.loads((project / "data/graphs" / cut["path"].iloc[0]).read_text())
    assert graph["metadata"]["info"]["window_start"] == int(cut["window_start"].iloc[0])
    assert graph["metadata"]["info"]["window_tokens"] == 48

    # clusters of sentence steps, against the R1 behaviour annotation
    clusters = json.loads((project / "reports/metrics/clusters.json").read_text())
    assert clusters["reference"] == "R1 behaviours (rule annotator)"
    steps = pd.read_parquet(project / "data/clusters/steps.parquet")
    assert {"initializing", "backtracking", "deduction"} <= set(steps["true_type"])
    assert steps.loc[steps["text"].str.startswith("Wait"), "true_type"].eq("backtracking").all()
    confusion = pd.read_csv(project / "reports/clusters/confusion.csv", index_col=0)
    assert confusion.to_numpy().sum() == len(steps)

    # interventions: backtracking clusters' features, graded groups, behaviour metrics
    iv = json.loads((project / "reports/metrics/interventions.json").read_text())
    assert iv["feature_ranking"]["target_step_type"] == "backtracking"
    assert set(iv["groups"]) == {"Algebra", "Number Theory"}
    for cell in iv["baseline"].values():
        assert {"backtracking_per_trace", "uncertainty_per_trace", "finished", "think_tokens"} <= set(cell)
    assert iv["ablation"] and iv["steering"]

    assert (project / "reports/site/index.html").is_file()

    # switching a graph-only parameter reruns graphs and what reads them, not the models or transcoders
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["graphs"]["window_tokens"] = 40
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stale = _dvc(project, env, "status").stdout
    assert "graphs:" in stale and "organism@reasoner:" not in stale and "train@all:" not in stale, stale
