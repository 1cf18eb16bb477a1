"""A real, local Anthropic Messages-API server for tests (imported by tests, not collected).

It speaks enough of the HTTP API for the real `anthropic` SDK to talk to it unmodified:
`POST /v1/messages`, `POST /v1/messages/batches`, `GET /v1/messages/batches/{id}` and
`GET /v1/messages/batches/{id}/results` (JSONL). Tests drive failure modes through
`faults` (a FIFO applied to the next message requests) and observe the traffic through
`log`, `delivered` and `batches`, so every assertion is about what really went over the wire.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TIMED_OUT = 0  # `log` status of a "timeout" fault: answered (late, never counted as delivered) after timeout_sleep_s
FAULTS = ("429", "429-ms", "429-long", "529", "500", "503", "timeout", "malformed", "empty", "400", "401")


def default_responder(request: dict) -> str:
    """A short, realistic labeler answer; the last line is what a parser would extract."""
    return (
        "Looking at the highlighted tokens, the feature fires on the second digit of each\n"
        "number when the sum carries into the next column.\n"
        "[EXPLANATION]: digits in the tens column"
    )


def prompt_of(request: dict) -> str:
    """The text of the (single) user message; content may be a string or a list of blocks."""
    messages = request.get("messages") or [{}]
    content = messages[-1].get("content", "")
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return str(content)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).isoformat().replace("+00:00", "Z")


def _error_body(kind: str, message: str) -> dict:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": f"req_{uuid.uuid4().hex[:20]}"}


class MessagesServer:
    """`ThreadingHTTPServer` on 127.0.0.1 (free port) in a daemon thread; use as a context manager."""

    def __init__(
        self,
        responder: Callable[[dict], str] = default_responder,
        *,
        api_key: str = "sk-ant-test-key",
        batch_polls_before_end: int = 1,
    ):
        self.responder = responder
        self.api_key = api_key
        self.batch_polls_before_end = batch_polls_before_end
        self.faults: list[str] = []  # FIFO, applied to the next POST /v1/messages
        self.batch_errors: list[str] = []  # FIFO per batch result line: "errored", "invalid", "expired"
        self.timeout_sleep_s = 2.0
        self.delay_s = 0.0  # extra latency of every message response (concurrency tests)
        self.requests_remaining = 1000  # anthropic-ratelimit-requests-remaining
        self.tokens_remaining = 100_000  # anthropic-ratelimit-{,input-,output-}tokens-remaining
        self.reset_in_s = 60.0
        self.max_delivered: int | None = None
        self.hold = threading.Event()
        self.log: list[tuple[str, str | None, int]] = []
        self.delivered: Counter[str] = Counter()
        self.in_flight = 0  # message requests being answered right now
        self.max_in_flight = 0
        self.headers_seen: list[dict[str, str]] = []
        self.bodies_seen: list[dict] = []
        self.batches: dict[str, dict] = {}
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="messages-server", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> MessagesServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MessagesServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- book-keeping helpers for tests -------------------------------------------------

    def message_requests(self) -> list[tuple[str, str | None, int]]:
        return [entry for entry in self.log if entry[0] == "/v1/messages"]

    def record(self, path: str, prompt: str | None, status: int) -> None:
        with self._lock:
            self.log.append((path, sha(prompt) if prompt is not None else None, status))

    def wait_while_held(self) -> None:
        """Block (without answering) while `hold` is set or `max_delivered` was reached."""
        while not self._stopping.is_set():
            with self._lock:
                capped = self.max_delivered is not None and sum(self.delivered.values()) >= self.max_delivered
            if not self.hold.is_set() and not capped:
                return
            self._stopping.wait(0.02)

    def message(self, request: dict, text: str | None = None) -> dict:
        """A full Message object as the API returns it."""
        prompt = prompt_of(request)
        text = self.responder(request) if text is None else text
        return {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": request.get("model", "claude-test"),
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": max(1, (len(prompt) + len(str(request.get("system") or ""))) // 4),
                "output_tokens": max(1, len(text) // 4),
            },
        }

    def ratelimit_headers(self) -> dict[str, str]:
        reset = _rfc3339(time.time() + self.reset_in_s)
        headers = {
            "anthropic-ratelimit-requests-limit": "1000",
            "anthropic-ratelimit-requests-remaining": str(self.requests_remaining),
            "anthropic-ratelimit-requests-reset": reset,
        }
        for family in ("tokens", "input-tokens", "output-tokens"):
            headers[f"anthropic-ratelimit-{family}-limit"] = "100000"
            headers[f"anthropic-ratelimit-{family}-remaining"] = str(self.tokens_remaining)
            headers[f"anthropic-ratelimit-{family}-reset"] = reset
        return headers

    def batch_object(self, batch: dict) -> dict:
        ended = batch["polls"] > self.batch_polls_before_end
        if ended and batch["results"] is None:
            batch["results"] = [self._batch_result(r) for r in batch["requests"]]
            batch["ended_at"] = time.time()
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if ended:
            for line in batch["results"]:
                counts[line["result"]["type"]] += 1
        else:
            counts["processing"] = len(batch["requests"])
        return {
            "id": batch["id"],
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": counts,
            "created_at": _rfc3339(batch["created_at"]),
            "expires_at": _rfc3339(batch["created_at"] + 86400),
            "ended_at": _rfc3339(batch["ended_at"]) if ended else None,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"{self.url}/v1/messages/batches/{batch['id']}/results" if ended else None,
        }

    def _batch_result(self, request: dict) -> dict:
        with self._lock:
            kind = self.batch_errors.pop(0) if self.batch_errors else "succeeded"
        if kind == "succeeded":
            result = {"type": "succeeded", "message": self.message(request["params"])}
        elif kind == "expired":
            result = {"type": "expired"}
        else:
            error = (
                ("invalid_request_error", "prompt is too long")
                if kind == "invalid"
                else ("api_error", "Internal server error")
            )
            result = {"type": "errored", "error": _error_body(*error)}
        return {"custom_id": request["custom_id"], "result": result}


def _handler_for(server: MessagesServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like the real API: the SDK pools connections

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr access log
            pass

        # -- plumbing ---------------------------------------------------------------

        def _send(
            self, status: int, body: bytes, headers: dict[str, str] | None = None, ctype: str = "application/json"
        ) -> bool:
            """Write a whole response; False when the client had already gone."""
            try:
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(body)))
                self.send_header("request-id", f"req_{uuid.uuid4().hex[:20]}")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                return True
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
                return False

        def _json(self, status: int, obj: object, headers: dict[str, str] | None = None) -> bool:
            return self._send(status, json.dumps(obj).encode(), headers)

        def _read_json(self) -> dict:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            return json.loads(raw or b"{}")

        def _authorized(self) -> bool:
            with server._lock:
                server.headers_seen.append({k.lower(): v for k, v in self.headers.items()})
            auth = self.headers.get("authorization", "")
            return auth == f"Bearer {server.api_key}" or self.headers.get("x-api-key") == server.api_key

        def _unauthorized(self, path: str, prompt: str | None) -> None:
            server.record(path, prompt, 401)
            self._json(401, _error_body("authentication_error", "invalid x-api-key"))

        # -- routes -----------------------------------------------------------------

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?")[0]
            body = self._read_json()
            if path == "/v1/messages":
                self._messages(body)
            elif path == "/v1/messages/batches":
                self._create_batch(body)
            else:
                server.record(path, None, 404)
                self._json(404, _error_body("not_found_error", f"no route {path}"))

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?")[0]
            parts = path.strip("/").split("/")
            if not self._authorized():
                return self._unauthorized(path, None)
            if parts[:3] == ["v1", "messages", "batches"] and len(parts) in (4, 5):
                with server._lock:
                    batch = server.batches.get(parts[3])
                if batch is None:
                    server.record(path, None, 404)
                    return self._json(404, _error_body("not_found_error", f"batch {parts[3]} not found"))
                if len(parts) == 4:
                    with server._lock:
                        batch["polls"] += 1
                        obj = server.batch_object(batch)
                    server.record(path, None, 200)
                    return self._json(200, obj)
                if parts[4] == "results" and batch["results"] is not None:
                    lines = list(batch["results"])
                    random.shuffle(lines)
                    server.record(path, None, 200)
                    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
                    return self._send(200, data, ctype="application/binary")
            server.record(path, None, 404)
            self._json(404, _error_body("not_found_error", f"no route {path}"))

        def _messages(self, body: dict) -> None:
            path, prompt = "/v1/messages", prompt_of(body)
            with server._lock:
                server.bodies_seen.append(body)
            if not self._authorized():
                return self._unauthorized(path, prompt)
            server.wait_while_held()
            if server._stopping.is_set():
                self.close_connection = True
                return
            with server._lock:
                fault = server.faults.pop(0) if server.faults else None
            if fault is not None:
                return self._fault(fault, body, prompt)
            with server._lock:
                server.in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server.in_flight)
            try:
                if server.delay_s:
                    server._stopping.wait(server.delay_s)
                message = server.message(body)
                if self._json(200, message, server.ratelimit_headers()):
                    with server._lock:
                        server.delivered[prompt] += 1
                server.record(path, prompt, 200)
            finally:
                with server._lock:
                    server.in_flight -= 1

        def _fault(self, fault: str, body: dict, prompt: str) -> None:
            path = "/v1/messages"
            if fault in ("429", "429-ms", "429-long"):
                retry = {
                    "429": {"retry-after": "1"},
                    "429-ms": {"retry-after-ms": "200"},
                    "429-long": {"retry-after": "3600"},
                }[fault]
                server.record(path, prompt, 429)
                self._json(
                    429, _error_body("rate_limit_error", "Number of requests has exceeded your rate limit"), retry
                )
            elif fault == "529":
                server.record(path, prompt, 529)
                self._json(529, _error_body("overloaded_error", "Overloaded"))
            elif fault in ("500", "503"):
                server.record(path, prompt, int(fault))
                self._json(int(fault), _error_body("api_error", "Internal server error"))
            elif fault == "400":
                server.record(path, prompt, 400)
                self._json(
                    400,
                    _error_body(
                        "invalid_request_error", "messages: prompt is too long: 250000 tokens > 200000 maximum"
                    ),
                )
            elif fault == "401":
                self._unauthorized(path, prompt)
            elif fault == "timeout":
                server.record(path, prompt, TIMED_OUT)  # logged on arrival: the client gives up before the answer
                server._stopping.wait(server.timeout_sleep_s)
                self._json(200, server.message(body), server.ratelimit_headers())
            elif fault == "malformed":
                server.record(path, prompt, 200)
                text = json.dumps(server.message(body))
                self._send(200, text[: len(text) // 2].encode())
            elif fault == "empty":
                server.record(path, prompt, 200)
                message = server.message(body)
                message["content"] = []
                self._json(200, message, server.ratelimit_headers())
            else:
                raise ValueError(f"unknown fault {fault!r}; known: {FAULTS}")

        def _create_batch(self, body: dict) -> None:
            path = "/v1/messages/batches"
            if not self._authorized():
                return self._unauthorized(path, None)
            requests = body.get("requests") or []
            ids = [r.get("custom_id", "") for r in requests]
            if not requests or len(set(ids)) != len(ids) or len(requests) > 100_000:
                server.record(path, None, 400)
                return self._json(400, _error_body("invalid_request_error", "requests: custom_id must be unique"))
            batch_id = f"msgbatch_{uuid.uuid4().hex[:24]}"
            batch = {
                "id": batch_id,
                "requests": requests,
                "polls": 0,
                "created_at": time.time(),
                "ended_at": None,
                "results": None,
            }
            with server._lock:
                server.batches[batch_id] = batch
                obj = server.batch_object(batch)
            server.record(path, None, 200)
            self._json(200, obj)

    return Handler
