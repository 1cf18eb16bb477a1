"""A real, local Hugging Face Hub HTTP server for tests (imported by tests, not collected).

It speaks enough of the Hub's HTTP API for the unmodified `huggingface_hub` client (checked against
0.36.2) to create repos, commit, upload LFS objects, tag and download, so every assertion is about what
really went over the wire. Standard library only: a `ThreadingHTTPServer` on 127.0.0.1 (free port).

    with HubServer(token="hf_test") as hub:
        api = HfApi(endpoint=hub.url, token="hf_test")
        hf_hub_download(repo_id, filename, endpoint=hub.url, token="hf_test", cache_dir=tmp_path)

Implemented surface (`{T}` is `models` or `datasets`, `{repo}` is `owner/name`, revisions and paths
are URL-quoted by the client and unquoted here):

    GET    /api/whoami-v2
    POST   /api/repos/create                    409 + {"url"} body when the repo exists (exist_ok needs it)
    DELETE /api/repos/delete
    POST   /api/validate-yaml                   accepts everything
    GET    /api/{T}/{repo}[/revision/{rev}]     sha, siblings (+ size/blobId/lfs with ?blobs=True)
    POST   /api/{T}/{repo}/preupload/{rev}      uploadMode "lfs" | "regular", shouldIgnore, remote oid
    POST   /api/{T}/{repo}/commit/{branch}      NDJSON: header, file, lfsFile, deletedFile, deletedFolder
    GET    /api/{T}/{repo}/tree/{rev}[/{path}]  ?recursive, ?expand (lastCommit)
    POST   /api/{T}/{repo}/paths-info/{rev}     form body: paths=..., expand=...
    GET    /api/{T}/{repo}/refs                 branches, tags (converts and PRs always empty)
    GET    /api/{T}/{repo}/commits/{rev}        newest first
    POST   /api/{T}/{repo}/tag/{rev}            409 when the tag exists
    DELETE /api/{T}/{repo}/tag/{tag}
    POST   /[datasets/]{repo}.git/info/lfs/objects/batch   "basic" transfer only (never "xet")
    PUT    /_lfs/{T}/{repo}/{oid}?sig=...       upload href handed out by the batch call (signed, no token)
    POST   /_lfs/{T}/{repo}/verify              verify href handed out by the batch call
    HEAD   /[datasets/]{repo}/resolve/{rev}/{path}         X-Repo-Commit, ETag, Content-Length,
    GET    (same)                                          X-Linked-Etag/-Size for LFS; Range supported

Repos hold git-like state: every commit has a 40-hex sha, a parent and a full tree (path -> blob);
`create_repo` makes an initial commit with a `.gitattributes`, like the Hub. Revisions resolve by
branch, tag or full commit sha, and files are served at any past revision. A file goes to LFS when
it is at least `lfs_threshold` bytes or its name matches `lfs_patterns`.

Xet is never offered: the batch answer is always `"transfer": "basic"` (the 0.36 client only uploads
via Xet when the server picks "xet" there) and downloads never carry `X-Xet-Hash` (the client only
downloads via Xet when that header is present), so no `HF_HUB_DISABLE_XET` is needed.

Auth: requests that write need `Authorization: Bearer <token>`; a wrong token is refused everywhere.
Both answer 401 with `X-Error-Message` and a JSON `{"error": ...}` body, which the client turns into
an `HfHubHTTPError` carrying the message. Public repos are readable without a token; private ones
answer 404 `RepoNotFound` to anonymous readers, like the Hub.

Errors carry the Hub's `X-Error-Code` header (`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`),
which is how the client picks `RepositoryNotFoundError`, `RevisionNotFoundError`, `EntryNotFoundError`.

For tests: `requests` logs every (method, path); `fail_next(...)`, `fail_next_lfs_upload(...)` and
`fail_next_commit(...)` inject a status or a connection dropped mid-body into the next matching
requests; `branch_head(...)` and `commit_count(...)` read the server state directly.

Storage: in memory, or under `storage_dir` (blobs in `objects/`, refs and commits in `state.json`),
in which case a new server on the same directory sees the same repos.

Pointing the client here (huggingface_hub 0.36.2): pass `endpoint=hub.url` to `HfApi`,
`hf_hub_download` and `snapshot_download`. HF_ENDPOINT is read once, at import, into
`constants.ENDPOINT` and `file_download.HUGGINGFACE_CO_URL_TEMPLATE`; so the module-level helpers
(`huggingface_hub.upload_folder`, `create_commit`, ... are methods of an `HfApi()` built at import)
and callers that pass no endpoint (transformers/datasets loaders) only reach this server when
HF_ENDPOINT is set before huggingface_hub is first imported, e.g. in a subprocess's environment.
Client quirk: when every file of a commit is unchanged, `create_commit` skips the commit and builds
a `CommitInfo` from `HfApi.endpoint`, which only parses if that equals `constants.ENDPOINT`: with
any other endpoint the no-op commit raises ValueError("Unable to retrieve user and repo ID ...").
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import json
import os
import re
import secrets
import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

# URLs inside JSON bodies are Hub-style, as the real Hub sends them: the client rewrites
# "https://huggingface.co" to its endpoint where it parses them (create_repo), and `CommitInfo`
# parses `commitUrl` against `constants.ENDPOINT`, which rejects any other host unless HF_ENDPOINT is set.
HUB_URL = "https://huggingface.co"
DEFAULT_LFS_THRESHOLD = 1024 * 1024
DEFAULT_LFS_PATTERNS = (
    "*.safetensors", "*.parquet", "*.bin", "*.pt", "*.pth", "*.ckpt", "*.h5", "*.npy", "*.npz",
    "*.arrow", "*.gguf", "*.onnx", "*.pkl", "*.zip", "*.gz", "*.zst",
)  # fmt: skip
DROP_AFTER_BYTES = 64 * 1024  # a dropped upload reads this much of the body, then closes the socket
_TYPES = {"models": "model", "datasets": "dataset", None: "model"}
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


class HubError(Exception):
    """An HTTP error answer: JSON `{"error": message}` plus the Hub's X-Error-* headers."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def git_blob_oid(data: bytes) -> str:
    """The git object id of a blob (what `sha.git_hash` computes client-side)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


# --------------------------------------------------------------------------------------- state


@dataclass(frozen=True)
class Blob:
    """A file version: content address in the blob store, size, LFS or not, and its git blob id."""

    sha256: str
    size: int
    lfs: bool
    oid: str  # git blob id of the content (regular) or of the LFS pointer file (lfs)

    @classmethod
    def regular(cls, data: bytes) -> Blob:
        return cls(hashlib.sha256(data).hexdigest(), len(data), False, git_blob_oid(data))

    @classmethod
    def large(cls, sha256: str, size: int) -> Blob:
        return cls(sha256, size, True, git_blob_oid(lfs_pointer(sha256, size)))

    @property
    def etag(self) -> str:
        """The Hub's ETag, git blob id or LFS sha256; also the "oid" preupload answers, which the
        client compares with its local one to drop unchanged files from a commit."""
        return self.sha256 if self.lfs else self.oid

    def lfs_json(self) -> dict:
        return {"oid": self.sha256, "size": self.size, "pointerSize": len(lfs_pointer(self.sha256, self.size))}


@dataclass
class Commit:
    sha: str
    parent: str | None
    tree: dict[str, Blob]
    title: str
    message: str
    date: str


@dataclass
class Repo:
    type: str  # "model" | "dataset"
    id: str  # "owner/name"
    private: bool
    created_at: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    lfs_objects: set[str] = field(default_factory=set)

    @property
    def url_prefix(self) -> str:
        return "datasets/" if self.type == "dataset" else ""

    def resolve(self, rev: str) -> Commit:
        """A branch name, a tag name or a full commit sha -> the commit (404 RevisionNotFound otherwise)."""
        sha = self.branches.get(rev) or self.tags.get(rev) or (rev if rev in self.commits else None)
        if sha is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return self.commits[sha]

    def add_commit(self, branch: str, tree: dict[str, Blob], title: str, message: str = "") -> Commit:
        parent, date = self.branches.get(branch), _now()
        ident = json.dumps([self.type, self.id, parent, sorted((p, b.sha256) for p, b in tree.items()), title,
                            message, date, len(self.commits)])  # fmt: skip
        commit = Commit(hashlib.sha1(ident.encode()).hexdigest(), parent, dict(tree), title, message, date)
        self.commits[commit.sha] = commit
        self.branches[branch] = commit.sha
        return commit

    def history(self, commit: Commit) -> Iterator[Commit]:
        while True:
            yield commit
            if commit.parent is None:
                return
            commit = self.commits[commit.parent]

    def last_commit(self, commit: Commit, path: str) -> Commit:
        """The oldest ancestor of `commit` with the same content at `path` (file or folder)."""
        signature = _signature(commit.tree, path)
        while commit.parent is not None and _signature(self.commits[commit.parent].tree, path) == signature:
            commit = self.commits[commit.parent]
        return commit

    def to_json(self) -> dict:
        commits = [{"sha": c.sha, "parent": c.parent, "title": c.title, "message": c.message, "date": c.date,
                    "tree": {p: [b.sha256, b.size, b.lfs, b.oid] for p, b in c.tree.items()}}
                   for c in self.commits.values()]  # fmt: skip
        return {"type": self.type, "id": self.id, "private": self.private, "created_at": self.created_at,
                "branches": self.branches, "tags": self.tags, "lfs_objects": sorted(self.lfs_objects),
                "commits": commits}  # fmt: skip

    @classmethod
    def from_json(cls, d: dict) -> Repo:
        commits = {c["sha"]: Commit(c["sha"], c["parent"], {p: Blob(*b) for p, b in c["tree"].items()},
                                    c["title"], c["message"], c["date"])
                   for c in d["commits"]}  # fmt: skip
        return cls(d["type"], d["id"], d["private"], d["created_at"], commits, d["branches"], d["tags"],
                   set(d["lfs_objects"]))  # fmt: skip


def _signature(tree: dict[str, Blob], path: str) -> list[tuple[str, str]]:
    return sorted((p, b.sha256) for p, b in tree.items() if p == path or p.startswith(path + "/"))


class BlobStore:
    """Content-addressed bytes (sha256), in memory or as files under `root`."""

    def __init__(self, root: Path | None):
        self.root = root
        self._mem: dict[str, bytes] = {}

    def _path(self, sha256: str) -> Path:
        assert self.root is not None
        return self.root / sha256[:2] / sha256[2:]

    def put(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        if self.root is None:
            self._mem[sha256] = data
        elif not self._path(sha256).exists():
            path = self._path(sha256)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{secrets.token_hex(4)}")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return sha256

    def get(self, sha256: str) -> bytes:
        return self._mem[sha256] if self.root is None else self._path(sha256).read_bytes()


# ------------------------------------------------------------------------------------ HTTP plumbing


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Any  # email.message.Message
    body: bytes = b""
    authenticated: bool = False

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            raise HubError(400, "Malformed JSON body") from None

    def flag(self, name: str) -> bool:
        return (self.query.get(name) or [""])[-1].lower() in ("1", "true")


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def _json(obj: Any, status: int = 200, content_type: str = "application/json") -> Response:
    return Response(status, json.dumps(obj).encode(), {"Content-Type": content_type})


@dataclass(frozen=True)
class Route:
    methods: tuple[str, ...]
    pattern: re.Pattern[str]
    handler: str  # name of the HubServer method "_h_<handler>"; also the fault target name
    access: str  # "token": valid token needed; "write": same, on a repo; "read": repo read rules; "signed"


_REPO = r"(?P<repo>[^/]+/[^/]+)"
_API = r"/api/(?P<type>models|datasets)/" + _REPO
_REV = r"(?P<rev>[^/]+)"


def _route(methods: str, pattern: str, handler: str, access: str) -> Route:
    return Route(tuple(methods.split("|")), re.compile(pattern), handler, access)


ROUTES = (
    _route("GET", r"/api/whoami-v2", "whoami", "token"),
    _route("POST", r"/api/repos/create", "create_repo", "token"),
    _route("DELETE", r"/api/repos/delete", "delete_repo", "token"),
    _route("POST", r"/api/validate-yaml", "validate_yaml", "read"),
    _route("GET", _API + r"(?:/revision/" + _REV + r")?", "repo_info", "read"),
    _route("POST", _API + r"/preupload/" + _REV, "preupload", "write"),
    _route("POST", _API + r"/commit/" + _REV, "commit", "write"),
    _route("GET", _API + r"/tree/" + _REV + r"(?:/(?P<path>.*))?", "tree", "read"),
    _route("POST", _API + r"/paths-info/" + _REV, "paths_info", "read"),
    _route("GET", _API + r"/refs", "refs", "read"),
    _route("GET", _API + r"/commits/" + _REV, "commits", "read"),
    _route("POST", _API + r"/tag/" + _REV, "create_tag", "write"),
    _route("DELETE", _API + r"/tag/(?P<tag>[^/]+)", "delete_tag", "write"),
    _route("POST", r"(?:/(?P<type>datasets))?/" + _REPO + r"\.git/info/lfs/objects/batch", "lfs_batch", "write"),
    _route("PUT", r"/_lfs/(?P<type>models|datasets)/" + _REPO + r"/(?P<oid>[0-9a-f]{64})", "lfs_upload", "signed"),
    _route("POST", r"/_lfs/(?P<type>models|datasets)/" + _REPO + r"/verify", "lfs_verify", "write"),
    _route("GET|HEAD", r"(?:/(?P<type>datasets))?/" + _REPO + r"/resolve/" + _REV + r"/(?P<path>.+)", "resolve", "read"),
)  # fmt: skip
FAULT_TARGETS = tuple(r.handler for r in ROUTES)


def _match(method: str, path: str) -> tuple[Route | None, dict[str, str]]:
    for route in ROUTES:
        m = route.pattern.fullmatch(path)
        if m and method in route.methods:
            return route, {k: unquote(v) for k, v in m.groupdict().items() if v is not None}
    return None, {}


@dataclass
class _Fault:
    target: str
    status: int
    drop_connection: bool
    remaining: int


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def do_GET(self) -> None:
        self.server.hub._serve(self)

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def read_body(self, limit: int | None = None) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length if limit is None else min(length, limit))

    def _read_chunked(self) -> bytes:
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
            pass
        return b"".join(chunks)

    def drop_connection(self) -> None:
        """Read part of the body, then close the socket without answering."""
        self.read_body(limit=DROP_AFTER_BYTES)
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def send(self, resp: Response) -> None:
        self.send_response(resp.status)
        headers = {"Content-Length": str(len(resp.body)), "X-Request-Id": secrets.token_hex(8), **resp.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    hub: HubServer


# ------------------------------------------------------------------------------------------ server


class HubServer:
    """A Hub-compatible HTTP server on 127.0.0.1 in a daemon thread; use as a context manager.

    Args:
        token: the one token that authenticates (`Authorization: Bearer <token>`).
        username: the user `whoami` reports and the namespace of repos created without an owner.
        storage_dir: keep blobs and state there (and load them from there) instead of in memory.
        lfs_threshold: files at least this large are uploaded as LFS.
        lfs_patterns: file-name globs always uploaded as LFS (also written to `.gitattributes`).
        host, port: where to listen (port 0 = a free port).
    """

    def __init__(
        self,
        token: str = "hf_test",
        *,
        username: str = "test-user",
        storage_dir: str | Path | None = None,
        lfs_threshold: int = DEFAULT_LFS_THRESHOLD,
        lfs_patterns: Sequence[str] = DEFAULT_LFS_PATTERNS,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self.token = token
        self.username = username
        self.lfs_threshold = lfs_threshold
        self.lfs_patterns = tuple(lfs_patterns)
        self.storage_dir = Path(storage_dir) if storage_dir is not None else None
        self.requests: list[tuple[str, str]] = []  # (method, path without query), in arrival order
        self._address = (host, port)
        self._lock = threading.RLock()
        self._faults: list[_Fault] = []
        self._secret = secrets.token_bytes(16)  # signs LFS upload hrefs
        self._blobs = BlobStore(self.storage_dir / "objects" if self.storage_dir else None)
        self._repos: dict[tuple[str, str], Repo] = self._load()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("HubServer is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        httpd = _HTTPServer(self._address, _Handler)
        httpd.hub = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="hub-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test knobs

    def fail_next(self, target: str, *, status: int = 500, drop_connection: bool = False, times: int = 1) -> None:
        """Make the next `times` requests to `target` (a FAULT_TARGETS name) fail.

        With `drop_connection` the server reads up to DROP_AFTER_BYTES of the body and closes the
        socket without answering; otherwise it answers `status` with a JSON error and changes nothing.
        """
        if target not in FAULT_TARGETS:
            raise ValueError(f"unknown fault target {target!r}; one of {FAULT_TARGETS}")
        with self._lock:
            self._faults.append(_Fault(target, status, drop_connection, times))

    def fail_next_lfs_upload(self, *, drop_connection: bool = True, status: int = 500, times: int = 1) -> None:
        """Fail the next LFS PUT(s). NB: the client retries a PUT 5 times on connection errors and 5xx."""
        self.fail_next("lfs_upload", status=status, drop_connection=drop_connection, times=times)

    def fail_next_commit(self, *, status: int = 500, drop_connection: bool = False, times: int = 1) -> None:
        """Fail the next commit POST(s) (the client does not retry those)."""
        self.fail_next("commit", status=status, drop_connection=drop_connection, times=times)

    def branch_head(self, repo_id: str, repo_type: str = "model", branch: str = "main") -> str:
        """The commit sha a branch points at (server-side view, for assertions)."""
        with self._lock:
            return self._repos[(repo_type, repo_id)].branches[branch]

    def plant_file(self, repo_id: str, path: str, data: bytes, repo_type: str = "model", branch: str = "main") -> str:
        """A hostile mirror: commit `data` under any `path` (e.g. `../escape/x.json`), bypassing the name checks
        of the upload API. Returns the new commit's sha."""
        with self._lock:
            repo = self._repos[(repo_type, repo_id)]
            self._blobs.put(data)
            tree = {**repo.resolve(branch).tree, path: Blob.regular(data)}
            sha = repo.add_commit(branch, tree, f"plant {path}").sha
            self._save()
            return sha

    def commit_count(self, repo_id: str, repo_type: str = "model") -> int:
        with self._lock:
            return len(self._repos[(repo_type, repo_id)].commits)

    # -- dispatch

    def _serve(self, h: _Handler) -> None:
        url = urlsplit(h.path)
        self.requests.append((h.command, url.path))
        route, params = _match(h.command, url.path)
        fault = self._take_fault(route.handler) if route else None
        if fault is not None and fault.drop_connection:
            h.drop_connection()
            return
        req = Request(h.command, url.path, parse_qs(url.query), h.headers, h.read_body())
        try:
            if route is None:
                raise HubError(404, f"Not found: {h.command} {url.path}")
            if fault is not None:
                raise HubError(fault.status, f"Injected fault: HTTP {fault.status} on {route.handler}")
            self._authorize(route, req)
            resp = getattr(self, "_h_" + route.handler)(req, params)
        except HubError as e:
            resp = self._error(e)
        except Exception as e:  # a server bug: answer it rather than dropping the connection
            resp = self._error(HubError(500, f"Test hub server error: {type(e).__name__}: {e}"))
        h.send(resp)

    def _take_fault(self, target: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.target == target:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _authorize(self, route: Route, req: Request) -> None:
        if route.access == "signed":
            return
        auth = req.headers.get("Authorization") or ""
        if auth:
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), self.token):
                raise HubError(401, "Invalid credentials in Authorization header")
            req.authenticated = True
        elif route.access in ("token", "write"):
            raise HubError(401, "Authorization header with a Bearer token is required for this request")

    @staticmethod
    def _error(e: HubError) -> Response:
        resp = _json({"error": e.message}, e.status)
        header_safe = e.message.encode("ascii", "backslashreplace").decode().replace("\n", " ")
        resp.headers.update({"X-Error-Message": header_safe, **e.headers})
        if e.code:
            resp.headers["X-Error-Code"] = e.code
        return resp

    # -- state helpers

    def _repo(self, req: Request | None, params: dict[str, str]) -> Repo:
        """The repo named by the route (404 RepoNotFound if missing, or private and `req` is anonymous)."""
        repo = self._repos.get((_TYPES[params.get("type")], params["repo"]))
        if repo is None or (repo.private and req is not None and not req.authenticated):
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def _load(self) -> dict[tuple[str, str], Repo]:
        state = self.storage_dir / "state.json" if self.storage_dir else None
        if state is None or not state.exists():
            return {}
        repos = [Repo.from_json(d) for d in json.loads(state.read_text())["repos"]]
        return {(r.type, r.id): r for r in repos}

    def _save(self) -> None:
        if self.storage_dir is None:
            return
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.storage_dir / f"state.json.tmp{secrets.token_hex(4)}"
        tmp.write_text(json.dumps({"repos": [r.to_json() for r in self._repos.values()]}))
        os.replace(tmp, self.storage_dir / "state.json")

    def _upload_mode(self, path: str, size: int) -> str:
        name = path.rsplit("/", 1)[-1]
        lfs = size >= self.lfs_threshold or any(fnmatch.fnmatch(name, p) for p in self.lfs_patterns)
        return "lfs" if lfs else "regular"

    def _gitattributes(self) -> bytes:
        return "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in self.lfs_patterns).encode()

    def _sign(self, repo: Repo, oid: str) -> str:
        return hmac.new(self._secret, f"{repo.type}/{repo.id}/{oid}".encode(), "sha256").hexdigest()

    def _lfs_href(self, repo: Repo, tail: str) -> str:
        return f"{self.url}/_lfs/{repo.type}s/{repo.id}/{tail}"

    # -- handlers: account and repos

    def _h_whoami(self, req: Request, params: dict) -> Response:
        token = {"displayName": "test", "role": "write"}
        return _json({"type": "user", "id": hashlib.md5(self.username.encode()).hexdigest()[:24],
                      "name": self.username, "fullname": self.username, "orgs": [],
                      "auth": {"type": "access_token", "accessToken": token}})  # fmt: skip

    def _h_create_repo(self, req: Request, params: dict) -> Response:
        body = req.json() or {}
        repo_type, name = body.get("type") or "model", body.get("name") or ""
        owner = body.get("organization") or self.username
        if repo_type not in ("model", "dataset"):
            raise HubError(400, f"Repo type {repo_type!r} is not supported by this test server")
        if not (_NAME_RE.fullmatch(name) and _NAME_RE.fullmatch(owner)):
            raise HubError(400, f"Invalid repo name {owner}/{name}")
        repo_id = f"{owner}/{name}"
        with self._lock:
            if (repo_type, repo_id) in self._repos:
                url = f"{HUB_URL}/{self._repos[(repo_type, repo_id)].url_prefix}{repo_id}"
                return _json({"error": f"You already created this {repo_type} repo", "url": url}, 409)
            repo = Repo(repo_type, repo_id, bool(body.get("private")), _now())
            gitattributes = self._gitattributes()
            self._blobs.put(gitattributes)
            repo.add_commit("main", {".gitattributes": Blob.regular(gitattributes)}, "initial commit")
            self._repos[(repo_type, repo_id)] = repo
            self._save()
        return _json({"url": f"{HUB_URL}/{repo.url_prefix}{repo_id}", "name": repo_id, "id": repo_id})

    def _h_delete_repo(self, req: Request, params: dict) -> Response:
        body = req.json() or {}
        key = (body.get("type") or "model", f"{body.get('organization') or self.username}/{body.get('name')}")
        with self._lock:
            if self._repos.pop(key, None) is None:
                raise HubError(404, "Repository not found", "RepoNotFound")
            self._save()
        return _json({})

    def _h_validate_yaml(self, req: Request, params: dict) -> Response:
        return _json({"errors": [], "warnings": []})

    def _h_repo_info(self, req: Request, params: dict) -> Response:
        with self._lock:
            repo = self._repo(req, params)
            commit = repo.resolve(params.get("rev", "main"))
            blobs = req.flag("blobs")
            siblings = [self._sibling(path, blob, blobs) for path, blob in sorted(commit.tree.items())]
            owner = repo.id.split("/")[0]
            return _json({"_id": hashlib.md5(repo.id.encode()).hexdigest()[:24], "id": repo.id, "author": owner,
                          "sha": commit.sha, "lastModified": commit.date, "createdAt": repo.created_at,
                          "private": repo.private, "gated": False, "disabled": False, "downloads": 0,
                          "likes": 0, "tags": [], "siblings": siblings, "xetEnabled": False})  # fmt: skip

    @staticmethod
    def _sibling(path: str, blob: Blob, details: bool) -> dict:
        if not details:
            return {"rfilename": path}
        lfs = {"sha256": blob.sha256, "size": blob.size, "pointerSize": blob.lfs_json()["pointerSize"]}
        return {"rfilename": path, "size": blob.size, "blobId": blob.oid, **({"lfs": lfs} if blob.lfs else {})}

    # -- handlers: committing

    def _h_preupload(self, req: Request, params: dict) -> Response:
        body = req.json() or {}
        with self._lock:
            commit = self._repo(req, params).resolve(params["rev"])
            gitignore = body.get("gitIgnore")
            if gitignore is None and ".gitignore" in commit.tree:
                gitignore = self._blobs.get(commit.tree[".gitignore"].sha256).decode(errors="replace")
            files = []
            for f in body.get("files") or []:
                existing = commit.tree.get(f["path"])
                files.append({"path": f["path"], "uploadMode": self._upload_mode(f["path"], int(f.get("size", 0))),
                              "shouldIgnore": _ignored(f["path"], gitignore or ""),
                              "oid": existing.etag if existing else None})  # fmt: skip
            return _json({"files": files, "commitOid": commit.sha})

    def _h_commit(self, req: Request, params: dict) -> Response:
        if req.flag("create_pr"):
            raise HubError(400, "Pull requests are not supported by this test server")
        try:
            lines = [json.loads(line) for line in req.body.splitlines() if line.strip()]
        except ValueError:
            raise HubError(400, "Malformed NDJSON commit payload") from None
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "The first NDJSON line must be the commit header")
        header, branch = lines[0]["value"], params["rev"]
        with self._lock:
            repo = self._repo(req, params)
            if branch not in repo.branches:
                repo.resolve(branch)  # 404 RevisionNotFound if it is nothing at all
                raise HubError(400, f"Invalid rev id: {branch} is not a branch")
            head = repo.commits[repo.branches[branch]]
            parent = header.get("parentCommit")
            if parent and not head.sha.startswith(parent):
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            tree = dict(head.tree)
            for op in lines[1:]:
                self._apply(repo, tree, op.get("key"), op.get("value") or {})
            commit = repo.add_commit(branch, tree, header.get("summary") or "", header.get("description") or "")
            self._save()
        url = f"{HUB_URL}/{repo.url_prefix}{repo.id}/commit/{commit.sha}"
        return _json({"success": True, "commitOid": commit.sha, "commitUrl": url, "hookOutput": "",
                      "pullRequestUrl": None})  # fmt: skip

    def _apply(self, repo: Repo, tree: dict[str, Blob], key: str | None, value: dict) -> None:
        path = str(value.get("path", "")).strip("/")
        if key == "file":
            content = value.get("content", "")
            data = base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
            self._blobs.put(data)
            tree[path] = Blob.regular(data)
        elif key == "lfsFile":
            oid = value.get("oid", "")
            if oid not in repo.lfs_objects:
                raise HubError(400, f"LFS object {oid} of {path} was never uploaded to this repo")
            tree[path] = Blob.large(oid, len(self._blobs.get(oid)))
        elif key == "deletedFile":
            if tree.pop(path, None) is None:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
        elif key == "deletedFolder":
            doomed = [p for p in tree if p.startswith(path + "/")]
            if not doomed:
                raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
            for p in doomed:
                del tree[p]
        else:
            raise HubError(400, f"Unknown commit operation {key!r}")

    # -- handlers: LFS

    def _h_lfs_batch(self, req: Request, params: dict) -> Response:
        body = req.json() or {}
        if body.get("operation") != "upload":
            raise HubError(400, "Only the 'upload' LFS batch operation is supported by this test server")
        if "basic" not in (body.get("transfers") or ["basic"]):
            raise HubError(422, "This test server only offers the 'basic' LFS transfer")
        with self._lock:
            repo = self._repo(req, params)
            objects = [self._batch_object(repo, o.get("oid"), o.get("size")) for o in body.get("objects") or []]
        return _json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                     content_type="application/vnd.git-lfs+json")  # fmt: skip

    def _batch_object(self, repo: Repo, oid: Any, size: Any) -> dict:
        obj = {"oid": oid, "size": size}
        if not (isinstance(oid, str) and re.fullmatch(r"[0-9a-f]{64}", oid) and isinstance(size, int)):
            return {**obj, "error": {"code": 422, "message": "Invalid oid or size"}}
        if oid in repo.lfs_objects:
            return obj  # already stored: no actions, the client skips the upload
        upload = {"href": self._lfs_href(repo, f"{oid}?sig={self._sign(repo, oid)}")}
        verify = {"href": self._lfs_href(repo, "verify")}
        return {**obj, "authenticated": True, "actions": {"upload": upload, "verify": verify}}

    def _h_lfs_upload(self, req: Request, params: dict) -> Response:
        with self._lock:
            repo = self._repo(None, params)  # the signature is the credential
        oid = params["oid"]
        if not hmac.compare_digest((req.query.get("sig") or [""])[0], self._sign(repo, oid)):
            raise HubError(403, "Invalid or missing upload signature")
        if hashlib.sha256(req.body).hexdigest() != oid:
            raise HubError(400, f"Uploaded content does not hash to {oid}")
        self._blobs.put(req.body)
        with self._lock:
            repo.lfs_objects.add(oid)
            self._save()
        return Response(200, b"", {"ETag": f'"{hashlib.md5(req.body).hexdigest()}"'})

    def _h_lfs_verify(self, req: Request, params: dict) -> Response:
        body = req.json() or {}
        with self._lock:
            repo = self._repo(req, params)
            oid = body.get("oid")
            if oid not in repo.lfs_objects or len(self._blobs.get(oid)) != body.get("size"):
                raise HubError(404, f"LFS object {oid} not found or of the wrong size")
        return _json({"success": True})

    # -- handlers: refs and history

    def _h_refs(self, req: Request, params: dict) -> Response:
        with self._lock:
            repo = self._repo(req, params)
            branches = [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": s} for n, s in repo.branches.items()]
            tags = [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": s} for n, s in repo.tags.items()]
        return _json({"branches": branches, "tags": tags, "converts": [], "pullRequests": []})

    def _h_create_tag(self, req: Request, params: dict) -> Response:
        tag = (req.json() or {}).get("tag") or ""
        with self._lock:
            repo = self._repo(req, params)
            commit = repo.resolve(params["rev"])
            if not tag or tag in repo.tags or tag in repo.branches:
                raise HubError(409 if tag else 400, f"Tag {tag!r} already exists" if tag else "Missing tag name")
            repo.tags[tag] = commit.sha
            self._save()
        return _json({})

    def _h_delete_tag(self, req: Request, params: dict) -> Response:
        with self._lock:
            repo = self._repo(req, params)
            if repo.tags.pop(params["tag"], None) is None:
                raise HubError(404, f"Tag {params['tag']} not found", "RevisionNotFound")
            self._save()
        return _json({})

    def _h_commits(self, req: Request, params: dict) -> Response:
        with self._lock:
            repo = self._repo(req, params)
            history = list(repo.history(repo.resolve(params["rev"])))
        return _json([{"id": c.sha, "title": c.title, "message": c.message, "date": c.date,
                       "authors": [{"user": self.username}]} for c in history])  # fmt: skip

    # -- handlers: reading files

    def _h_tree(self, req: Request, params: dict) -> Response:
        with self._lock:
            repo = self._repo(req, params)
            commit = repo.resolve(params["rev"])
            path = params.get("path", "").strip("/")
            entries = _listing(commit.tree, path, recursive=req.flag("recursive"))
            return _json([self._entry(repo, commit, p, b, req.flag("expand")) for p, b in entries])

    def _h_paths_info(self, req: Request, params: dict) -> Response:
        form = parse_qs(req.body.decode())
        with self._lock:
            repo = self._repo(req, params)
            commit = repo.resolve(params["rev"])
            expand = (form.get("expand") or [""])[-1].lower() in ("1", "true")
            found = []
            for path in (p.strip("/") for p in form.get("paths", [])):
                if path in commit.tree:
                    found.append(self._entry(repo, commit, path, commit.tree[path], expand))
                elif any(p.startswith(path + "/") for p in commit.tree):
                    found.append(self._entry(repo, commit, path, None, expand))
            return _json(found)

    @staticmethod
    def _entry(repo: Repo, commit: Commit, path: str, blob: Blob | None, expand: bool) -> dict:
        if blob is None:
            tree_oid = hashlib.sha1(json.dumps(_signature(commit.tree, path)).encode()).hexdigest()
            entry = {"type": "directory", "oid": tree_oid, "size": 0, "path": path}
        else:
            entry = {"type": "file", "oid": blob.oid, "size": blob.size, "path": path}
            if blob.lfs:
                entry["lfs"] = blob.lfs_json()
        if expand:
            last = repo.last_commit(commit, path)
            entry["lastCommit"] = {"id": last.sha, "title": last.title, "date": last.date}
        return entry

    def _h_resolve(self, req: Request, params: dict) -> Response:
        with self._lock:
            commit = self._repo(req, params).resolve(params["rev"])
            blob = commit.tree.get(params["path"])
            if blob is None:
                raise HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit.sha})
        data = self._blobs.get(blob.sha256)
        headers = {"X-Repo-Commit": commit.sha, "ETag": f'"{blob.etag}"', "Accept-Ranges": "bytes",
                   "Content-Type": "application/octet-stream"}  # fmt: skip
        if blob.lfs:
            headers.update({"X-Linked-Etag": f'"{blob.etag}"', "X-Linked-Size": str(blob.size)})
        return _ranged(data, req.headers.get("Range"), headers)


def _ranged(data: bytes, range_header: str | None, headers: dict[str, str]) -> Response:
    """200 with the whole body, or 206 for a single `bytes=start-[end]` range."""
    m = re.fullmatch(r"bytes=(\d+)-(\d*)", (range_header or "").strip())
    if m is None:
        return Response(200, data, headers)
    start, end = int(m.group(1)), int(m.group(2) or len(data) - 1)
    if start >= len(data) and data:
        return Response(416, b"", {**headers, "Content-Range": f"bytes */{len(data)}"})
    end = min(end, len(data) - 1)
    return Response(206, data[start : end + 1], {**headers, "Content-Range": f"bytes {start}-{end}/{len(data)}"})


def _listing(tree: dict[str, Blob], path: str, recursive: bool) -> list[tuple[str, Blob | None]]:
    """Entries under folder `path` ("" = root): files with their blob, folders with None."""
    prefix = f"{path}/" if path else ""
    if path and not any(p.startswith(prefix) for p in tree):
        raise HubError(404, f"Folder {path} not found", "EntryNotFound")
    out: dict[str, Blob | None] = {}
    for p, blob in tree.items():
        if not p.startswith(prefix):
            continue
        parts = p[len(prefix) :].split("/")
        for depth in range(1, len(parts) if recursive else min(2, len(parts))):
            out.setdefault(prefix + "/".join(parts[:depth]), None)
        if recursive or len(parts) == 1:
            out[p] = blob
    return sorted(out.items(), key=lambda kv: (kv[1] is not None, kv[0]))  # folders first, like the Hub


def _ignored(path: str, gitignore: str) -> bool:
    """A small subset of .gitignore: globs matched against the path, its name or a leading folder."""
    for line in gitignore.splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith(("#", "!")):
            continue
        pattern = pattern.lstrip("/")
        name = path.rsplit("/", 1)[-1]
        folder = pattern.rstrip("/") + "/"
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(name, pattern) or path.startswith(folder):
            return True
    return False


class PinningHubServer(HubServer):
    """A HubServer whose branch head can be given a chosen commit sha (server-side state only): the profiles pin
    real Hub commit shas, which a fresh server cannot have, so the server re-keys a stand-in's head commit to
    the pinned sha, exactly what the real Hub serves at that pin; clients and profiles stay unmodified."""

    def pin_head(self, repo_id: str, sha: str, branch: str = "main") -> None:
        with self._lock:
            repo = self._repos[("model", repo_id)]
            head = repo.commits.pop(repo.branches[branch])
            head.sha = sha  # no other commit has it as parent: it is the head
            repo.commits[sha] = head
            repo.branches[branch] = sha
