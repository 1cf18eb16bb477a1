"""The CLI's UX: help, `doctor`, `status`, `serve`, and one-line errors (with --debug for tracebacks)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from helpers import REPO, run, write_tiny_params
from r1interp import cli
from r1interp.cli import main
from r1interp.errors import R1InterpError

CLI = [sys.executable, "-m", "r1interp.cli"]
SECRETS = {"ANTHROPIC_API_KEY": "sk-test-SECRET123", "HF_TOKEN": "hf_SECRET456"}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("R1INTERP_DEBUG", "HF_ENDPOINT", "ANTHROPIC_BASE_URL")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPO)
    env["DVC_NO_ANALYTICS"] = "1"
    env.update(extra)
    return env


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Ok(BaseHTTPRequestHandler):
    def do_HEAD(self):  # noqa: N802 (stdlib name)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture()
def http_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _git_dvc_repo(root: Path) -> Path:
    root.mkdir()
    run(["git", "init", "-q"], root)
    run([sys.executable, "-m", "dvc", "init", "-q"], root)
    return root


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """A small git + DVC repo with valid (tiny) params and no remote."""
    root = _git_dvc_repo(tmp_path / "proj")
    write_tiny_params(root / "params.yaml")
    (root / "dvc.yaml").write_text("stages: {}\n")
    return root


# ---------------------------------------------------------------------------- help


def test_help_lists_every_command_and_the_common_workflows(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in (
        "params",
        "check",
        "doctor",
        "status",
        "serve",
        "sweep",
        "motifs",
        "publish",
        "pull",
        "prompts",
        "features",
    ):
        assert f"{command}" in out, command
    assert "common workflows" in out and "dvc repro report && r1interp serve" in out and "--dry-run" in out


def test_a_group_without_its_subcommand_prints_the_group_help(capsys):
    assert main(["params"]) == 2
    err = capsys.readouterr().err
    assert "usage: r1interp params" in err and "check" in err


# ---------------------------------------------------------------------------- doctor


def test_doctor_never_prints_secrets_and_reports_reachability(project, http_server, monkeypatch, capsys):
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("HF_ENDPOINT", http_server)
    closed = _closed_port()
    monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{closed}")
    monkeypatch.chdir(project)
    start = time.monotonic()
    code = main(["doctor"])
    text = capsys.readouterr()
    assert main(["doctor", "--json"]) == code
    raw = capsys.readouterr()
    assert time.monotonic() - start < 30
    for output in (text.out, text.err, raw.out, raw.err):
        for secret in SECRETS.values():
            assert secret not in output
        assert "SECRET" not in output

    checks = {c["name"]: c for c in json.loads(raw.out)["checks"]}
    assert checks["ANTHROPIC_API_KEY"]["detail"] == "set" and checks["HF_TOKEN"]["detail"] == "set"
    assert (
        checks["hub"]["status"] == "ok"
        and "reachable" in checks["hub"]["detail"]
        and http_server in checks["hub"]["detail"]
    )
    anthropic = checks["anthropic api"]
    assert anthropic["status"] == "warn" and "unreachable" in anthropic["detail"] and "offline" in anthropic["hint"]
    assert checks["git repo"]["status"] == "ok" and checks["dvc repo"]["status"] == "ok"
    assert checks["params.yaml"]["status"] == "ok"
    assert checks["dvc remote"]["status"] == "warn" and "dvc remote add" in checks["dvc remote"]["hint"]
    for name in ("python", "torch", "cuda", "dvc", "git", "disk", "chromium"):
        assert checks[name]["status"] in ("ok", "warn", "fail"), name
    # Exit code: 0 unless a check failed.
    assert code == (1 if any(c["status"] == "fail" for c in checks.values()) else 0)
    assert "ANTHROPIC_API_KEY  set" in text.out and "unreachable" in text.out and "hint: " in text.out


def test_doctor_cli_json_in_a_subprocess_keeps_secrets_out(project, tmp_path):
    env = _env(
        HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}",
        ANTHROPIC_BASE_URL=f"http://127.0.0.1:{_closed_port()}",
        **SECRETS,
    )
    start = time.monotonic()
    proc = subprocess.run(
        [*CLI, "doctor", "--json", "--timeout", "2"], cwd=project, env=env, capture_output=True, text=True, timeout=60
    )
    elapsed = time.monotonic() - start
    assert "SECRET" not in proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["hub"]["status"] == "warn" and "unreachable" in checks["hub"]["detail"]
    assert checks["HF_TOKEN"]["detail"] == "set"
    assert elapsed < 30  # closed ports answer at once; nothing waits on a timeout
    assert proc.returncode == (0 if doc["ok"] else 1)


def test_doctor_fails_outside_a_project_with_hints(tmp_path, monkeypatch, capsys):
    from r1interp import doctor

    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # tmp_path may sit inside some git repo
    checks = {c.name: c for c in doctor.run_checks(tmp_path, timeout=1)}
    assert checks["git repo"].status == "fail" and "git init" in checks["git repo"].hint
    assert checks["dvc repo"].status == "fail" and checks["params.yaml"].status == "fail"
    assert main(["doctor", "--repo", str(tmp_path), "--timeout", "1"]) == 1
    assert "not ready" in capsys.readouterr().out


def test_doctor_hides_credentials_in_urls():
    from r1interp.doctor import _safe_url

    assert _safe_url("https://user:hunter2@mirror.example:8443/hub") == "https://mirror.example:8443/hub"


# ---------------------------------------------------------------------------- status


DVC_YAML = """\
stages:
  one:
    cmd: cp a.txt one.txt
    deps: [a.txt]
    outs: [one.txt]
  two:
    cmd: cp b.txt two.txt
    deps: [b.txt]
    params: [x]
    outs: [two.txt]
  three:
    cmd: cp two.txt three.txt
    deps: [two.txt]
    outs: [three.txt]
  four:
    cmd: cp a.txt four.txt
    deps: [a.txt]
    outs: [four.txt]
  never:
    cmd: cp a.txt never.txt
    deps: [a.txt]
    outs: [never.txt]
"""

RELEASES = """\
releases:
  - name: organism-reasoner-transcoders
    kind: model
    repo_id: you/organism-reasoner-transcoders
    revision: 0123456789abcdef0123456789abcdef01234567
    tag: r1interp-organism-reasoner-transcoders-abc
    files: {cfg.json: 00}
    published_at: '2026-05-01T12:00:00+00:00'
"""


@pytest.fixture()
def pipeline(tmp_path: Path) -> Path:
    root = _git_dvc_repo(tmp_path / "pipe")
    (root / "a.txt").write_text("a\n")
    (root / "b.txt").write_text("b\n")
    (root / "params.yaml").write_text("x: 1\n")
    (root / "dvc.yaml").write_text(DVC_YAML)
    run([sys.executable, "-m", "dvc", "repro", "-q", "one", "two", "three", "four"], root)
    (root / "params.yaml").write_text("x: 2\n")  # two is stale (param), three is stale through two
    (root / "four.txt").unlink()  # four is built, but its output is gone
    return root


def test_status_maps_dvc_status_lock_and_releases(pipeline, capsys):
    assert main(["status", "--repo", str(pipeline), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    stages = {s["name"]: s for s in doc["stages"]}
    assert stages["one"]["state"] == "up to date" and stages["one"]["outs"] == [{"path": "one.txt", "present": True}]
    assert stages["two"]["state"] == "stale" and "param x modified" in stages["two"]["changes"]
    assert stages["three"]["state"] == "stale" and stages["three"]["upstream"] == ["two"]
    assert stages["four"]["state"] == "outputs missing" and stages["four"]["outs"] == [
        {"path": "four.txt", "present": False}
    ]
    assert stages["never"]["state"] == "never built"
    assert doc["counts"] == {"up to date": 1, "stale": 2, "outputs missing": 1, "never built": 1}
    assert doc["releases"] == [] and doc["site"] is None and doc["dvc_status_error"] is None

    (pipeline / "b.txt").write_text("changed\n")
    (pipeline / "releases.yaml").write_text(RELEASES)
    (pipeline / "reports" / "site").mkdir(parents=True)
    (pipeline / "reports" / "site" / "index.html").write_text("<h1>r1interp</h1>")
    assert main(["status", "--repo", str(pipeline)]) == 0
    out = capsys.readouterr().out
    rows = {}
    for line in out.splitlines():
        for state in ("up to date", "stale", "outputs missing", "never built"):
            if line.startswith(f"  {state} "):
                rows[line[len(state) + 2 :].split()[0]] = line.strip()
    assert "pipeline: 5 stages" in out and "1 up to date, 2 stale, 1 outputs missing, 1 never built" in out
    assert rows["one"].startswith("up to date") and rows["one"].endswith("one.txt")
    assert rows["two"].startswith("stale") and "dep b.txt modified" in rows["two"] and "param x modified" in rows["two"]
    assert rows["three"].startswith("stale") and "upstream stale: two" in rows["three"]
    assert rows["four"].startswith("outputs missing") and rows["four"].endswith("missing: four.txt")
    assert rows["never"].startswith("never built")
    assert "you/organism-reasoner-transcoders@0123456789ab" in out and "published 2026-05-01T12:00:00+00:00" in out
    assert "site: reports/site/index.html" in out and "r1interp serve" in out
    assert "`dvc repro` rebuilds 3 stages" in out and "dvc pull" in out


def test_status_outside_a_dvc_project_is_one_line_with_a_hint(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("R1INTERP_DEBUG", raising=False)
    assert main(["status", "--repo", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("error: ") and "not inside a DVC project" in err[0]
    assert err[1].startswith("hint: ") and "dvc.yaml" in err[1]


# ---------------------------------------------------------------------------- serve


def test_serve_serves_the_site_on_localhost(tmp_path):
    from r1interp.serve import make_server, url

    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>report</h1>")
    server = make_server(site, 0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert server.server_address[0] == "127.0.0.1"
        with urllib.request.urlopen(url(server), timeout=5) as resp:
            assert resp.status == 200 and resp.read() == b"<h1>report</h1>"
            assert resp.headers["Content-Type"].startswith("text/html")
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(url(server) + "nope.html", timeout=5)
        assert missing.value.code == 404
        with pytest.raises(R1InterpError) as taken:
            make_server(site, server.server_address[1])
        assert "already in use" in str(taken.value) and "--port 0" in taken.value.hint
    finally:
        server.shutdown()
        server.server_close()


def test_serve_refuses_a_missing_dir_with_the_build_hint(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("R1INTERP_DEBUG", raising=False)
    assert main(["serve", "--dir", str(tmp_path / "nosite"), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "error: " in err and "nosite" in err and "hint: " in err and "dvc repro report" in err
    assert "Traceback" not in err


def test_serve_cli_prints_the_url_and_exits_cleanly_on_ctrl_c(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<p>hello</p>")
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", "0", "--dir", str(site)],
        env=_env(),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line, line + proc.stderr.read()
        address = line.split("at ", 1)[1].split()[0]
        with urllib.request.urlopen(address, timeout=5) as resp:
            assert resp.read() == b"<p>hello</p>"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert "Traceback" not in err and "stopped" in err and "GET / " in err


# ---------------------------------------------------------------------------- errors


def test_unexpected_exception_is_one_line_and_debug_shows_the_traceback(tmp_path):
    folder = tmp_path / "prompts.json"
    folder.mkdir()  # reading a directory as a file: an IsADirectoryError the code does not expect
    plain = subprocess.run(
        [*CLI, "prompts", "check", str(folder)], env=_env(), capture_output=True, text=True, timeout=60
    )
    assert plain.returncode == 1
    assert plain.stderr.splitlines() == [
        f"error: {folder}: Is a directory",
        "hint: re-run with --debug for the traceback",
    ]
    for argv, extra in (
        ([*CLI, "prompts", "check", str(folder), "--debug"], {}),  # after the command
        ([*CLI, "--debug", "prompts", "check", str(folder)], {}),  # before it
        ([*CLI, "prompts", "check", str(folder)], {"R1INTERP_DEBUG": "1"}),
    ):
        debug = subprocess.run(argv, env=_env(**extra), capture_output=True, text=True, timeout=60)
        assert debug.returncode == 1
        assert "Traceback (most recent call last)" in debug.stderr and "IsADirectoryError" in debug.stderr
        assert debug.stderr.rstrip().endswith(f"error: {folder}: Is a directory")


@pytest.mark.parametrize(
    "exc, code, line",
    [
        (KeyboardInterrupt(), 130, "error: interrupted"),
        (
            subprocess.CalledProcessError(3, ["dvc", "status"], stderr="line one\nERROR: lock held\n"),
            1,
            "error: `dvc status` failed with exit code 3: ERROR: lock held",
        ),
        (
            FileNotFoundError(2, "No such file or directory", "dvc.lock"),
            1,
            "error: dvc.lock: No such file or directory",
        ),
        (RuntimeError("boom\nsecond line"), 1, "error: RuntimeError: boom"),
        (R1InterpError("bad thing", hint="do this"), 2, "error: bad thing"),
    ],
)
def test_errors_are_one_clear_line(monkeypatch, capsys, exc, code, line):
    monkeypatch.delenv("R1INTERP_DEBUG", raising=False)

    def boom(args):
        raise exc

    monkeypatch.setattr(cli, "_params_check", boom)
    assert main(["params", "check"]) == code
    err = capsys.readouterr().err.splitlines()
    assert err[0] == line
    assert len(err) == (1 if code == 130 else 2)
    if code != 130:
        assert err[1] == ("hint: do this" if code == 2 else "hint: re-run with --debug for the traceback")


def test_error_messages_never_echo_secrets(monkeypatch, capsys):
    monkeypatch.delenv("R1INTERP_DEBUG", raising=False)
    monkeypatch.setenv("HF_TOKEN", SECRETS["HF_TOKEN"])

    def boom(args):
        raise RuntimeError(f"401 for token {SECRETS['HF_TOKEN']}")

    monkeypatch.setattr(cli, "_params_check", boom)
    assert main(["params", "check"]) == 1
    err = capsys.readouterr().err
    assert "SECRET" not in err and "error: RuntimeError: 401 for token ***" in err


def test_doctor_checks_a_local_dvc_remote(project, tmp_path):
    from r1interp.doctor import check_remote

    storage = tmp_path / "storage"
    run([sys.executable, "-m", "dvc", "remote", "add", "-d", "store", str(storage)], project)
    first = check_remote(project, timeout=1)
    assert first.status == "ok" and "created on the first `dvc push`" in first.detail
    storage.mkdir()
    assert check_remote(project, timeout=1).status == "ok"
    (tmp_path / "a-file").write_text("")
    run(
        [
            sys.executable,
            "-m",
            "dvc",
            "remote",
            "modify",
            "--local",
            "store",
            "url",
            str(tmp_path / "a-file" / "storage"),
        ],
        project,
    )
    bad = check_remote(project, timeout=1)  # config.local overrides config, as for dvc itself
    assert bad.status == "fail" and "cannot be created" in bad.detail and "dvc remote modify --local" in bad.hint


def _get(port: int, path: str, host: str | None) -> tuple[int, bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.putrequest("GET", path, skip_host=True)
        if host is not None:
            conn.putheader("Host", host)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_serve_answers_only_to_its_own_host_and_lists_no_folder(tmp_path):
    from r1interp.serve import make_server

    site = tmp_path / "site"
    (site / "quality").mkdir(parents=True)
    (site / "index.html").write_text("<h1>report</h1>")
    (site / "quality" / "secret-name.json").write_text("{}")
    server = make_server(site, 0, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}"):
            assert _get(port, "/", host) == (200, b"<h1>report</h1>"), host
        # DNS rebinding: another name pointed at 127.0.0.1; also a wrong port, and no Host at all
        for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1:{port + 1}", "127.0.0.1", None):
            status, body = _get(port, "/", host)
            assert status == 421 and b"report" not in body, host
        status, body = _get(port, "/quality/", f"127.0.0.1:{port}")
        assert status == 404 and b"secret-name" not in body
        assert _get(port, "/quality/secret-name.json", f"127.0.0.1:{port}") == (200, b"{}")
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("argv", "expected"), [
    (["features", "show", "0", "12345678901234567890"], "argument feature: must be between 0 and 2147483647"),
    (["features", "show", "-1", "3"], "argument layer: must be between 0 and 2147483647"),
    (["motifs", "graph.json", "--seed", "-1"], "argument --seed: must be between 0 and 4294967295"),
    (["motifs", "graph.json", "--seed", str(2**40)], "argument --seed: must be between 0 and 4294967295"),
])  # fmt: skip
def test_out_of_range_numbers_are_one_usage_line(argv, expected, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_motifs_checks_the_graph_file_and_out_before_reading(tmp_path, capsys, monkeypatch):
    import os

    monkeypatch.delenv("R1INTERP_DEBUG", raising=False)
    fifo = tmp_path / "graph.fifo"
    os.mkfifo(fifo)  # reading it would block forever
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 2_000_001)
    good = tmp_path / "g.json"
    good.write_text("{}")
    wide = tmp_path / "wide.json"
    wide.write_text('{"nodes": [{}, {}, {}], "links": [{}, {}]}')
    cases = [
        ([str(fifo)], "graph.fifo: not a regular file"),
        (["/dev/zero"], "/dev/zero: not a regular file"),
        ([str(tmp_path)], "not a regular file"),
        ([str(tmp_path / "none.json")], "none.json: file not found"),
        ([str(big), "--max-mb", "1"], "big.json: 2 MB is over the --max-mb limit of 1 MB"),
        ([str(wide), "--max-nodes", "2"], "wide.json: 3 nodes is over the --max-nodes limit of 2"),
        ([str(wide), "--max-links", "1"], "wide.json: 2 links is over the --max-links limit of 1"),
        ([str(good), "--out", str(tmp_path)], "is a directory; give a file path"),
        ([str(good), "--out", str(tmp_path / "no" / "r.json")], "does not exist"),
    ]
    for argv, expected in cases:
        assert main(["motifs", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2, err
