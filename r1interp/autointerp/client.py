"""Transport for the Claude labeler/scorer: cached, rate-limited, retrying Messages API calls.

Labeling thousands of features means thousands of paid requests that may take hours, so
the transport is built around not paying twice and not dying on a transient error:

* every answer goes into an append-only JSONL cache (`ResponseCache`) the moment it
  arrives, keyed by a hash of everything that determines it; a re-run (after a crash,
  a kill, or a failed request) only sends what is missing;
* a shared `RateLimiter` keeps all worker threads under the requests/tokens per minute
  budget, and a 429 pauses every thread, not just the one that got it;
* retries are ours (the SDK's are switched off with `max_retries=0`) because the SDK
  sleeps for whatever `retry-after` says, uncapped; ours is capped by `max_retry_wait_s`;
* Message Batches mode persists the batch ids before polling so a killed run resumes
  the same batch instead of paying for a second one.

The API key comes from the environment only, lives only inside the SDK client, and is
scrubbed from every error message we raise; it is never written to the cache or logs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import anthropic
from tqdm.auto import tqdm

from r1interp.config import ClaudeParams
from r1interp.errors import R1InterpError
from r1interp.io import write_json

log = logging.getLogger(__name__)

BATCH_LIMIT = 10_000  # requests per Message Batch we create (the API allows more; smaller batches end sooner)
BACKOFF_BASE_S = 0.5
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
RATELIMIT_FAMILIES = ("requests", "tokens", "input-tokens", "output-tokens")
# Batch errors that a second attempt cannot fix (the request itself is wrong or not allowed).
FATAL_BATCH_ERRORS = frozenset({"invalid_request_error", "authentication_error", "permission_error", "not_found_error"})


@dataclass(frozen=True)
class LLMRequest:
    """One single-turn request; everything that determines the answer is part of `key`."""

    model: str
    prompt: str
    system: str = ""
    max_tokens: int = 600

    @property
    def key(self) -> str:
        payload = {"model": self.model, "system": self.system, "prompt": self.prompt, "max_tokens": self.max_tokens}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    @property
    def custom_id(self) -> str:
        """Batch custom_id: must match ^[a-zA-Z0-9_-]{1,64}$, so the first 64 hex chars of the key."""
        return self.key[:64]

    def params(self) -> dict[str, Any]:
        """Keyword arguments for `messages.create` (and a batch request's `params`)."""
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "messages": [{"role": "user", "content": self.prompt}],
        }
        if self.system:
            params["system"] = self.system
        return params

    def estimated_tokens(self) -> int:
        """Rough input + output budget (~3 chars per token, plus the whole output allowance)."""
        return len(self.prompt + self.system) // 3 + self.max_tokens


@dataclass
class Completion:
    key: str
    text: str
    model: str
    input_tokens: int
    output_tokens: int
    cached: bool


class ResponseCache:
    """Append-only `responses.jsonl`: one fsynced line per answer, so a kill loses at most one line.

    A torn last line (the process died mid-write) is skipped on load, and the next `put`
    starts on a fresh line so the torn bytes never glue onto a good record.
    """

    FILENAME = "responses.jsonl"

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / self.FILENAME
        self._lock = threading.Lock()
        self._entries: dict[str, Completion] = {}
        self._needs_newline = False
        self.skipped_lines = 0
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        self._needs_newline = bool(data) and not data.endswith(b"\n")
        for raw in data.split(b"\n"):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
                entry = Completion(
                    key=str(rec["key"]),
                    text=str(rec["text"]),
                    model=str(rec["model"]),
                    input_tokens=int(rec["input_tokens"]),
                    output_tokens=int(rec["output_tokens"]),
                    cached=True,
                )
            except (ValueError, KeyError, TypeError):
                self.skipped_lines += 1
                continue
            self._entries[entry.key] = entry
        if self.skipped_lines:
            log.warning("%s: skipped %d unreadable line(s) (an interrupted write)", self.path, self.skipped_lines)

    def get(self, key: str) -> Completion | None:
        with self._lock:
            return self._entries.get(key)

    def put(self, key: str, *, model: str, text: str, input_tokens: int, output_tokens: int) -> Completion:
        """Append one answer durably; returns it as a fresh (cached=False) Completion."""
        record = {
            "key": key,
            "model": model,
            "text": text,
            "input_tokens": int(input_tokens),
            "output_tokens": int(output_tokens),
            "time": round(time.time(), 3),
        }
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            with open(self.path, "a", encoding="utf-8") as f:
                if self._needs_newline:
                    f.write("\n")
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            self._needs_newline = False
            self._entries[key] = Completion(key, text, model, int(input_tokens), int(output_tokens), cached=True)
        return Completion(key, text, model, int(input_tokens), int(output_tokens), cached=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries


class RateLimiter:
    """Requests- and tokens-per-minute budget shared by all worker threads.

    Sliding 60 s window: a request may start when fewer than `requests_per_minute`
    requests started in the last 60 s and their estimated tokens plus its own fit in
    `tokens_per_minute`. A sliding window (rather than a token bucket) never bursts
    above the per-minute limit in any 60 s span, which is how the API counts. A single
    request larger than the whole token budget is let through once the window is empty,
    otherwise it could never run. `pause_until` (a 429's retry-after, or exhausted
    rate-limit headers) holds every thread until the deadline. `waited_s` sums the time
    threads spent blocked here (thread-seconds, not wall time).
    """

    WINDOW_S = 60.0

    def __init__(
        self,
        requests_per_minute: int,
        tokens_per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if requests_per_minute < 1 or tokens_per_minute < 1:
            raise ValueError("requests_per_minute and tokens_per_minute must be >= 1")
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self.clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._events: deque[tuple[float, int]] = deque()
        self._tokens = 0
        self._paused_until = float("-inf")
        self.waited_s = 0.0

    def _prune(self, now: float) -> None:
        while self._events and self._events[0][0] + self.WINDOW_S <= now:
            self._tokens -= self._events.popleft()[1]

    def _wait_needed(self, now: float, tokens: int) -> float:
        wait = self._paused_until - now
        if len(self._events) >= self.requests_per_minute:
            oldest_to_expire = self._events[len(self._events) - self.requests_per_minute]
            wait = max(wait, oldest_to_expire[0] + self.WINDOW_S - now)
        if self._events and self._tokens + tokens > self.tokens_per_minute:
            remaining = self._tokens
            for started, used in self._events:  # oldest first: how long until enough have expired
                remaining -= used
                if remaining + tokens <= self.tokens_per_minute or remaining == 0:
                    wait = max(wait, started + self.WINDOW_S - now)
                    break
        return wait

    def acquire(self, estimated_tokens: int) -> float:
        """Block until a request of `estimated_tokens` fits; returns the seconds this call waited."""
        tokens = max(0, int(estimated_tokens))
        waited = 0.0
        while True:
            with self._lock:
                now = self.clock()
                self._prune(now)
                wait = self._wait_needed(now, tokens)
                if wait <= 0:
                    self._events.append((now, tokens))
                    self._tokens += tokens
                    return waited
            self._sleep(wait)
            waited += wait
            with self._lock:
                self.waited_s += wait

    def pause_until(self, deadline: float) -> None:
        """Make every thread wait until `deadline` (in this limiter's clock) before its next request."""
        with self._lock:
            self._paused_until = max(self._paused_until, deadline)


class _RequestFailed(Exception):
    """One request failed for good (non-retryable, or out of retries); the message is user-facing."""


class _NotSent(_RequestFailed):
    """Skipped because an earlier request showed every request would fail (bad key); never the first error shown."""


class _Stopped(BaseException):
    """Raised in a worker thread whose wait was cut short by an interrupt of the main thread."""


class _Malformed(Exception):
    """A 200 whose body is not a usable Message: retried like a transient error."""


def _text_of(message: Any) -> str:
    """The concatenated text blocks of a Message; `_Malformed` when there are none."""
    content = getattr(message, "content", None)
    if not isinstance(content, list):
        raise _Malformed(f"response is not a Message (got {type(message).__name__})")
    texts = [
        block.text
        for block in content
        if getattr(block, "type", None) == "text" and isinstance(getattr(block, "text", None), str)
    ]
    if not texts:
        raise _Malformed("response Message has no text content block")
    return "".join(texts)


def _usage(message: Any) -> tuple[int, int]:
    usage = getattr(message, "usage", None)
    return int(getattr(usage, "input_tokens", 0) or 0), int(getattr(usage, "output_tokens", 0) or 0)


def _retry_after_s(headers: Any) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds or an HTTP date); None if absent."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime

        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None


def _ratelimit_reset_s(headers: Any) -> float | None:
    """Seconds until the latest `-reset` among exhausted `anthropic-ratelimit-*` budgets; None if none is exhausted."""
    if headers is None:
        return None
    waits = []
    for family in RATELIMIT_FAMILIES:
        remaining = headers.get(f"anthropic-ratelimit-{family}-remaining")
        if remaining is None or remaining.strip() != "0":
            continue
        reset = headers.get(f"anthropic-ratelimit-{family}-reset")
        try:
            waits.append(datetime.fromisoformat(reset.strip().replace("Z", "+00:00")).timestamp() - time.time())
        except (AttributeError, ValueError):
            waits.append(1.0)  # exhausted but unparsable reset: a short pause beats hammering
    return max(0.0, max(waits)) if waits else None


def _describe(err: BaseException) -> str:
    """One line for the user: the server's own error message, never a repr of the request."""
    if isinstance(err, anthropic.APIStatusError):
        kind = err.type or type(err).__name__
        return f"HTTP {err.status_code} {kind}: {err.api_message or err.message}"
    if isinstance(err, anthropic.APITimeoutError):
        return "request timed out"
    if isinstance(err, anthropic.APIConnectionError):
        cause = err.__cause__
        return f"connection error ({type(cause).__name__}: {cause})" if cause else "connection error"
    if isinstance(err, ValueError):
        return f"malformed response body ({err})"
    return f"{type(err).__name__}: {err}"


def require_api_key(setting: str = "labels.labeler", fallback: str = "offline") -> str:
    """ANTHROPIC_API_KEY from the environment (the only place it is read from), or one line naming the setting
    that asked for Claude; call it before any work."""
    key = os.environ.get("ANTHROPIC_API_KEY", "").strip()
    if not key:
        raise R1InterpError(
            f"{setting} is 'claude' but ANTHROPIC_API_KEY is not set",
            hint=f"export ANTHROPIC_API_KEY=... (never put it in params.yaml), or use {setting}: {fallback}",
        )
    return key


class ClaudeClient:
    """Cached, rate-limited, retrying access to the Messages API (or the Message Batches API)."""

    def __init__(self, cfg: ClaudeParams, cache_dir: str | Path, *, api_key: str | None = None):
        key = require_api_key() if api_key is None else api_key
        if not key.strip():
            raise R1InterpError("an empty Anthropic API key was given")
        self.cfg = cfg
        self.cache_dir = Path(cache_dir)
        self.cache = ResponseCache(self.cache_dir)
        self.batches_path = self.cache_dir / "batches.json"
        # Waits (rate limits, retry-after, backoff) sleep on this event: Ctrl-C sets it, so worker threads
        # stop within moments instead of finishing a pause of up to max_retry_wait_s.
        self._stop = threading.Event()
        self.limiter = RateLimiter(cfg.requests_per_minute, cfg.tokens_per_minute, sleep=self._sleep_unless_stopped)
        # Base URL: the SDK reads ANTHROPIC_BASE_URL itself. Retries are ours (see module doc).
        self._sdk = anthropic.Anthropic(api_key=key.strip(), timeout=cfg.timeout_s, max_retries=0)
        self._secret = key.strip()
        self._sleep: Callable[[float], None] = self._sleep_unless_stopped
        self._rng = random.Random()
        self._stats_lock = threading.Lock()
        self._backoff_waited = 0.0
        self._counts = {"sent": 0, "cache_hits": 0, "retries": 0, "rate_limited": 0, "failures": 0}

    def __repr__(self) -> str:  # never show the key
        return f"ClaudeClient(cache_dir={str(self.cache_dir)!r}, use_batches={self.cfg.use_batches})"

    @property
    def stats(self) -> dict[str, float]:
        with self._stats_lock:
            out: dict[str, float] = dict(self._counts)
            out["waited_s"] = round(self.limiter.waited_s + self._backoff_waited, 3)
        return out

    def _count(self, name: str, n: int = 1) -> None:
        with self._stats_lock:
            self._counts[name] += n

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def _sleep_unless_stopped(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise _Stopped

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._sleep(seconds)
            with self._stats_lock:
                self._backoff_waited += seconds

    def _backoff_s(self, attempt: int) -> float:
        """Exponential backoff with jitter: base 0.5 s doubling, capped, then scaled by U(0.5, 1)."""
        return min(self.cfg.max_retry_wait_s, BACKOFF_BASE_S * 2**attempt) * self._rng.uniform(0.5, 1.0)

    # -- public -----------------------------------------------------------------------

    def complete_many(self, requests: list[LLMRequest], desc: str = "claude") -> dict[str, Completion]:
        """Answers for every request, keyed by `LLMRequest.key`; only uncached ones hit the network.

        Raises R1InterpError after all requests were tried if any failed; the answers that
        did arrive are already in the cache, so a re-run only sends the failed ones.
        """
        self._stop.clear()
        unique: dict[str, LLMRequest] = {}
        for req in requests:
            unique.setdefault(req.key, req)
        results: dict[str, Completion] = {}
        pending: list[LLMRequest] = []
        for key, req in unique.items():
            hit = self.cache.get(key)
            if hit is not None:
                results[key] = hit
            else:
                pending.append(req)
        self._count("cache_hits", len(results))
        if not pending:
            return results

        with tqdm(total=len(unique), initial=len(results), desc=desc, unit="req") as bar:
            if self.cfg.use_batches:
                errors = self._complete_batches(pending, results, bar)
            else:
                errors = self._complete_concurrently(pending, results, bar)

        if errors:
            first = self._scrub(errors[0])  # in request order, root causes before "not sent"
            raise R1InterpError(
                f"{len(errors)} of {len(unique)} Claude requests failed: {first}",
                hint=f"re-run: the {len(unique) - len(errors)} answers received are cached and will not be requested again",
            )
        return results

    # -- one request at a time, many threads -------------------------------------------

    def _complete_concurrently(self, pending: list[LLMRequest], results: dict[str, Completion], bar: Any) -> list[str]:
        failed: dict[str, _RequestFailed] = {}
        abort = threading.Event()  # set on 401/403: every other request would fail the same way
        pool = ThreadPoolExecutor(max_workers=self.cfg.concurrency, thread_name_prefix="claude")
        try:
            futures: dict[Future[Completion], LLMRequest] = {
                pool.submit(self._send_one, req, abort): req for req in pending
            }
            not_done: set[Future[Completion]] = set(futures)
            while not_done:
                done, not_done = wait(not_done, return_when=FIRST_COMPLETED)
                for fut in done:
                    try:
                        completion = fut.result()
                    except _RequestFailed as err:
                        failed[futures[fut].key] = err
                        self._count("failures")
                    else:
                        results[completion.key] = completion
                    bar.update(1)
        except BaseException:
            self._stop.set()  # Ctrl-C: wake every waiting thread now
            raise
        finally:
            # On Ctrl-C do not start the queued requests; answers already received are cached.
            pool.shutdown(wait=True, cancel_futures=True)
        ordered = [failed[req.key] for req in pending if req.key in failed]
        return [str(err) for err in sorted(ordered, key=lambda err: isinstance(err, _NotSent))]

    def _send_one(self, req: LLMRequest, abort: threading.Event) -> Completion:
        """Send one request, retrying transient failures; cache the answer as soon as it arrives."""
        params = req.params()
        attempt = 0
        while True:
            if abort.is_set():
                raise _NotSent("not sent: an earlier request was refused (authentication)")
            self.limiter.acquire(req.estimated_tokens())
            self._count("sent")
            wait_s: float | None = None
            try:
                raw = self._sdk.messages.with_raw_response.create(**params)
                self._respect_ratelimit_headers(raw.headers)
                message = raw.parse()
                text = _text_of(message)
            except anthropic.APIStatusError as err:
                if err.status_code not in RETRYABLE_STATUS:
                    if err.status_code in (401, 403):
                        abort.set()
                    raise _RequestFailed(_describe(err)) from None
                failure = err
                wait_s = _retry_after_s(err.response.headers)
                if err.status_code == 429:
                    self._count("rate_limited")
                    if wait_s is None:
                        wait_s = _ratelimit_reset_s(err.response.headers)
            except (anthropic.APIConnectionError, anthropic.APIResponseValidationError, ValueError, _Malformed) as err:
                # connection errors and timeouts (APITimeoutError), invalid JSON, no text block
                failure = err
            else:
                in_tok, out_tok = _usage(message)
                return self.cache.put(
                    req.key,
                    model=getattr(message, "model", None) or req.model,
                    text=text,
                    input_tokens=in_tok,
                    output_tokens=out_tok,
                )

            if attempt >= self.cfg.max_retries:
                tries = attempt + 1
                raise _RequestFailed(f"{_describe(failure)} (gave up after {tries} attempt{'s' if tries != 1 else ''})")
            if wait_s is not None:
                # The server said how long: hold every thread (capped), not just this one.
                self.limiter.pause_until(self.limiter.clock() + min(wait_s, self.cfg.max_retry_wait_s))
            else:
                self._wait(self._backoff_s(attempt))
            attempt += 1
            self._count("retries")
            log.info("retrying Claude request (%s), attempt %d", _describe(failure), attempt + 1)

    def _respect_ratelimit_headers(self, headers: Any) -> None:
        """Budget exhausted per the response headers: pause everyone until its reset (capped)."""
        wait_s = _ratelimit_reset_s(headers)
        if wait_s:
            self.limiter.pause_until(self.limiter.clock() + min(wait_s, self.cfg.max_retry_wait_s))

    # -- Message Batches -----------------------------------------------------------------

    def _load_batches(self) -> list[dict[str, Any]]:
        if not self.batches_path.exists():
            return []
        try:
            state = json.loads(self.batches_path.read_text())
            batches = state["batches"]
            assert isinstance(batches, list)
            return [b for b in batches if isinstance(b.get("id"), str) and isinstance(b.get("custom_ids"), dict)]
        except (ValueError, KeyError, TypeError, AssertionError):
            log.warning("%s is unreadable; its batches cannot be resumed", self.batches_path)
            return []

    def _save_batches(self, batches: list[dict[str, Any]]) -> None:
        write_json(self.batches_path, {"batches": batches})

    def _api_call(self, what: str, fn: Callable[[], Any], passthrough: tuple[int, ...] = ()) -> Any:
        """A batch control call (create/retrieve/results) with the same transient-error retries."""
        attempt = 0
        while True:
            try:
                return fn()
            except anthropic.APIStatusError as err:
                if err.status_code in passthrough:
                    raise
                if err.status_code not in RETRYABLE_STATUS or attempt >= self.cfg.max_retries:
                    raise R1InterpError(f"Claude batch {what} failed: {self._scrub(_describe(err))}") from None
                if err.status_code == 429:
                    self._count("rate_limited")
                wait_s = _retry_after_s(err.response.headers)
            except (anthropic.APIConnectionError, ValueError) as err:
                if attempt >= self.cfg.max_retries:
                    raise R1InterpError(f"Claude batch {what} failed: {self._scrub(_describe(err))}") from None
                wait_s = None
            self._wait(min(wait_s, self.cfg.max_retry_wait_s) if wait_s is not None else self._backoff_s(attempt))
            attempt += 1
            self._count("retries")

    def _complete_batches(self, pending: list[LLMRequest], results: dict[str, Completion], bar: Any) -> list[str]:
        by_cid = {req.custom_id: req for req in pending}
        batches = self._load_batches()
        # Resume: a persisted batch holding any of our requests is polled, not re-created.
        resumed = [b for b in batches if any(cid in by_cid for cid in b["custom_ids"])]
        in_flight = {cid for b in resumed for cid in b["custom_ids"]}
        todo = [req for req in pending if req.custom_id not in in_flight]
        attempts = {req.custom_id: 0 for req in pending}
        errors: dict[str, str] = {}
        active = list(resumed)
        if resumed:
            log.info("resuming %d Message Batch(es) from %s", len(resumed), self.batches_path)
        while True:
            active += self._create_batches(todo, batches)
            if not active:
                break
            retry: list[LLMRequest] = []
            for entry in active:
                for cid, outcome in self._collect_batch(entry, results, bar).items():
                    req = by_cid.get(cid)
                    if req is None:
                        continue  # someone else's request in a resumed batch: cached if it succeeded
                    if outcome is None:
                        errors.pop(cid, None)
                        continue
                    message, retryable = outcome
                    errors[cid] = message
                    if retryable and attempts[cid] < self.cfg.max_retries:
                        attempts[cid] += 1
                        retry.append(req)
                batches = [b for b in batches if b["id"] != entry["id"]]
                self._save_batches(batches)
            if retry:
                self._count("retries", len(retry))
            todo, active = retry, []
        return [errors[cid] for cid in by_cid if cid in errors]

    def _create_batches(self, todo: list[LLMRequest], batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Submit `todo` in chunks; each batch id is persisted right after creation, before any polling."""
        created = []
        for start in range(0, len(todo), BATCH_LIMIT):
            chunk = todo[start : start + BATCH_LIMIT]
            body = [{"custom_id": req.custom_id, "params": req.params()} for req in chunk]
            batch = self._api_call("create", lambda body=body: self._sdk.messages.batches.create(requests=body))
            self._count("sent", len(chunk))
            entry = {
                "id": batch.id,
                "created": round(time.time(), 3),
                "custom_ids": {req.custom_id: req.key for req in chunk},
            }
            batches.append(entry)
            self._save_batches(batches)
            created.append(entry)
            log.info("created Message Batch %s with %d requests", batch.id, len(chunk))
        return created

    def _collect_batch(
        self, entry: dict[str, Any], results: dict[str, Completion], bar: Any
    ) -> dict[str, tuple[str, bool] | None]:
        """Poll until the batch ended, cache its successes; custom_id -> None (ok) or (error, retryable)."""
        batch_id = entry["id"]
        while True:
            try:
                batch = self._api_call(
                    "retrieve", lambda: self._sdk.messages.batches.retrieve(batch_id), passthrough=(404,)
                )
            except anthropic.NotFoundError:
                # A persisted batch the API no longer knows (deleted, or results purged): resubmit its requests.
                log.warning("Message Batch %s was not found; its requests will be sent again", batch_id)
                return {cid: (f"batch {batch_id} not found", True) for cid in entry["custom_ids"]}
            if batch.processing_status == "ended":
                break
            self._sleep(self.cfg.batch_poll_s)
        outcomes: dict[str, tuple[str, bool] | None] = {}
        lines = self._api_call("results", lambda: list(self._sdk.messages.batches.results(batch_id)))
        for line in lines:
            cid = getattr(line, "custom_id", None)
            key = entry["custom_ids"].get(cid)
            if key is None:
                continue
            outcomes[cid] = self._batch_outcome(key, line.result, results)
            if outcomes[cid] is None:
                bar.update(1)
        for cid in entry["custom_ids"]:
            outcomes.setdefault(cid, ("missing from the batch results", True))
        return outcomes

    def _batch_outcome(self, key: str, result: Any, results: dict[str, Completion]) -> tuple[str, bool] | None:
        kind = getattr(result, "type", None)
        if kind == "succeeded":
            try:
                text = _text_of(result.message)
            except _Malformed as err:
                return str(err), True
            in_tok, out_tok = _usage(result.message)
            results[key] = self.cache.put(
                key,
                model=getattr(result.message, "model", "") or "",
                text=text,
                input_tokens=in_tok,
                output_tokens=out_tok,
            )
            return None
        if kind == "errored":
            error = getattr(getattr(result, "error", None), "error", None)
            etype = getattr(error, "type", None) or "error"
            return f"batch result {etype}: {getattr(error, 'message', '')}", etype not in FATAL_BATCH_ERRORS
        if kind == "expired":
            return "batch request expired before it was processed", True
        return f"batch request {kind}", False  # canceled: someone cancelled it on purpose
