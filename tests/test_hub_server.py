"""The local Hub server (tests/hub_server.py), driven only through the real `huggingface_hub` client.

Everything goes over HTTP: `HfApi(endpoint=hub.url)`, `hf_hub_download(..., endpoint=hub.url)` and
`snapshot_download(..., endpoint=hub.url)`, with downloads cached under tmp_path.
"""

from __future__ import annotations

import hashlib
import os
import types
from pathlib import Path

import huggingface_hub.constants
import huggingface_hub.utils._http as hf_http
import pytest
import requests
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.utils import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from hub_server import HubServer

TOKEN = "hf_test"
REPO = "test-user/tiny-model"


@pytest.fixture
def hub():
    with HubServer(token=TOKEN) as server:
        yield server


@pytest.fixture
def api(hub) -> HfApi:
    return HfApi(endpoint=hub.url, token=TOKEN)


@pytest.fixture
def folder(tmp_path) -> Path:
    """A regular text file, a small forced-LFS .safetensors and a 1.2 MB file that is LFS by size."""
    root = tmp_path / "upload"
    (root / "weights").mkdir(parents=True)
    (root / "config.json").write_text('{"hidden": 32}\n')
    (root / "weights" / "model.safetensors").write_bytes(os.urandom(256 * 1024))
    (root / "blob.dat").write_bytes(os.urandom(1_200_000))
    return root


def download(hub: HubServer, cache: Path, filename: str, revision: str, repo_id: str = REPO, **kw) -> bytes:
    path = hf_hub_download(repo_id, filename, revision=revision, endpoint=hub.url, token=TOKEN, cache_dir=cache, **kw)
    return Path(path).read_bytes()


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def count(hub: HubServer, method: str, suffix: str) -> int:
    return sum(1 for m, path in hub.requests if m == method and path.endswith(suffix))


def test_create_model_and_dataset_repos(hub, api):
    model = api.create_repo(REPO)
    dataset = api.create_repo("test-user/tiny-data", repo_type="dataset")
    assert (model.repo_id, model.repo_type) == (REPO, "model")
    assert (dataset.repo_id, dataset.repo_type) == ("test-user/tiny-data", "dataset")
    assert model.startswith(hub.url)  # the client rewrites the Hub URL in the answer to its endpoint

    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo(REPO)
    assert exc.value.response.status_code == 409
    assert api.create_repo(REPO, exist_ok=True).repo_id == REPO  # needs "url" in the 409 body
    assert api.create_repo("tiny-other").repo_id == "test-user/tiny-other"  # namespace from the token's user
    api.delete_repo("test-user/tiny-other")
    assert not api.repo_exists("test-user/tiny-other")
    api.delete_repo("test-user/tiny-other", missing_ok=True)  # 404 RepoNotFound -> ignored

    assert api.repo_exists(REPO) and api.repo_exists("test-user/tiny-data", repo_type="dataset")
    assert not api.repo_exists("test-user/tiny-data")  # a dataset is not a model
    info = api.model_info(REPO, files_metadata=True)
    assert [s.rfilename for s in info.siblings] == [".gitattributes"]  # initial commit, like the Hub
    assert len(info.sha) == 40


def test_upload_folder_then_download_at_sha_and_tag(hub, api, folder, tmp_path):
    api.create_repo(REPO)
    commit = api.upload_folder(repo_id=REPO, folder_path=folder, commit_message="weights v1")
    assert len(commit.oid) == 40 and hub.branch_head(REPO) == commit.oid

    # Text went inline in the commit; both binaries went through the LFS batch API and one PUT each.
    assert count(hub, "POST", ".git/info/lfs/objects/batch") == 1
    assert count(hub, "PUT", "") == 2 and count(hub, "POST", "/verify") == 2
    assert count(hub, "POST", "/commit/main") == 1
    info = api.model_info(REPO, files_metadata=True)
    lfs = {s.rfilename: s.lfs for s in info.siblings}
    assert lfs["config.json"] is None and lfs[".gitattributes"] is None
    safetensors = (folder / "weights" / "model.safetensors").read_bytes()
    assert lfs["weights/model.safetensors"].sha256 == hashlib.sha256(safetensors).hexdigest()
    assert lfs["blob.dat"].size == 1_200_000

    api.create_tag(REPO, tag="v1", revision=commit.oid)
    refs = api.list_repo_refs(REPO)
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1", commit.oid)]
    assert [(b.name, b.target_commit) for b in refs.branches] == [("main", commit.oid)]

    expected = files_under(folder)
    for revision in (commit.oid, "v1"):
        cache = tmp_path / f"cache-{revision}"
        for name, data in expected.items():
            assert download(hub, cache, name, revision) == data
        snapshot = Path(snapshot_download(REPO, revision=revision, endpoint=hub.url, token=TOKEN, cache_dir=cache))
        assert files_under(snapshot) == {**expected, ".gitattributes": files_under(snapshot)[".gitattributes"]}

    tagged = api.model_info(REPO, revision="v1")
    assert tagged.sha == commit.oid
    assert sorted(s.rfilename for s in tagged.siblings) == sorted([".gitattributes", *expected])
    tree = {f.path for f in api.list_repo_tree(REPO, revision="v1", recursive=True)}
    assert tree == {".gitattributes", "config.json", "blob.dat", "weights", "weights/model.safetensors"}
    assert {f.path for f in api.list_repo_tree(REPO, "weights")} == {"weights/model.safetensors"}


def test_dataset_create_commit_and_download(hub, api, tmp_path):
    repo = "test-user/tiny-data"
    api.create_repo(repo, repo_type="dataset")
    parquet = os.urandom(4096)
    readme = b"---\nlicense: mit\n---\n# tiny\n"
    commit = api.create_commit(
        repo,
        [CommitOperationAdd("README.md", readme), CommitOperationAdd("data/train.parquet", parquet)],
        commit_message="data v1",
        repo_type="dataset",
    )
    assert count(hub, "POST", "/api/validate-yaml") == 1  # README.md metadata is validated first
    assert count(hub, "POST", "/datasets/test-user/tiny-data.git/info/lfs/objects/batch") == 1
    api.create_tag(repo, tag="data-v1", repo_type="dataset")

    info = api.dataset_info(repo, revision="data-v1", files_metadata=True)
    assert info.sha == commit.oid
    assert {s.rfilename: s.lfs is not None for s in info.siblings}["data/train.parquet"]
    for revision in (commit.oid, "data-v1"):
        got = download(hub, tmp_path / "c", "data/train.parquet", revision, repo_id=repo, repo_type="dataset")
        assert got == parquet
    snapshot = snapshot_download(repo, repo_type="dataset", revision="data-v1", endpoint=hub.url, token=TOKEN,
                                 cache_dir=tmp_path / "c")  # fmt: skip
    assert files_under(Path(snapshot))["README.md"] == readme


def test_history_is_kept_and_served_at_every_revision(hub, api, tmp_path):
    api.create_repo(REPO)
    first = api.create_commit(
        REPO, [CommitOperationAdd("a.txt", b"one"), CommitOperationAdd("b.txt", b"bee")], commit_message="c1"
    )
    second = api.create_commit(
        REPO, [CommitOperationAdd("a.txt", b"two"), CommitOperationDelete("b.txt")], commit_message="c2"
    )
    assert download(hub, tmp_path, "a.txt", first.oid) == b"one"
    assert download(hub, tmp_path, "b.txt", first.oid) == b"bee"
    assert download(hub, tmp_path, "a.txt", "main") == b"two"
    with pytest.raises(EntryNotFoundError):
        download(hub, tmp_path, "b.txt", "main")

    commits = api.list_repo_commits(REPO)
    assert [c.commit_id for c in commits[:2]] == [second.oid, first.oid] and len(commits) == 3
    assert commits[0].title == "c2"

    with pytest.raises(HfHubHTTPError) as exc:  # parent_commit guards against concurrent writers
        api.create_commit(REPO, [CommitOperationAdd("c.txt", b"c")], commit_message="c3", parent_commit=first.oid)
    assert exc.value.response.status_code == 412
    assert hub.branch_head(REPO) == second.oid

    api.create_tag(REPO, tag="old", revision=first.oid)
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_tag(REPO, tag="old")
    assert exc.value.response.status_code == 409
    api.create_tag(REPO, tag="old", exist_ok=True)
    api.delete_tag(REPO, tag="old")
    with pytest.raises(RevisionNotFoundError):
        download(hub, tmp_path / "fresh", "a.txt", "old")


def test_identical_commit_is_skipped_by_the_client(hub, api, folder, monkeypatch):
    """Preupload returns each file's remote oid; unchanged files are dropped client-side, and with
    nothing left the client makes no commit and returns the current head. Quirk of 0.36.2: that
    early return builds `CommitInfo` from `HfApi.endpoint`, which only parses when the endpoint is
    `constants.ENDPOINT` (HF_ENDPOINT at import); with any other endpoint it raises ValueError."""
    api.create_repo(REPO)
    first = api.upload_folder(repo_id=REPO, folder_path=folder)

    with pytest.raises(ValueError, match="Unable to retrieve user and repo ID"):
        api.upload_folder(repo_id=REPO, folder_path=folder)

    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub.url)  # what HF_ENDPOINT would do
    again = api.upload_folder(repo_id=REPO, folder_path=folder)
    assert again.oid == first.oid == hub.branch_head(REPO)
    assert count(hub, "POST", "/commit/main") == 1  # neither retry reached the commit endpoint
    assert count(hub, "PUT", "") == 2  # LFS objects already stored: the batch answer had no actions
    assert hub.commit_count(REPO) == 2  # initial + first


def test_writes_need_the_token(hub, api, tmp_path):
    api.create_repo(REPO)
    anonymous = HfApi(endpoint=hub.url, token=False)
    wrong = HfApi(endpoint=hub.url, token="hf_wrong")
    for client, message in ((anonymous, "Bearer token is required"), (wrong, "Invalid credentials")):
        with pytest.raises(HfHubHTTPError, match=message) as exc:
            client.create_repo("test-user/other")
        assert exc.value.response.status_code == 401
        with pytest.raises(HfHubHTTPError) as exc:
            client.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=REPO)
        assert exc.value.response.status_code == 401
    with pytest.raises(requests.HTTPError, match="Invalid user token"):
        wrong.whoami()
    assert api.whoami()["name"] == "test-user"
    assert hub.commit_count(REPO) == 1

    # Public repos read without a token; private ones look missing to anonymous readers.
    assert anonymous.model_info(REPO).sha == hub.branch_head(REPO)
    api.create_repo("test-user/secret", private=True)
    with pytest.raises(RepositoryNotFoundError):
        anonymous.model_info("test-user/secret")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("test-user/secret", ".gitattributes", endpoint=hub.url, token=False, cache_dir=tmp_path)
    assert api.model_info("test-user/secret").private


def test_one_dropped_lfs_upload_is_retried_by_the_client(hub, api, folder, tmp_path):
    """http_backoff retries the PUT after a connection error (1 s later), so the commit lands whole."""
    api.create_repo(REPO)
    hub.fail_next_lfs_upload(drop_connection=True)
    commit = api.upload_folder(repo_id=REPO, folder_path=folder)
    assert count(hub, "PUT", "") == 3  # two files, one of them twice
    assert download(hub, tmp_path, "blob.dat", commit.oid) == (folder / "blob.dat").read_bytes()


def test_persistently_dropped_lfs_upload_raises_and_commits_nothing(hub, api, folder, monkeypatch):
    """The client tries a PUT 6 times (sleeping 1+2+4+8+8 s); those sleeps are skipped here."""
    sleeps: list[float] = []
    monkeypatch.setattr(hf_http, "time", types.SimpleNamespace(sleep=sleeps.append))
    api.create_repo(REPO)
    head = hub.branch_head(REPO)
    (folder / "blob.dat").unlink()  # one LFS file, so exactly one PUT is retried
    hub.fail_next_lfs_upload(drop_connection=True, times=6)

    with pytest.raises(RuntimeError, match="Error while uploading 'weights/model.safetensors'") as exc:
        api.upload_folder(repo_id=REPO, folder_path=folder)
    assert isinstance(exc.value.__cause__, requests.ConnectionError)
    assert sleeps == [1, 2, 4, 8, 8] and count(hub, "PUT", "") == 6
    assert count(hub, "POST", "/commit/main") == 0
    assert api.model_info(REPO).sha == head and hub.commit_count(REPO) == 1


def test_failed_commit_changes_nothing_and_can_be_retried(hub, api, folder, tmp_path):
    api.create_repo(REPO)
    head = hub.branch_head(REPO)
    hub.fail_next_commit(status=500)
    with pytest.raises(HfHubHTTPError) as exc:
        api.upload_folder(repo_id=REPO, folder_path=folder)
    assert exc.value.response.status_code == 500  # commits are not retried by the client
    assert api.model_info(REPO).sha == head and [s.rfilename for s in api.model_info(REPO).siblings] == [
        ".gitattributes"
    ]

    commit = api.upload_folder(repo_id=REPO, folder_path=folder)  # LFS objects survive: no new PUTs
    assert count(hub, "PUT", "") == 2 and commit.oid == hub.branch_head(REPO)
    assert download(hub, tmp_path, "config.json", commit.oid) == (folder / "config.json").read_bytes()


def test_missing_revision_entry_and_repo(hub, api, tmp_path):
    api.create_repo(REPO)
    api.upload_file(path_or_fileobj=b"hello", path_in_repo="hello.txt", repo_id=REPO)
    for revision in ("no-such-branch", "0" * 40):
        with pytest.raises(RevisionNotFoundError):
            download(hub, tmp_path, "hello.txt", revision)
    with pytest.raises(RevisionNotFoundError):
        snapshot_download(REPO, revision="no-such-branch", endpoint=hub.url, token=TOKEN, cache_dir=tmp_path)
    with pytest.raises(RevisionNotFoundError):
        api.model_info(REPO, revision="no-such-branch")
    with pytest.raises(EntryNotFoundError):
        download(hub, tmp_path, "missing.txt", "main")
    with pytest.raises(RepositoryNotFoundError):
        download(hub, tmp_path, "hello.txt", "main", repo_id="test-user/nope")
    assert download(hub, tmp_path, "hello.txt", "main") == b"hello"


def test_storage_dir_survives_a_restart(tmp_path):
    store = tmp_path / "store"
    with HubServer(token=TOKEN, storage_dir=store) as hub:
        api = HfApi(endpoint=hub.url, token=TOKEN)
        api.create_repo(REPO)
        commit = api.upload_file(path_or_fileobj=os.urandom(2048), path_in_repo="w.safetensors", repo_id=REPO)
        expected = download(hub, tmp_path / "c1", "w.safetensors", "main")
    with HubServer(token=TOKEN, storage_dir=store) as hub:
        assert hub.branch_head(REPO) == commit.oid
        assert download(hub, tmp_path / "c2", "w.safetensors", commit.oid) == expected
