"""End-to-end DVC remotes: repro, push, fresh clone, pull, `dvc status` clean, identical files.

Two remotes: the default local-directory remote that ships in .dvc/config (pointed at a temp dir
with `--local`, so a test never writes next to a real checkout), and an S3 remote served by a moto
server on 127.0.0.1 (fake credentials, never real AWS). Only the cheap `corpus` stage is reproduced.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from helpers import REPO, built_project, run

pytestmark = pytest.mark.slow

DVC = [sys.executable, "-m", "dvc"]
TARGET = "corpus"
DEFAULT_STORAGE = "r1interp-dvc-storage"  # the default remote dir, a sibling of the checkout
PREFIX = "dvc"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The tiny project with `dvc repro corpus` done and committed; tests work on copies of it."""
    return built_project(tmp_path_factory.mktemp("built"), TARGET)


def _copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, symlinks=True)
    return dest


def _lock_outs(project: Path) -> list[dict]:
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    return [out for stage in lock["stages"].values() for out in stage.get("outs", [])]


def _output_hashes(project: Path) -> dict[str, str]:
    """sha256 of every file of every output recorded in dvc.lock, by path relative to the project."""
    hashes = {}
    for out in _lock_outs(project):
        root = project / out["path"]
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            hashes[f.relative_to(project).as_posix()] = hashlib.sha256(f.read_bytes()).hexdigest()
    return hashes


def _expected_cache_keys(project: Path) -> set[str]:
    """Cache object paths (files/md5/xx/yyyy[.dir]) of the outputs in dvc.lock, directory entries included."""
    keys = set()
    for out in _lock_outs(project):
        md5 = out["md5"]
        keys.add(f"files/md5/{md5[:2]}/{md5[2:]}")
        if md5.endswith(".dir"):
            listing = json.loads((project / ".dvc/cache/files/md5" / md5[:2] / md5[2:]).read_text())
            keys.update(f"files/md5/{e['md5'][:2]}/{e['md5'][2:]}" for e in listing)
    return keys


def _assert_round_trip(original: Path, clone: Path, remote: str) -> None:
    """After `dvc pull` in the clone: workspace up to date, cache in sync with the remote, same bytes."""
    status = run([*DVC, "status", TARGET], clone).stdout
    assert "Data and pipelines are up to date" in status, status
    cloud = run([*DVC, "status", "--cloud", TARGET], clone).stdout
    assert f"Cache and remote '{remote}' are in sync" in cloud, cloud
    pulled, pushed = _output_hashes(clone), _output_hashes(original)
    assert pushed and pulled == pushed


def test_default_remote_is_outside_the_checkout(built: Path, tmp_path: Path):
    from configobj import ConfigObj

    # the committed default, as shipped in the real repo's .dvc/config (relative urls resolve from .dvc/)
    shipped = ConfigObj(str(REPO / ".dvc/config"))
    assert shipped["core"]["remote"] == "local"
    assert shipped["core"]["analytics"] == "false"
    resolved = (REPO / ".dvc" / shipped['remote "local"']["url"]).resolve()
    assert not resolved.is_relative_to(REPO.resolve())
    assert resolved == REPO.resolve().parent / DEFAULT_STORAGE

    # and as dvc itself resolves it in a project (project config only: no config.local involved)
    project = _copy(built, tmp_path / "project")
    url = Path(run([*DVC, "config", "--project", "remote.local.url"], project).stdout.strip())
    assert url.resolve() == project.resolve().parent / DEFAULT_STORAGE
    assert not url.resolve().is_relative_to(project.resolve())
    assert run([*DVC, "remote", "default"], project).stdout.strip() == "local"


def test_local_remote_round_trip(built: Path, tmp_path: Path):
    project = _copy(built, tmp_path / "project")
    store = tmp_path / "store"
    # users (and tests) redirect the default remote in the git-ignored .dvc/config.local
    run([*DVC, "remote", "modify", "--local", "local", "url", str(store)], project)
    assert str(store) in (project / ".dvc/config.local").read_text()
    assert run(["git", "status", "--porcelain"], project).stdout == ""  # nothing to commit
    listed = run([*DVC, "remote", "list"], project).stdout
    assert str(store) in listed and "(default)" in listed

    run([*DVC, "push"], project)
    stored = {p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file()}
    assert stored == _expected_cache_keys(project)
    assert not (tmp_path / DEFAULT_STORAGE).exists()  # the override was honoured

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    assert not (clone / ".dvc/config.local").exists() and not (clone / ".dvc/cache").exists()
    assert not (clone / "data/corpus").exists()
    run([*DVC, "remote", "modify", "--local", "local", "url", str(store)], clone)
    run([*DVC, "pull", TARGET], clone)  # only corpus was built: a bare pull fails checkout of the rest
    _assert_round_trip(project, clone, "local")


@pytest.fixture
def moto_s3(monkeypatch, tmp_path):
    """A moto S3 server on 127.0.0.1 (an ephemeral port) and an env that can only reach it with fake keys."""
    from moto.server import ThreadedMotoServer

    for key in list(os.environ):
        if key.upper().startswith("AWS_") or key.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def test_s3_remote_round_trip_against_moto(built: Path, tmp_path: Path, moto_s3: str, monkeypatch):
    import boto3

    endpoint = moto_s3
    bucket = f"r1interp-test-{uuid.uuid4().hex[:12]}"  # moto's store is per process: never share a bucket
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)

    project = _copy(built, tmp_path / "project")
    run([*DVC, "remote", "add", "-d", "s3store", f"s3://{bucket}/{PREFIX}"], project)
    run([*DVC, "remote", "modify", "--local", "s3store", "endpointurl", endpoint], project)
    committed = (project / ".dvc/config").read_text()
    assert "s3store" in committed and "127.0.0.1" not in committed and "testing" not in committed
    run(["git", "commit", "-qam", "s3 remote"], project)

    run([*DVC, "push"], project)  # credentials from the environment
    listed = s3.list_objects_v2(Bucket=bucket)
    assert not listed["IsTruncated"]
    keys = {o["Key"] for o in listed.get("Contents", [])}
    assert keys == {f"{PREFIX}/{k}" for k in _expected_cache_keys(project)}
    assert all(k.startswith(f"{PREFIX}/files/md5/") for k in keys)

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    assert run([*DVC, "remote", "default"], clone).stdout.strip() == "s3store"
    # in the clone, credentials come from .dvc/config.local instead of the environment
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    for option, value in (("endpointurl", endpoint), ("access_key_id", "testing"), ("secret_access_key", "testing")):
        run([*DVC, "remote", "modify", "--local", "s3store", option, value], clone)
    assert run(["git", "status", "--porcelain"], clone).stdout == ""
    run([*DVC, "pull", TARGET], clone)
    _assert_round_trip(project, clone, "s3store")


def test_artifacts_are_versioned_with_gto(built: Path, tmp_path: Path):
    """dvc.yaml declares the transcoder sets and labels as artifacts; GTO versions them with git tags."""
    project = _copy(built, tmp_path / "gto")
    gto = [str(Path(sys.executable).parent / "gto")]
    run(gto + ["register", "reasoner-transcoders", "--version", "v0.1.0"], project)
    assert "reasoner-transcoders@v0.1.0" in run(["git", "tag"], project).stdout
    shown = json.loads(run(gto + ["show", "--json"], project).stdout)
    assert shown["reasoner-transcoders"]["version"] == "v0.1.0" and shown["reasoner-transcoders"]["registered"]
    declared = yaml.safe_load((project / "dvc.yaml").read_text())["artifacts"]
    assert {"reasoner-transcoders", "base-transcoders", "feature-labels"} <= set(declared)
