"""The `fetch` stage and the real profile's first stages, through the real huggingface_hub client against the
local Hub server (tests/hub_server.py), with tiny Qwen2 stand-ins under the real repo ids.

The profile pins real Hub commit shas, which a fresh server cannot have: it names its commits itself. So
the server (and only the server) re-keys each stand-in's head commit to the pinned sha, exactly what the
real Hub serves at that pin; the client, `fetch_model` and the profile stay unmodified.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from helpers import _env, make_project
from hub_server import HubServer, PinningHubServer
from r1interp.data import load_token_split
from r1interp.fetch import fetch_model
from r1interp.models import PROFILES, ModelSpec, load_model
from r1interp.registry.hub import HubError

TOKEN = "hf_fetch_test_token"
PROFILE = "r1-distill-qwen-1.5b"
SPECS = PROFILES[PROFILE]
BIN_ONLY = "acme/pickled-only"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def standins(tokenizer, tiny_model_kwargs, tmp_path_factory) -> dict[str, tuple[Path, object]]:
    """role -> (saved directory, model): tiny Qwen2s saved the way the organisms are (safetensors, chat template)."""
    from r1interp.organism.train import build_model

    out = {}
    for seed, role in enumerate(("reasoner", "base"), start=1):
        model = build_model(len(tokenizer), **{**tiny_model_kwargs, "max_positions": 256, "seed": seed}).eval()
        path = tmp_path_factory.mktemp(f"standin-{role}")
        model.save_pretrained(path, safe_serialization=True)
        tokenizer.save_pretrained(path)
        (path / "README.md").write_text(f"# stand-in {role}\n")
        out[role] = (path, model)
    return out


@pytest.fixture(scope="module")
def hub(standins, tmp_path_factory):
    from huggingface_hub import HfApi

    with PinningHubServer(token=TOKEN, username="test-user") as server:
        api = HfApi(endpoint=server.url, token=TOKEN)
        for role, spec in SPECS.items():
            api.create_repo(spec.repo_id)
            api.upload_folder(repo_id=spec.repo_id, folder_path=standins[role][0], commit_message="stand-in")
            server.pin_head(spec.repo_id, spec.revision)
        # a repo with pickled weights only: config and tokenizer, plus pytorch_model.bin
        pickled = tmp_path_factory.mktemp("pickled")
        for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
            (pickled / name).write_bytes((standins["base"][0] / name).read_bytes())
        (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
        api.create_repo(BIN_ONLY)
        api.upload_folder(repo_id=BIN_ONLY, folder_path=pickled)
        yield server


def _hub_env(hub: HubServer, tmp_path: Path) -> dict[str, str]:
    env = _env()
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1", HF_TOKEN=TOKEN)
    return env


def _stage(project: Path, env: dict, name: str) -> subprocess.CompletedProcess:
    return _run(project, env, f"stages/{name}.py")


def _run(project: Path, env: dict, script: str, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, script, *args, "--params", "params.yaml"], cwd=project, env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, f"{script} {args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _resolves(hub: HubServer, since: int, method: str = "GET") -> int:
    return sum(1 for m, path in hub.requests[since:] if m == method and "/resolve/" in path)


def _openr1_file(path: Path) -> Path:
    """A few rows in the OpenR1-Math-220k layout, including generations the corpus must skip."""
    rows = []
    for i in range(12):
        a, b = 10 + i, 23 + 2 * i
        think = f"Add the ones: {a % 10}+{b % 10}. Then the tens. So {a}+{b}={a + b}."
        good = f"<think>\n{think}\n</think>\n\nThe answer is {a + b}."
        rows.append({
            "problem": f"What is {a}+{b}?", "solution": str(a + b), "answer": str(a + b), "problem_type": "Algebra",
            "uuid": f"uuid-{i:03d}", "generations": ["<think>\nunfinished", good],
            "correctness_math_verify": [False, True], "is_reasoning_complete": [False, True],
        })  # fmt: skip
    rows.append({**rows[0], "uuid": "uuid-wrong", "correctness_math_verify": [False, False]})  # no verified trace
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


def test_fetch_stage_then_the_real_profile_corpus_and_tokens(hub, standins, tokenizer, tmp_path):
    project = make_project(tmp_path / "project")
    env = _hub_env(hub, tmp_path)

    # the organism profile downloads nothing, but the stage's output exists
    start = len(hub.requests)
    out = _stage(project, env, "fetch").stdout
    assert "nothing to download" in out and hub.requests[start:] == []
    assert "downloads no model" in (project / "models/hub/README.md").read_text()

    from r1interp.config import merge_override

    real = merge_override(project / "configs" / f"{PROFILE}.yaml")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["model"]["profile"] = PROFILE
    for section in ("clusters", "interventions"):  # the profile's step types
        params[section] = real[section]
    params["corpus"]["hub"]["data_files"] = str(_openr1_file(tmp_path / "openr1.parquet"))
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    start = len(hub.requests)
    out = _stage(project, env, "fetch").stdout
    assert "fetch reasoner:" in out and "fetch base:" in out and "verified" in out
    downloaded = 0
    for role, spec in SPECS.items():
        local, model = project / spec.download_dir, standins[role][1]
        receipt = json.loads((local / "fetch.json").read_text())
        assert (receipt["repo_id"], receipt["revision"]) == (spec.repo_id, spec.revision)
        uploaded = {p.name for p in standins[role][0].iterdir()}  # everything but the Hub's .gitattributes
        assert set(receipt["files"]) == uploaded and {p.name for p in local.iterdir()} == uploaded | {"fetch.json"}
        downloaded += len(uploaded)
        assert not list(local.glob(".cache")) and not list(local.parent.glob(f".{local.name}.tmp-*"))
        assert receipt["bytes"] == sum(f["size"] for f in receipt["files"].values())
        # the same weights, tokenizer and chat template as the stand-in
        loaded = load_model(local)
        chat = [{"role": "user", "content": "What is 12+34?"}]
        ids = loaded.tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt")
        expected = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt")
        assert ids.tolist() == expected.tolist()
        with torch.no_grad():
            assert torch.equal(loaded.model(ids).logits, model(ids).logits)
    assert "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B" in (project / "models/hub/README.md").read_text()
    assert _resolves(hub, start) == downloaded

    # a second fetch: nothing downloaded, not even the file list
    start = len(hub.requests)
    out = _stage(project, env, "fetch").stdout
    assert out.count("nothing downloaded") == 2 and hub.requests[start:] == []

    # organism@<role> installs each verified download where every later stage loads models from
    for role, spec in SPECS.items():
        _run(project, env, "stages/organism.py", role)
        installed = project / spec.local_dir
        assert {p.name for p in installed.iterdir()} == {p.name for p in (project / spec.download_dir).iterdir()}
        assert (installed / "model.safetensors").read_bytes() == (
            project / spec.download_dir / "model.safetensors"
        ).read_bytes()

    # the real profile's corpus (OpenR1 layout from a local file) and tokens, on the fetched tokenizer
    out = _stage(project, env, "corpus").stdout
    corpus = pd.read_parquet(project / "data/corpus/corpus.parquet")
    assert len(corpus) == 12 and "uuid-wrong" not in set(corpus["id"]) and set(corpus["split"]) == {"train", "heldout"}
    assert corpus["text"].str.startswith("<｜begin▁of▁sentence｜><｜User｜>").all()
    _stage(project, env, "tokens")
    vocab = load_model(project / SPECS["reasoner"].local_dir).arch.vocab_size
    for split in ("train", "heldout"):
        ds, meta = load_token_split(project / "data/tokens" / split, vocab_size=vocab)
        assert meta["tokenizer"] == str(SPECS["reasoner"].local_dir) and len(ds) == meta["rows"] > 0
        assert meta["think_fraction"] > 0 and meta["answer_fraction"] > 0


def _spec(repo_id: str, revision: str) -> ModelSpec:
    return ModelSpec("reasoner", repo_id, revision)


@pytest.fixture
def local_hub(hub, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.delenv("HF_TOKEN", raising=False)  # public repos: no token needed
    return hub


def test_pickled_weights_only_is_refused_before_any_download(local_hub, tmp_path):
    start = len(local_hub.requests)
    with pytest.raises(HubError, match=r"no \*\.safetensors weights: it only has pytorch_model\.bin"):
        fetch_model(_spec(BIN_ONLY, local_hub.branch_head(BIN_ONLY)), tmp_path / "m", log=lambda _: None)
    assert _resolves(local_hub, start, "GET") == _resolves(local_hub, start, "HEAD") == 0
    assert not (tmp_path / "m").exists()


def test_unknown_revision_repo_and_branch_names_fail_clearly(local_hub, tmp_path):
    repo = SPECS["base"].repo_id
    with pytest.raises(HubError, match=f"{repo}: revision {'0' * 40} not found"):
        fetch_model(_spec(repo, "0" * 40), tmp_path / "m")
    with pytest.raises(HubError, match="acme/no-such-model: repository not found"):
        fetch_model(_spec("acme/no-such-model", SPECS["base"].revision), tmp_path / "m")
    with pytest.raises(Exception, match="full 40-hex commit sha"):
        fetch_model(_spec(repo, "main"), tmp_path / "m")  # a branch is never a pin
    assert not (tmp_path / "m").exists()


def test_network_failure_is_one_line(monkeypatch, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(HubError, match="network failure reaching http://127.0.0.1"):
        fetch_model(SPECS["base"], tmp_path / "m", log=lambda _: None)


def test_an_interrupted_download_resumes(local_hub, standins, tmp_path):
    spec, dest = SPECS["base"], tmp_path / "models" / "base"
    local_hub.fail_next("resolve", status=403)  # the first file request fails (a 5xx would be retried)
    with pytest.raises(HubError, match="download failed"):
        fetch_model(spec, dest, log=lambda _: None)
    staging = tmp_path / "models" / ".base.tmp-download"
    assert not dest.exists() and staging.is_dir()
    # the files that came before the failure stopped the download (how many depends on thread scheduling:
    # huggingface_hub cancels the downloads that had not started yet)
    kept = {p.relative_to(staging) for p in staging.rglob("*") if p.is_file() and ".cache" not in p.parts}
    start = len(local_hub.requests)
    receipt = fetch_model(spec, dest, log=lambda _: None)
    assert _resolves(local_hub, start) == len(receipt["files"]) - len(kept) >= 1  # only what is missing
    assert {Path(f) for f in receipt["files"]} >= kept
    assert receipt["revision"] == spec.revision and not (tmp_path / "models" / ".base.tmp-download").exists()
    assert (dest / "model.safetensors").read_bytes() == (standins["base"][0] / "model.safetensors").read_bytes()


# ---------------------------------------------------------------- a hostile mirror and careless --out


HOSTILE = "acme/hostile-mirror"
ESCAPE = f"escape-{uuid.uuid4().hex[:8]}"  # where `../ESCAPE/pwned.json` would land: unique, so no other run made it
PLANTED = f"../{ESCAPE}/pwned.json"


@pytest.fixture(scope="module")
def hostile_sha(hub, standins) -> str:
    """A model repo whose head also lists `../<ESCAPE>/pwned.json` (which the upload API would never accept)."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub.url, token=TOKEN)
    api.create_repo(HOSTILE)
    api.upload_folder(repo_id=HOSTILE, folder_path=standins["base"][0])
    return hub.plant_file(HOSTILE, PLANTED, b'{"pwned": true}')


def test_fetch_from_a_hostile_mirror_writes_nothing_anywhere(local_hub, hostile_sha, tmp_path):
    start = len(local_hub.requests)
    dest = tmp_path / "models" / "hub" / "base"
    with pytest.raises(HubError, match=rf"acme/hostile-mirror@\w{{12}}: the remote lists '{re.escape(PLANTED)}', "
                                       r"which has a '..' part"):  # fmt: skip
        fetch_model(_spec(HOSTILE, hostile_sha), dest, log=lambda _: None)
    assert _resolves(local_hub, start, "GET") == _resolves(local_hub, start, "HEAD") == 0
    assert list(tmp_path.rglob("*")) == []  # not even the staging folder


def test_pull_from_a_hostile_mirror_writes_nothing_anywhere(local_hub, hostile_sha, tmp_path, monkeypatch):
    from r1interp.registry.pull import pull

    monkeypatch.chdir(tmp_path)
    start = len(local_hub.requests)
    with pytest.raises(HubError, match=rf"the remote lists '{re.escape(PLANTED)}', which has a '..' part"):
        pull(HOSTILE, hostile_sha, tmp_path / "pulled" / "set", manifest=tmp_path / "releases.yaml")
    assert _resolves(local_hub, start, "GET") == _resolves(local_hub, start, "HEAD") == 0
    assert list(tmp_path.rglob("*")) == []
    assert not (Path(tempfile.gettempdir()) / ESCAPE).exists()  # where the pull's temp folder's '..' leads


def test_pull_never_replaces_a_folder_it_did_not_write(local_hub, tmp_path, monkeypatch):
    from r1interp.errors import ArtifactError
    from r1interp.registry.pull import pull

    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    start = len(local_hub.requests)
    with pytest.raises(ArtifactError, match=r"mine: exists, is not empty and is not an earlier pull \(no pull.json\)"):
        pull(SPECS["base"].repo_id, SPECS["base"].revision, mine)
    for out in (Path("."), tmp_path.parent):
        with pytest.raises(ArtifactError, match="is the current directory or a folder above it"):
            pull(SPECS["base"].repo_id, SPECS["base"].revision, out, replace=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArtifactError, match="exists and is not a directory"):
        pull(SPECS["base"].repo_id, SPECS["base"].revision, tmp_path / "file")
    assert local_hub.requests[start:] == []  # refused before any request
    assert (mine / "notes.txt").read_text() == "keep me"


# ---------------------------------------------------------------- pins, manifests and network failures of pull


def test_a_branch_or_no_revision_is_not_a_pin(local_hub):
    from huggingface_hub import HfApi

    from r1interp.registry.hub import check_pinned

    repo = SPECS["base"].repo_id
    sha = local_hub.branch_head(repo)
    hf = HfApi(endpoint=local_hub.url, token=TOKEN)
    tag = f"v-{uuid.uuid4().hex[:6]}"
    hf.create_tag(repo, tag=tag, revision=sha)
    with pytest.raises(
        HubError, match=rf"{repo}: revision 'main' is a branch, not a pin \(a commit sha or tag\); refusing"
    ):
        check_pinned(hf, repo, "main", sha)
    with pytest.raises(HubError, match=rf"{repo}: no revision given, not a pin"):
        check_pinned(hf, repo, None, sha)
    assert check_pinned(hf, repo, sha, sha) and check_pinned(hf, repo, tag, sha)
    lines: list[str] = []
    assert check_pinned(hf, repo, "main", sha, allow_unpinned=True, log=lines.append) is False
    assert lines == [f"warning: {repo}: revision 'main' is a branch, not a pin; using its current commit {sha[:12]} "
                     "(not reproducible)"]  # fmt: skip


def test_pull_refuses_a_branch_an_unlisted_release_and_a_non_manifest_before_downloading(
    local_hub, tmp_path, monkeypatch
):
    from r1interp.errors import ArtifactError
    from r1interp.registry.pull import pull

    monkeypatch.chdir(tmp_path)
    repo = SPECS["base"].repo_id
    start = len(local_hub.requests)
    with pytest.raises(HubError, match="revision 'main' is a branch, not a pin"):
        pull(repo, "main", tmp_path / "a", manifest=tmp_path / "releases.yaml")
    with pytest.raises(HubError, match=rf"{repo}@\w{{12}}: not in .*releases.yaml; refusing an unverified release"):
        pull(repo, SPECS["base"].revision, tmp_path / "a", manifest=tmp_path / "releases.yaml", require_manifest=True)
    for text, why in (("model:\n  profile: organism\n", "expected a mapping with a 'releases' list"),
                      ("- 1\n- 2\n", "expected a mapping with a 'releases' list"),
                      ("releases: [\n", "not valid YAML text")):  # fmt: skip
        (tmp_path / "not-a-manifest.yaml").write_text(text)
        with pytest.raises(ArtifactError, match=rf"not-a-manifest.yaml: not a release manifest: {re.escape(why)}"):
            pull(repo, SPECS["base"].revision, tmp_path / "a", manifest=tmp_path / "not-a-manifest.yaml")
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ArtifactError, match="binary.yaml: not a release manifest"):
        pull(repo, SPECS["base"].revision, tmp_path / "a", manifest=tmp_path / "binary.yaml")
    assert _resolves(local_hub, start, "GET") == _resolves(local_hub, start, "HEAD") == 0
    assert not (tmp_path / "a").exists()


def test_pull_network_failure_is_one_line(monkeypatch, tmp_path):
    from r1interp.registry.pull import pull

    monkeypatch.chdir(tmp_path)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(
        HubError, match=rf"acme/set@v1: network failure reaching http://127.0.0.1:{port} \(ConnectionError\)"
    ):
        pull("acme/set", "v1", tmp_path / "a", manifest=tmp_path / "releases.yaml")
    assert list(tmp_path.iterdir()) == []
