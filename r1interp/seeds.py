"""Do the headline findings survive another organism seed? The pipeline rebuilt per seed, the claims compared.

    python -m r1interp.seeds run --seeds 1 2     # `dvc repro` of the claims' stages per seed in .seeds/seed-<n>
    python -m r1interp.seeds collect --seeds 1 2 # -> reports/seeds/spread.json (+ the README block via r1interp.readme)

Seed 0 is this workspace (the default params, `organism.seed: 0`); seed n is a copy of the project (the files git
tracks or would track, no outputs) with only `organism.seed` changed, sharing this project's DVC cache, so stages
that do not depend on the organisms (fetch, corpus) are restored from the run cache rather than rebuilt.
Run it with the project's environment active (the stages call `python`); the copies import `r1interp` from that
environment (this checkout, installed editable), so leave the code alone until the runs finish.

Each claim is a number computed from a seed's reports/ and a test of the claim on that seed; a claim "holds in
every seed" only when its test passes for each. The thresholds are the claims as the README words them, fixed
before looking at other seeds.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from r1interp import paths
from r1interp.errors import ArtifactError, ConfigError, R1InterpError
from r1interp.io import write_json
from r1interp.readme import Sources, _Differences

WORK_DIR = Path(".seeds")
SEED_KEY = "organism.seed"
# and what they need; not labels-only stages, the site
CLAIM_STAGES = ("organism-eval", "compare", "clusters", "interventions", "flaw")
ABLATION_MARGIN = 0.30  # "specific": the carry group loses >= 30 points more than the random control and no-carry
ARI_BAR = 0.5  # "the clusters recover the generator's step types"
COMPETENT = 0.95  # the organisms' bar (issue 17): a reasoner / other groups of the flawed organism at or above it
FLAW_BELOW = 0.60  # the flawed organism's pattern accuracy must stay under this
# "localises": the top-ranked units fire on the flawed step at least this many times as often as a random ranking's
# (set in stop 27 after seeing seeds 0 and 1: features ~20-27x, neurons ~1.0-1.4x)
LOCALISE_LIFT = 2.0


@dataclass(frozen=True)
class Claim:
    name: str
    text: str  # the claim, as the README states it
    value: Callable[[Sources], float]  # the number shown per seed
    holds: Callable[[Sources], bool]


def _ffl(comparison: str) -> Callable[[Sources], dict]:
    return lambda src: _Differences(src)(comparison, "coherent_fraction")


def _largest_ablation(src: Sources) -> dict:
    rows = src.get(paths.INTERVENTIONS_METRICS, "ablation_specificity")
    if not rows:
        raise ArtifactError(f"{paths.INTERVENTIONS_METRICS.as_posix()}: ablation_specificity is empty")
    return max(rows, key=lambda r: float(r["size"]))


def _ablation_margin(src: Sources) -> float:
    r = _largest_ablation(src)
    return float(r["drop_add_carry"]) - max(float(r["random_drop_add_carry"]), float(r["drop_add_no_carry"]))


def _flaw(src: Sources, *keys: str) -> Any:
    return src.get(paths.FLAW_METRICS, *keys)


def _reasoner_accuracy(src: Sources) -> float:
    return float(src.get(paths.ORGANISM_METRICS, "reasoner", "accuracy", "overall"))


def _flawed_groups(src: Sources) -> dict[str, float]:
    """The unmodified flawed organism's held-out accuracy per group."""
    arm = _flaw(src, "arms", "unmodified")
    return {g: float(r["accuracy"]) for g, r in arm.items() if isinstance(r, dict) and "accuracy" in r}


def _localise_lift(unit: str):
    """precision of the top-k attributed units for firing on the flawed step / the share of units that do."""

    def lift(src: Sources) -> float:
        loc = _flaw(src, "localise")
        loc = loc["features"] if unit == "feature" else loc
        precision = next(v for k, v in loc.items() if k.startswith("precision_at_"))
        return float(precision) / max(float(loc["selective_share"]), 1e-9)

    return lift


def _flawed_on_target(src: Sources) -> bool:
    groups = _flawed_groups(src)
    return groups["flaw"] < FLAW_BELOW and all(a >= COMPETENT for g, a in groups.items() if g != "flaw")


CLAIMS = (
    # the organisms first: a finding about an organism that cannot do the task means little
    Claim(
        "reasoner_competent",
        f"the reasoner solves at least {COMPETENT:.0%} of the held-out problems (accuracy shown)",
        _reasoner_accuracy,
        lambda s: _reasoner_accuracy(s) >= COMPETENT,
    ),
    Claim(
        "flawed_organism_on_target",
        f"the flawed organism fails its pattern (accuracy < {FLAW_BELOW:.0%}) and solves every other group "
        f"(>= {COMPETENT:.0%}) (lowest other-group accuracy shown)",
        lambda s: min(a for g, a in _flawed_groups(s).items() if g != "flaw"),
        _flawed_on_target,
    ),
    Claim(
        "ffl_reasoner_vs_base",
        "the reasoner's FFLs are more often sign-coherent than the base's (coherent share difference, CI above 0)",
        lambda s: _ffl("reasoner_vs_base")(s)["difference"],
        lambda s: _ffl("reasoner_vs_base")(s)["ci_low"] > 0,
    ),
    Claim(
        "ffl_think_vs_answer",
        "the reasoner's think graphs are less coherent than its answer graphs (coherent share difference, CI below 0)",
        lambda s: _ffl("think_vs_answer")(s)["difference"],
        lambda s: _ffl("think_vs_answer")(s)["ci_high"] < 0,
    ),
    Claim(
        "carry_ablation_specificity",
        f"ablating the carry cluster's top features costs add-with-carry at least "
        f"{ABLATION_MARGIN:.0%} more than a random set of equal size and than add-without-carry "
        "(largest ablation size; margin in accuracy points)",
        _ablation_margin,
        lambda s: _ablation_margin(s) >= ABLATION_MARGIN,
    ),
    Claim(
        "cluster_ari",
        f"the k-means clusters recover the generator's step types (ARI >= {ARI_BAR})",
        lambda s: float(s.get(paths.CLUSTERS_METRICS, "kmeans", "ari_vs_true_step_types")),
        lambda s: float(s.get(paths.CLUSTERS_METRICS, "kmeans", "ari_vs_true_step_types")) >= ARI_BAR,
    ),
    Claim(
        "localise_features",
        f"the top attributed transcoder features fire on the flawed step at least {LOCALISE_LIFT:g}x as often as a "
        "random ranking's (lift shown)",
        _localise_lift("feature"),
        lambda s: _localise_lift("feature")(s) >= LOCALISE_LIFT,
    ),
    Claim(
        "localise_neurons",
        f"the top attributed MLP neurons fire on the flawed step at least {LOCALISE_LIFT:g}x as often as a random "
        "ranking's (lift shown)",
        _localise_lift("neuron"),
        lambda s: _localise_lift("neuron")(s) >= LOCALISE_LIFT,
    ),
    Claim(
        "fix_steer",
        "gated steering of the localised neurons meets the repair bar (lift of the flaw group shown)",
        lambda s: float(_flaw(s, "arms", "steer", "lift")),
        lambda s: bool(_flaw(s, "verdicts", "steer", "meets_bar")),
    ),
    Claim(
        "fix_feature_steer",
        "gated steering of the localised transcoder features meets the repair bar (lift of the flaw group shown)",
        lambda s: float(_flaw(s, "arms", "feature_steer", "lift")),
        lambda s: bool(_flaw(s, "verdicts", "feature_steer", "meets_bar")),
    ),
    Claim(
        "fix_neuron_edit",
        "the neuron-column edit meets the repair bar (lift of the flaw group shown)",
        lambda s: float(_flaw(s, "arms", "neuron_edit", "lift")),
        lambda s: bool(_flaw(s, "verdicts", "neuron_edit", "meets_bar")),
    ),
    Claim(
        "fix_cluster_finetune",
        "the cluster-specific fine-tune meets the repair bar (lift of the flaw group shown)",
        lambda s: float(_flaw(s, "arms", "cluster_finetune", "lift")),
        lambda s: bool(_flaw(s, "verdicts", "cluster_finetune", "meets_bar")),
    ),
)


def seed_dir(seed: int, work: Path = WORK_DIR) -> Path:
    return work / f"seed-{seed}"


def _project_files(root: Path) -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    kept = []
    for rel in listed:
        generated = rel.startswith(paths.OUTPUT_ROOTS) and not rel.startswith(paths.INPUTS_IN_GIT)
        if (root / rel).is_file() and not generated and rel != "dvc.lock" and not rel.startswith(WORK_DIR.as_posix()):
            kept.append(rel)
    return kept


def prepare(seed: int, root: Path = Path("."), work: Path = WORK_DIR) -> Path:
    """A fresh copy of the project at work/seed-<n> with organism.seed = n, sharing root's DVC cache."""
    dest = root / seed_dir(seed, work)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for rel in _project_files(root):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, dest / rel)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["organism"]["seed"] = seed
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    for cmd in (
        ["git", "init", "-q"],
        [sys.executable, "-m", "dvc", "cache", "dir", str((root / ".dvc" / "cache").resolve())],
        ["git", "add", "-A"],
        [
            "git",
            "-c",
            "user.name=r1interp",
            "-c",
            "user.email=r1interp@localhost",
            "commit",
            "-qm",
            f"organism.seed {seed}",
        ],
    ):
        subprocess.run(cmd, cwd=dest, check=True, env=env, capture_output=True)
    return dest


def run(seeds: list[int], root: Path = Path("."), work: Path = WORK_DIR) -> None:
    copies = {seed: prepare(seed, root, work) for seed in seeds}  # all first: edits made meanwhile go in none
    for seed, dest in copies.items():
        print(f"seeds: organism.seed {seed}: dvc repro in {dest}", flush=True)
        proc = subprocess.run(
            [sys.executable, "-m", "dvc", "repro", *CLAIM_STAGES], cwd=dest, env={**os.environ, "DVC_NO_ANALYTICS": "1"}
        )
        if proc.returncode:
            raise R1InterpError(f"seeds: dvc repro failed for organism.seed {seed} (see the output above; {dest})")


def _check_same_params(root: Path, other: Path, seed: int) -> None:
    ours, theirs = (
        yaml.safe_load((root / "params.yaml").read_text()),
        yaml.safe_load((other / "params.yaml").read_text()),
    )
    ours["organism"]["seed"] = seed
    if ours != theirs:
        raise ArtifactError(
            f"{other}: its params differ from params.yaml beyond {SEED_KEY}",
            hint=f"rerun `python -m r1interp.seeds run --seeds {seed}`",
        )


def collect(seeds: list[int], root: Path = Path("."), work: Path = WORK_DIR) -> dict:
    """Every claim's value and verdict for this workspace (its own organism.seed) and each seed's copy."""
    own = int(yaml.safe_load((root / "params.yaml").read_text())["organism"]["seed"])
    sources = {own: Sources(root)}
    for seed in seeds:
        if seed == own:
            continue
        other = root / seed_dir(seed, work)
        if not (other / "params.yaml").is_file():
            raise ArtifactError(f"{other} is missing", hint=f"run `python -m r1interp.seeds run --seeds {seed}`")
        _check_same_params(root, other, seed)
        sources[seed] = Sources(other)
    claims = []
    for claim in CLAIMS:
        values = {str(s): round(float(claim.value(src)), 4) for s, src in sorted(sources.items())}
        holds = {str(s): bool(claim.holds(src)) for s, src in sorted(sources.items())}
        numbers = list(values.values())
        claims.append(
            {
                "name": claim.name,
                "claim": claim.text,
                "values": values,
                "holds": holds,
                "mean": round(statistics.fmean(numbers), 4),
                "sd": round(statistics.stdev(numbers), 4) if len(numbers) > 1 else math.nan,
                "min": min(numbers),
                "max": max(numbers),
                "holds_in_every_seed": all(holds.values()),
                "holds_in": sum(holds.values()),
            }
        )
    return {"seeds": sorted(sources), "varied": SEED_KEY, "claims": claims}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m r1interp.seeds", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=("run", "collect"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="organism seeds besides the workspace's")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            if any(s < 0 for s in args.seeds):
                raise ConfigError(f"--seeds: {args.seeds} has a negative seed; allowed: 0..2**32-1")
            run(args.seeds)
        out = collect(args.seeds)
        write_json(paths.SEEDS_SPREAD, out)
        for c in out["claims"]:
            print(f"{c['name']}: mean {c['mean']} sd {c['sd']} holds in {c['holds_in']}/{len(out['seeds'])} seeds")
        print(f"-> {paths.SEEDS_SPREAD}")
    except R1InterpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
