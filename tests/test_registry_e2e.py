"""Publishing and pulling releases through the real huggingface_hub client against the local Hub server
(tests/hub_server.py), on the tiny pipeline's real artifacts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file, save_file

from helpers import _env, copied_project
from hub_server import HubServer
from r1interp.registry.manifest import read_manifest

TOKEN = "hf_secret_test_token_123"
MODEL_REPO = "r1interp-test/organism-reasoner-transcoders"
DATA_REPO = "r1interp-test/organism-reasoner-labels"
ELEUTHER = "EleutherAI/skip-transcoder-DeepSeek-R1-Distill-Qwen-1.5B-65k"
CLI = [sys.executable, "-m", "r1interp.cli"]
pytestmark = pytest.mark.slow


@pytest.fixture
def hub(tmp_path):
    with HubServer(token=TOKEN, username="r1interp-test") as server:
        yield server


def _env_for(hub: HubServer, tmp_path: Path, token: str | None = TOKEN) -> dict[str, str]:
    env = _env()
    env["HF_ENDPOINT"] = hub.url
    env["HF_HOME"] = str(tmp_path / "hf-home")
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    env.pop("HF_TOKEN", None)
    if token:
        env["HF_TOKEN"] = token
    return env


def _cli(project: Path, env: dict, *args: str, check: bool = True):
    import subprocess

    proc = subprocess.run(CLI + list(args), cwd=project, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc


@pytest.fixture(scope="module")
def built(pipeline_project, tmp_path_factory) -> Path:
    """A copy of the shared tiny pipeline (publishing writes releases.yaml into the project)."""
    return copied_project(pipeline_project, tmp_path_factory.mktemp("registry") / "project")


@pytest.fixture
def project(built):
    """The built tiny project, with releases.yaml and pulled sets removed afterwards."""
    yield built
    for leftover in ("releases.yaml",):
        (built / leftover).unlink(missing_ok=True)
    import shutil

    shutil.rmtree(built / "models/pulled", ignore_errors=True)


PUBLISH = ("publish", "--repo", MODEL_REPO, "--dataset-repo", DATA_REPO)


def test_publish_needs_the_token_and_dry_run_needs_nothing(project, hub, tmp_path):
    proc = _cli(project, _env_for(hub, tmp_path, token=None), *PUBLISH, check=False)
    assert proc.returncode == 2 and "HF_TOKEN is not set" in proc.stderr
    dry = _cli(project, _env_for(hub, tmp_path, token=None), *PUBLISH, "--dry-run")
    assert "layers.0.mlp/sae.safetensors" in dry.stdout and "labels.parquet" in dry.stdout
    assert "dry run: nothing uploaded" in dry.stdout
    assert hub.requests == [] and not (project / "releases.yaml").exists()


def test_publish_then_pull_round_trips_and_is_idempotent(project, hub, tmp_path):
    env = _env_for(hub, tmp_path)
    out = _cli(project, env, *PUBLISH)
    assert "released" in out.stdout
    releases = {r["kind"]: r for r in read_manifest(project / "releases.yaml")}
    model, data = releases["model"], releases["dataset"]
    assert model["revision"] == hub.branch_head(MODEL_REPO) and data["revision"] == hub.branch_head(
        DATA_REPO, "dataset"
    )
    assert set(model["files"]) >= {
        "layers.0.mlp/sae.safetensors",
        "circuit-tracer/config.yaml",
        "README.md",
        "r1interp.json",
    }
    commits = hub.commit_count(MODEL_REPO), hub.commit_count(DATA_REPO, "dataset")

    # the same artifacts again: no new commit, same release, the manifest untouched
    before = (project / "releases.yaml").read_bytes()
    again = _cli(project, env, *PUBLISH)
    assert "already up to date" in again.stdout and "already in releases.yaml" in again.stdout
    assert (project / "releases.yaml").read_bytes() == before
    assert (hub.commit_count(MODEL_REPO), hub.commit_count(DATA_REPO, "dataset")) == commits

    # the card: YAML front matter the Hub understands, and the numbers of this run
    from huggingface_hub import HfApi, hf_hub_download

    api = HfApi(endpoint=hub.url, token=TOKEN)
    assert model["tag"] in [t.name for t in api.list_repo_refs(MODEL_REPO).tags]
    readme = Path(
        hf_hub_download(
            MODEL_REPO, "README.md", revision=model["revision"], endpoint=hub.url, cache_dir=tmp_path / "dl"
        )
    ).read_text()
    front = yaml.safe_load(readme.split("---")[1])
    assert front["library_name"] == "sparsify" and front["license"] and "skip-transcoder" in front["tags"]
    assert "CE increase" in readme and "load_from_hub" in readme

    # the token is nowhere: not in the manifest, the card or any uploaded file
    snapshot = Path(api.snapshot_download(MODEL_REPO, revision=model["revision"], local_dir=tmp_path / "snap"))
    for path in [project / "releases.yaml", *snapshot.rglob("*")]:
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path

    # pull at the pinned revision: verified against the manifest, identical tensors, both layouts
    pulled = json.loads(
        _cli(project, env, "pull", MODEL_REPO, "--revision", model["revision"], "--model", "reasoner", "--json").stdout
    )
    assert pulled["verified_against_manifest"] and pulled["missing_layers"] == [] and pulled["layers"] == [0, 1]
    out_dir = project / pulled["out_dir"]
    for layer in (0, 1):
        mine = load_file(project / f"models/transcoders/reasoner/sparsify/layers.{layer}.mlp/sae.safetensors")
        theirs = load_file(out_dir / f"sparsify/layers.{layer}.mlp/sae.safetensors")
        assert mine.keys() == theirs.keys() and all((mine[k] == theirs[k]).all() for k in mine)
    assert (out_dir / "circuit-tracer/config.yaml").exists()


def test_pull_refuses_files_that_differ_from_the_manifest(project, hub, tmp_path):
    env = _env_for(hub, tmp_path)
    _cli(project, env, "publish", "--repo", MODEL_REPO)
    manifest = project / "releases.yaml"
    doc = yaml.safe_load(manifest.read_text())
    doc["releases"][0]["files"]["layers.1.mlp/sae.safetensors"] = "0" * 64
    manifest.write_text(yaml.safe_dump(doc))
    proc = _cli(project, env, "pull", MODEL_REPO, "--revision", doc["releases"][0]["revision"], check=False)
    assert proc.returncode == 2 and "sha256 differs" in proc.stderr and "layers.1.mlp/sae.safetensors" in proc.stderr
    assert not (project / "models/pulled").exists()


def test_failed_publish_leaves_no_release(project, hub, tmp_path):
    env = _env_for(hub, tmp_path)
    # a repo that exists with someone else's files
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(endpoint=hub.url, token=TOKEN)
    api.create_repo("r1interp-test/other")
    api.create_commit("r1interp-test/other", [CommitOperationAdd("model.bin", b"not ours")], commit_message="x")
    proc = _cli(project, env, "publish", "--repo", "r1interp-test/other", check=False)
    assert proc.returncode == 2 and "exists with other content" in proc.stderr
    # the connection drops during the commit: nothing committed, nothing recorded; a re-run completes
    hub.fail_next_commit(drop_connection=True)
    proc = _cli(project, env, "publish", "--repo", MODEL_REPO, check=False)
    assert proc.returncode == 2 and "nothing was recorded" in proc.stderr
    assert TOKEN not in proc.stderr + proc.stdout
    assert not (project / "releases.yaml").exists()
    assert hub.commit_count(MODEL_REPO) == 1  # only the repo's initial commit
    _cli(project, env, "publish", "--repo", MODEL_REPO)
    assert read_manifest(project / "releases.yaml")[0]["revision"] == hub.branch_head(MODEL_REPO)


def test_pull_eleutherai_layout_with_missing_layers(project, hub, tmp_path):
    """A stand-in for EleutherAI's release: `layers.N.mlp/{cfg.json,sae.safetensors}`, the old cfg without a
    `transcode` key, and fewer layers than the model (layer 0 only of the tiny 2-layer reasoner)."""
    from huggingface_hub import HfApi

    src = load_file(project / "models/transcoders/reasoner/sparsify/layers.0.mlp/sae.safetensors")
    cfg = json.loads((project / "models/transcoders/reasoner/sparsify/layers.0.mlp/cfg.json").read_text())
    old_cfg = {
        "expansion_factor": cfg.get("expansion_factor", 8),
        "normalize_decoder": True,
        "num_latents": int(src["encoder.weight"].shape[0]),
        "k": cfg["k"],
        "multi_topk": False,
        "skip_connection": True,
        "d_in": cfg["d_in"],
    }  # no "transcode" key, as in the 65k release
    folder = tmp_path / "eleuther" / "layers.0.mlp"
    folder.mkdir(parents=True)
    save_file(src, folder / "sae.safetensors")
    (folder / "cfg.json").write_text(json.dumps(old_cfg))
    (tmp_path / "eleuther" / "pytorch_model.bin").write_bytes(b"pickles are never downloaded")
    api = HfApi(endpoint=hub.url, token=TOKEN)
    api.create_repo(ELEUTHER)
    api.upload_folder(repo_id=ELEUTHER, folder_path=tmp_path / "eleuther")
    env = _env_for(hub, tmp_path, token=None)  # a public repo needs no token
    refused = _cli(project, env, "pull", ELEUTHER, "--model", "reasoner", "--json", check=False)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith(f"error: {ELEUTHER}: no revision given, not a pin (a commit sha or tag); refusing")
    unpinned = _cli(project, env, "pull", ELEUTHER, "--model", "reasoner", "--json", "--allow-unpinned")
    assert f"warning: {ELEUTHER}: no revision given, not a pin; using its current commit " in unpinned.stderr
    pulled = json.loads(unpinned.stdout)
    assert pulled["layers"] == [0] and pulled["missing_layers"] == [1]
    assert pulled["skipped_files"] == ["pytorch_model.bin"] and not pulled["verified_against_manifest"]
    out_dir = project / pulled["out_dir"]
    assert not (out_dir / "circuit-tracer").exists() and not list(out_dir.rglob("*.bin"))
    assert not any("pytorch_model.bin" in path for _, path in hub.requests)
    from r1interp.transcoders import load_coders

    coders = load_coders(out_dir / "sparsify")
    assert list(coders) == [0] and coders[0].cfg.transcode is False  # old cfg: loaded as it was trained
    text = _cli(project, env, "pull", ELEUTHER, "--model", "reasoner", "--revision", pulled["revision"]).stdout
    assert "missing layers: [1]" in text


def _stand_in(project: Path, hub: HubServer, tmp_path: Path) -> str:
    """Upload the EleutherAI-layout stand-in (layer 0 only, old cfg) and return its commit sha."""
    from huggingface_hub import HfApi

    src = load_file(project / "models/transcoders/reasoner/sparsify/layers.0.mlp/sae.safetensors")
    cfg = json.loads((project / "models/transcoders/reasoner/sparsify/layers.0.mlp/cfg.json").read_text())
    folder = tmp_path / "stand-in" / "layers.0.mlp"
    folder.mkdir(parents=True)
    save_file(src, folder / "sae.safetensors")
    (folder / "cfg.json").write_text(
        json.dumps(
            {
                "num_latents": int(src["encoder.weight"].shape[0]),
                "k": cfg["k"],
                "d_in": cfg["d_in"],
                "skip_connection": True,
            }
        )
    )
    api = HfApi(endpoint=hub.url, token=TOKEN)
    api.create_repo(ELEUTHER, exist_ok=True)
    return api.upload_folder(repo_id=ELEUTHER, folder_path=tmp_path / "stand-in").oid


def test_train_source_pull_runs_through_evaluate(pipeline_project, hub, tmp_path):
    import shutil

    project = tmp_path / "pull-project"
    shutil.copytree(pipeline_project, project, symlinks=True)  # with its DVC cache: the shared one stays as is
    sha = _stand_in(project, hub, tmp_path)
    env = _env_for(hub, tmp_path, token=None)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["pull"].update(repos={"reasoner": ELEUTHER}, revision=sha, missing_layers="skip")
    params["train"].update(source="pull", models=["reasoner"])
    params["graphs"]["models"] = ["reasoner"]
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    def repro(target: str, ok: bool = True):
        import subprocess

        proc = subprocess.run(
            [sys.executable, "-m", "dvc", "repro", target], cwd=project, env=env, capture_output=True, text=True
        )
        assert (proc.returncode == 0) == ok, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc.stdout + proc.stderr

    trained_before = (project / "models/transcoders/train/all/training.json").read_bytes()
    out = repro("evaluate", ok=False)  # the stand-in is in no releases.yaml: its files are unverified
    assert f"error: {ELEUTHER}@{sha[:12]}: not in releases.yaml; refusing an unverified release" in out
    assert (project / "models/transcoders/train/all/training.json").read_bytes() == trained_before  # nothing lost
    params["train"]["pull"]["require_manifest"] = False
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = repro("evaluate")
    assert "missing [1]" in out and "circuit-tracer layout needs every layer" in out
    training = json.loads((project / "models/transcoders/train/all/training.json").read_text())["reasoner"]
    assert (training["pulled_layers"], training["missing_layers"], training["revision"]) == ([0], [1], sha)
    metrics = json.loads((project / "reports/metrics/transcoders.json").read_text())["reasoner"]
    assert set(metrics["layers"]) == {"0"}
    assert not (project / "models/transcoders/reasoner/circuit-tracer").exists()

    params["train"]["pull"]["missing_layers"] = "train"
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    repro("evaluate")
    training = json.loads((project / "models/transcoders/train/all/training.json").read_text())["reasoner"]
    assert training["pulled_layers"] == [0] and training["trained_layers"] == [1]
    metrics = json.loads((project / "reports/metrics/transcoders.json").read_text())["reasoner"]
    assert set(metrics["layers"]) == {"0", "1"}
    assert (project / "models/transcoders/reasoner/circuit-tracer/config.yaml").exists()
    pulled = load_file(project / "models/transcoders/reasoner/sparsify/layers.0.mlp/sae.safetensors")
    original = load_file(pipeline_project / "models/transcoders/reasoner/sparsify/layers.0.mlp/sae.safetensors")
    assert all((pulled[k] == original[k]).all() for k in original)
