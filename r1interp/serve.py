"""`r1interp serve`: the static report site on http://127.0.0.1:PORT/ (stdlib only, local only).

Local only means more than the bind address: a web page the user visits elsewhere could point a host name of its
own at 127.0.0.1 (DNS rebinding) and read the site through the browser, so requests whose `Host` header is not the
address served (or `localhost` at its port) are refused; folders are never listed.
"""

from __future__ import annotations

import errno
import functools
import signal
import sys
import threading
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from r1interp import paths
from r1interp.errors import R1InterpError

DEFAULT_DIR = paths.SITE_DIR
HOST = "127.0.0.1"  # never 0.0.0.0: the site is for the person at this machine


class _Handler(SimpleHTTPRequestHandler):
    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".json": "application/json",
        ".svg": "image/svg+xml",
        ".wasm": "application/wasm",
    }

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        host = (self.headers.get("Host") or "").strip().lower()
        if host not in self.server.allowed_hosts:
            self.send_error(
                HTTPStatus.MISDIRECTED_REQUEST,
                "unknown Host",
                f"this server answers only to {', '.join(sorted(self.server.allowed_hosts))}",
            )
            return False
        return True

    def list_directory(self, path):  # noqa: ARG002 (stdlib signature)
        self.send_error(HTTPStatus.NOT_FOUND, "no index.html here (folders are not listed)")
        return None

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-cache")  # the site is rebuilt in place by `dvc repro`
        super().end_headers()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (stdlib signature)
        if not getattr(self.server, "quiet", False):
            super().log_message(format, *args)


def make_server(
    directory: str | Path = DEFAULT_DIR, port: int = 8000, host: str = HOST, quiet: bool = False
) -> ThreadingHTTPServer:
    """A server bound to host:port serving `directory` (port 0 picks a free one); errors as R1InterpError."""
    directory = Path(directory)
    if not directory.is_dir():
        raise R1InterpError(
            f"{directory}: no such directory (the report site is not built)",
            hint="build it with `dvc repro report`, or point --dir at a built site",
        )
    handler = functools.partial(_Handler, directory=str(directory.resolve()))
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise R1InterpError(
                f"port {port} on {host} is already in use",
                hint=f"pick another with --port {port + 1 if port else 8001}, or --port 0 for a free one",
            ) from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise R1InterpError(
                f"not allowed to listen on port {port}", hint="use a port above 1023, or --port 0"
            ) from None
        raise
    server.daemon_threads = True
    server.quiet = quiet
    server.allowed_hosts = allowed_hosts(server)
    return server


def allowed_hosts(server: ThreadingHTTPServer) -> frozenset[str]:
    """The `Host` values a browser sends for this server: its address or `localhost`, with the port."""
    host, port = server.server_address[:2]
    names = {host, "localhost"} | ({"[::1]"} if host == "::1" else set())
    return frozenset(f"{name}:{port}" for name in names)


def url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/"


def run(args) -> int:
    server = make_server(args.dir, args.port, quiet=args.quiet)
    directory = Path(args.dir)
    if not (directory / "index.html").is_file():
        print(
            f"warning: {directory / 'index.html'} is missing; only direct file paths are served (folders are "
            "never listed)",
            file=sys.stderr,
        )
    # A process started in the background by a non-interactive shell inherits SIGINT as ignored, and Python then
    # never raises KeyboardInterrupt: restore it (and treat SIGTERM the same) so Ctrl-C / kill always stop cleanly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    print(f"serving {directory} at {url(server)}  (Ctrl-C to stop)", flush=True)
    thread = threading.Thread(target=server.serve_forever, name="r1interp-serve", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.shutdown()
        server.server_close()
    return 0
