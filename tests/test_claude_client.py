"""ClaudeClient against a real local HTTP server, through the real anthropic SDK (nothing mocked)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from messages_server import TIMED_OUT, MessagesServer, prompt_of, sha
from r1interp.autointerp.client import ClaudeClient, Completion, LLMRequest, RateLimiter, ResponseCache
from r1interp.config import ClaudeParams
from r1interp.errors import R1InterpError

pytestmark = pytest.mark.timeout(60)  # a lost cap or a missed resume would otherwise hang, not fail

KEY = "sk-ant-api03-TESTSECRET-0123456789abcdef"
REPO = Path(__file__).resolve().parents[1]


def echo(request: dict) -> str:
    """Answer that names its prompt, so a mismatched answer is detectable."""
    return f"Reasoning about it.\n[EXPLANATION]: answer for <{prompt_of(request)}>"


def make_cfg(**overrides) -> ClaudeParams:
    base = dict(
        requests_per_minute=100_000,
        tokens_per_minute=100_000_000,
        concurrency=4,
        max_retries=3,
        max_retry_wait_s=0.2,
        timeout_s=5.0,
        batch_poll_s=0.05,
    )
    base.update(overrides)
    return dataclasses.replace(ClaudeParams(), **base)


def reqs(n: int, tag: str = "p", system: str = "") -> list[LLMRequest]:
    return [
        LLMRequest(model="claude-haiku-4-5", prompt=f"{tag} prompt {i}", system=system, max_tokens=64) for i in range(n)
    ]


@pytest.fixture
def server(monkeypatch):
    with MessagesServer(echo, api_key=KEY) as srv:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", srv.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
        monkeypatch.delenv("ANTHROPIC_CUSTOM_HEADERS", raising=False)
        yield srv


def statuses(srv: MessagesServer) -> list[int]:
    return [status for _, _, status in srv.message_requests()]


def cache_lines(cache_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (cache_dir / "responses.jsonl").read_text().splitlines() if line.strip()]


# -- requests and the cache ----------------------------------------------------------


def test_request_key_is_sha_of_all_fields():
    r = LLMRequest(model="m", prompt="p", system="s", max_tokens=10)
    expected = hashlib.sha256(
        json.dumps({"model": "m", "system": "s", "prompt": "p", "max_tokens": 10}, sort_keys=True).encode()
    ).hexdigest()
    assert r.key == expected
    others = [
        dataclasses.replace(r, **{f: v})
        for f, v in (("model", "m2"), ("prompt", "p2"), ("system", ""), ("max_tokens", 11))
    ]
    assert len({r.key, *(o.key for o in others)}) == 5
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", r.custom_id)


def test_success_writes_cache_and_sends_the_right_request(server, tmp_path):
    client = ClaudeClient(make_cfg(), tmp_path)
    requests = reqs(3) + [
        LLMRequest(model="claude-explainer-test", prompt="with system", system="You label features.", max_tokens=99)
    ]
    out = client.complete_many(requests + requests[:2])  # duplicates are sent once

    assert set(out) == {r.key for r in requests}
    for r in requests:
        c = out[r.key]
        assert isinstance(c, Completion) and not c.cached
        assert c.text == f"Reasoning about it.\n[EXPLANATION]: answer for <{r.prompt}>"
        assert c.model == r.model and c.input_tokens > 0 and c.output_tokens > 0
    assert statuses(server) == [200] * 4
    assert client.stats["sent"] == 4 and client.stats["retries"] == 0

    bodies = {b["messages"][0]["content"]: b for b in server.bodies_seen}
    assert bodies["with system"]["system"] == "You label features."
    assert bodies["with system"]["max_tokens"] == 99 and bodies["with system"]["model"] == "claude-explainer-test"
    assert "system" not in bodies["p prompt 0"]
    assert bodies["p prompt 0"]["messages"] == [{"role": "user", "content": "p prompt 0"}]
    assert all(not ({"temperature", "top_p", "top_k"} & set(b)) for b in server.bodies_seen)
    assert server.headers_seen[0]["authorization"] == f"Bearer {KEY}" and "anthropic-version" in server.headers_seen[0]

    lines = cache_lines(tmp_path)
    assert {line["key"] for line in lines} == {r.key for r in requests}
    assert set(lines[0]) == {"key", "model", "text", "input_tokens", "output_tokens", "time"}


def test_second_run_is_served_from_cache_without_http(server, tmp_path):
    requests = reqs(3)
    ClaudeClient(make_cfg(), tmp_path).complete_many(requests)
    before = list(server.log)

    client = ClaudeClient(make_cfg(), tmp_path)
    out = client.complete_many(requests)
    assert server.log == before
    assert all(c.cached for c in out.values()) and len(out) == 3
    assert client.stats["cache_hits"] == 3 and client.stats["sent"] == 0


# -- faults --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault,status",
    [
        ("429-ms", 429),
        ("529", 529),
        ("500", 500),
        ("503", 503),
        ("timeout", TIMED_OUT),
        ("malformed", 200),
        ("empty", 200),
    ],
)
def test_transient_fault_is_retried(server, tmp_path, fault, status):
    server.faults.append(fault)
    server.timeout_sleep_s = 1.5
    client = ClaudeClient(make_cfg(timeout_s=0.5), tmp_path)
    (req,) = reqs(1)
    out = client.complete_many([req])

    assert out[req.key].text.endswith(f"<{req.prompt}>")
    assert statuses(server) == [status, 200]
    assert server.delivered[req.prompt] == 1
    assert client.stats["sent"] == 2 and client.stats["retries"] == 1 and client.stats["failures"] == 0
    assert client.stats["rate_limited"] == (1 if status == 429 else 0)
    if fault == "429-ms":
        assert client.stats["waited_s"] >= 0.19  # retry-after-ms: 200
    assert len(cache_lines(tmp_path)) == 1


def test_429_waits_for_retry_after_seconds(server, tmp_path):
    server.faults.append("429")  # retry-after: 1
    client = ClaudeClient(make_cfg(max_retry_wait_s=10.0), tmp_path)
    start = time.monotonic()
    client.complete_many(reqs(1))
    assert time.monotonic() - start >= 0.95
    assert client.stats["waited_s"] >= 0.95 and client.stats["rate_limited"] == 1


def test_huge_retry_after_is_capped(server, tmp_path):
    server.faults.append("429-long")  # retry-after: 3600
    client = ClaudeClient(make_cfg(max_retry_wait_s=0.3), tmp_path)
    start = time.monotonic()
    client.complete_many(reqs(1))
    assert time.monotonic() - start < 3.0
    assert statuses(server) == [429, 200]


def test_400_fails_fast_and_keeps_the_other_answers(server, tmp_path):
    server.faults.append("400")
    client = ClaudeClient(make_cfg(concurrency=1), tmp_path)
    with pytest.raises(R1InterpError) as exc:
        client.complete_many(reqs(3))
    msg = str(exc.value)
    assert msg.startswith("1 of 3 Claude requests failed: HTTP 400 invalid_request_error: messages: prompt is too long")
    assert "the 2 answers received are cached" in exc.value.hint
    assert statuses(server) == [400, 200, 200]  # not retried
    assert len(ResponseCache(tmp_path)) == 2
    assert KEY not in msg and KEY not in exc.value.hint


def test_exhausted_retries_raise_with_count_and_hint_then_rerun_sends_only_the_missing(server, tmp_path):
    server.faults.extend(["500", "500", "500"])  # concurrency 1: the first request eats all three
    requests = reqs(1, "a") + reqs(2, "b")
    client = ClaudeClient(make_cfg(max_retries=2, concurrency=1), tmp_path)
    with pytest.raises(R1InterpError) as exc:
        client.complete_many(requests)
    assert str(exc.value).startswith(
        "1 of 3 Claude requests failed: HTTP 500 api_error: Internal server error (gave up after 3 attempts)"
    )
    assert exc.value.hint == "re-run: the 2 answers received are cached and will not be requested again"
    assert client.stats["failures"] == 1 and client.stats["retries"] == 2
    n = len(server.message_requests())
    assert n == 5

    out = ClaudeClient(make_cfg(), tmp_path).complete_many(requests)
    assert len(server.message_requests()) == n + 1  # only the failed one
    assert sum(not c.cached for c in out.values()) == 1


def test_wrong_key_fails_without_leaking_it_and_stops_sending(server, tmp_path):
    wrong = "sk-ant-api03-WRONGWRONG-999"
    client = ClaudeClient(make_cfg(concurrency=1), tmp_path, api_key=wrong)
    with pytest.raises(R1InterpError) as exc:
        client.complete_many(reqs(4))
    assert "4 of 4 Claude requests failed: HTTP 401 authentication_error" in str(exc.value)
    assert wrong not in str(exc.value) and wrong not in (exc.value.hint or "")
    assert statuses(server) == [401]  # the other three were not sent


@pytest.mark.parametrize("value", [None, ""])
def test_missing_api_key_is_a_clear_error(monkeypatch, tmp_path, value):
    if value is None:
        monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    else:
        monkeypatch.setenv("ANTHROPIC_API_KEY", value)
    with pytest.raises(R1InterpError) as exc:
        ClaudeClient(make_cfg(), tmp_path / "cache")
    assert str(exc.value) == "labels.labeler is 'claude' but ANTHROPIC_API_KEY is not set"
    assert exc.value.hint.startswith("export ANTHROPIC_API_KEY=")
    assert not (tmp_path / "cache").exists()


def test_key_never_written_to_disk(server, tmp_path):
    server.faults.append("400")
    with pytest.raises(R1InterpError):
        ClaudeClient(make_cfg(concurrency=1), tmp_path).complete_many(reqs(2))
    ClaudeClient(make_cfg(use_batches=True), tmp_path).complete_many(reqs(2, "batch"))
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files and any(p.name == "responses.jsonl" for p in files)
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path
        assert b"TESTSECRET" not in path.read_bytes(), path


def test_truncated_last_line_is_skipped_and_appended_after(server, tmp_path):
    first, second = reqs(2)
    ClaudeClient(make_cfg(), tmp_path).complete_many([first])
    path = tmp_path / "responses.jsonl"
    with open(path, "a") as f:
        f.write('{"key": "deadbeef", "model": "m", "text": "half a li')  # killed mid-write

    client = ClaudeClient(make_cfg(), tmp_path)
    assert len(client.cache) == 1 and first.key in client.cache and "deadbeef" not in client.cache
    assert client.cache.skipped_lines == 1
    out = client.complete_many([first, second])
    assert out[first.key].cached and not out[second.key].cached

    reloaded = ResponseCache(tmp_path)
    assert len(reloaded) == 2 and second.key in reloaded and reloaded.skipped_lines == 1
    assert reloaded.get(second.key).text == out[second.key].text
    assert path.read_text().endswith("\n")


# -- rate limiting -------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


def test_rate_limiter_requests_per_minute():
    clock = FakeClock()
    lim = RateLimiter(2, 10**9, clock=clock, sleep=clock.sleep)
    assert lim.acquire(1) == 0 and lim.acquire(1) == 0
    assert lim.acquire(1) == pytest.approx(60.0)
    assert clock.now == pytest.approx(1060.0) and lim.waited_s == pytest.approx(60.0)
    clock.now += 30  # t=1090: only the request of t=1060 is in the window
    assert lim.acquire(1) == 0
    assert lim.acquire(1) == pytest.approx(30.0)  # until the t=1060 request leaves the window


def test_rate_limiter_token_budget_and_pause():
    clock = FakeClock()
    lim = RateLimiter(1000, 100, clock=clock, sleep=clock.sleep)
    lim.acquire(60)
    clock.now += 10
    lim.acquire(30)  # 90 <= 100: no wait
    assert clock.sleeps == []
    assert lim.acquire(20) == pytest.approx(50.0)  # must wait for the 60-token request (t=1000) to leave the window
    assert lim.acquire(500) == pytest.approx(60.0)  # larger than the budget: runs once the window is empty


def test_rate_limiter_pause_holds_every_caller():
    clock = FakeClock()
    lim = RateLimiter(1000, 10**6, clock=clock, sleep=clock.sleep)
    lim.pause_until(clock.now + 5)
    lim.pause_until(clock.now + 2)  # an earlier deadline never shortens a pause
    assert lim.acquire(1) == pytest.approx(5.0)
    assert lim.acquire(1) == 0 and lim.waited_s == pytest.approx(5.0)


def test_concurrency_runs_requests_in_parallel(server, tmp_path):
    server.delay_s = 0.3
    client = ClaudeClient(make_cfg(concurrency=4), tmp_path)
    start = time.monotonic()
    out = client.complete_many(reqs(8))
    elapsed = time.monotonic() - start
    assert len(out) == 8
    assert elapsed < 8 * 0.3 * 0.6, elapsed  # sequential would be 2.4 s
    assert server.max_in_flight == 4


def test_exhausted_ratelimit_headers_pause_until_reset(server, tmp_path):
    server.requests_remaining = 0
    server.reset_in_s = 0.6
    client = ClaudeClient(make_cfg(concurrency=1, max_retry_wait_s=10.0), tmp_path)
    start = time.monotonic()
    client.complete_many(reqs(2))
    assert time.monotonic() - start >= 0.45

    server.reset_in_s = 3600  # capped by max_retry_wait_s
    client = ClaudeClient(make_cfg(concurrency=1, max_retry_wait_s=0.2), tmp_path)
    start = time.monotonic()
    client.complete_many(reqs(2, "capped"))
    assert time.monotonic() - start < 2.0


# -- Message Batches -----------------------------------------------------------------


def test_batches_match_results_by_custom_id(server, tmp_path):
    requests = reqs(12)
    client = ClaudeClient(make_cfg(use_batches=True), tmp_path)
    out = client.complete_many(requests)

    assert len(server.batches) == 1
    (batch,) = server.batches.values()
    assert [r["custom_id"] for r in batch["requests"]] == [r.key[:64] for r in requests]
    assert batch["requests"][0]["params"] == requests[0].params()
    for r in requests:
        assert out[r.key].text.endswith(f"<{r.prompt}>"), "answer matched to the wrong request"
    assert server.message_requests() == []
    assert json.loads((tmp_path / "batches.json").read_text()) == {"batches": []}
    assert len(ResponseCache(tmp_path)) == 12 and client.stats["sent"] == 12

    before = list(server.log)
    again = ClaudeClient(make_cfg(use_batches=True), tmp_path).complete_many(requests)
    assert server.log == before and all(c.cached for c in again.values())


def test_batch_errored_and_expired_are_retried_in_a_new_batch(server, tmp_path):
    server.batch_errors.extend(["errored", "expired"])
    client = ClaudeClient(make_cfg(use_batches=True), tmp_path)
    requests = reqs(4)
    out = client.complete_many(requests)
    assert len(out) == 4 and all(out[r.key].text.endswith(f"<{r.prompt}>") for r in requests)
    sizes = [len(b["requests"]) for b in server.batches.values()]
    assert sizes == [4, 2]
    assert client.stats["retries"] == 2


def test_batch_invalid_request_is_not_retried(server, tmp_path):
    server.batch_errors.append("invalid")
    client = ClaudeClient(make_cfg(use_batches=True), tmp_path)
    with pytest.raises(R1InterpError) as exc:
        client.complete_many(reqs(3))
    assert str(exc.value).startswith("1 of 3 Claude requests failed: batch result invalid_request_error")
    assert "the 2 answers received are cached" in exc.value.hint
    assert len(server.batches) == 1 and len(ResponseCache(tmp_path)) == 2


KILLED_RUN = """
import json, sys
from r1interp.autointerp.client import ClaudeClient, LLMRequest
from r1interp.config import ClaudeParams
cfg = ClaudeParams(**json.loads(sys.argv[2]))
requests = [LLMRequest(**r) for r in json.loads(sys.argv[3])]
ClaudeClient(cfg, sys.argv[1]).complete_many(requests)
"""


def test_killed_batch_run_resumes_the_same_batch(server, tmp_path):
    server.batch_polls_before_end = 10**9  # the batch never ends while the first run is alive
    cfg = make_cfg(use_batches=True)
    requests = reqs(5)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(tmp_path), json.dumps(dataclasses.asdict(cfg)),
         json.dumps([dataclasses.asdict(r) for r in requests])],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not any(path.startswith("/v1/messages/batches/") for path, _, _ in server.log):  # polling began
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "the first run never started polling"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    persisted = json.loads((tmp_path / "batches.json").read_text())["batches"]
    assert [b["id"] for b in persisted] == list(server.batches)
    assert len(ResponseCache(tmp_path)) == 0

    server.batch_polls_before_end = 0
    client = ClaudeClient(cfg, tmp_path)
    out = client.complete_many(requests)
    assert len(server.batches) == 1  # resumed, not re-created
    assert sum(1 for path, _, _ in server.log if path == "/v1/messages/batches") == 1
    assert all(out[r.key].text.endswith(f"<{r.prompt}>") for r in requests)
    assert json.loads((tmp_path / "batches.json").read_text()) == {"batches": []}
    assert client.stats["sent"] == 0


def test_server_hold_and_max_delivered_block_requests(server, tmp_path):
    """The test server's hold/max_delivered switches (used by the kill/resume stage tests)."""
    server.hold.set()
    client = ClaudeClient(make_cfg(), tmp_path / "held")
    worker = threading.Thread(target=client.complete_many, args=(reqs(2, "held"),))
    worker.start()
    time.sleep(0.3)
    assert worker.is_alive() and not server.delivered and len(client.cache) == 0
    server.hold.clear()
    worker.join(timeout=10)
    assert not worker.is_alive() and len(client.cache) == 2

    server.max_delivered = 2 + 2  # two more answers, then the server hangs
    client = ClaudeClient(make_cfg(timeout_s=0.5, max_retries=0, concurrency=1), tmp_path)
    with pytest.raises(
        R1InterpError, match=r"^1 of 3 Claude requests failed: request timed out \(gave up after 1 attempt\)$"
    ):
        client.complete_many(reqs(3))
    assert sum(server.delivered.values()) == 4 and len(ResponseCache(tmp_path)) == 2
    assert {sha(p) for p in server.delivered} <= {h for _, h, _ in server.log}


def test_ctrl_c_during_a_rate_limit_pause_stops_within_a_second(server, tmp_path):
    """Worker threads held by a 429 pause (60 s here) must not keep the process alive after Ctrl-C."""
    import signal

    server.faults.append("429-long")  # retry-after: 3600, capped at max_retry_wait_s
    script = (
        "import dataclasses, faulthandler, signal, sys\n"
        "faulthandler.register(signal.SIGUSR1, all_threads=True)\n"  # where it hangs, if it does
        # a terminal's Ctrl-C: a process started with SIGINT ignored (as under pytest-xdist's workers) inherits
        # that, and Python then installs no KeyboardInterrupt handler
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from r1interp.autointerp.client import ClaudeClient, LLMRequest\n"
        "from r1interp.config import ClaudeParams\n"
        "cfg = dataclasses.replace(ClaudeParams(), max_retry_wait_s=60.0, concurrency=2, max_retries=3, timeout_s=5.0)\n"
        "client = ClaudeClient(cfg, sys.argv[1])\n"
        "reqs = [LLMRequest(model='claude-haiku-4-5', prompt=f'p {i}', system='', max_tokens=64) for i in range(4)]\n"
        "client.complete_many(reqs)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "cache")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while 429 not in statuses(server) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert 429 in statuses(server), "the 429 never reached the client"
    time.sleep(0.5)  # every thread is now inside the pause
    assert proc.poll() is None
    seen = len(statuses(server))  # requests that raced the pause may have been answered; none may follow
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    try:
        _, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)
        time.sleep(1)
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"Ctrl-C did not stop the client within 15 s; its threads:\n{err[-6000:]}") from None
    stopped_after = time.monotonic() - sent
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    assert stopped_after < 5.0, f"Ctrl-C took {stopped_after:.1f} s (the pause had ~60 s left)"
    assert len(statuses(server)) == seen  # nothing was sent after the interrupt
