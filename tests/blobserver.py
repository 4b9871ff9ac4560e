"""A local stand-in for Vercel Blob: a threaded HTTP server on 127.0.0.1 with misbehaving routes.

    /files/<name>           a stored file (``add_file``) with its content type
    /gated/<name>           the same file, held until the test calls ``gate.set()``
    /redirect?to=<url>      302 to ``to`` (an internal address, another host, ...)
    /chain/<n>              n redirects in a row, then /files/doc.txt
    /slow?delay=<s>         waits, then a small text body
    /drip?every=<s>         a text body one byte at a time, ``every`` seconds apart
    /driphead?every=<s>     the status line and headers one byte at a time (a body never starts)
    /huge?size=<n>          Content-Length n, honestly sent
    /chunked?size=<n>       n bytes chunked, no Content-Length (a stream that hides its size)
    /status/<code>          that status (``Retry-After`` from ?retry_after=)
    /flaky/<key>?fail=<n>   503 for the first n requests of ``key``, then a text body

Every request's path and headers are kept in ``seen`` so tests can check what was sent.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Seen:
    """One request as the server saw it."""

    path: str
    headers: dict[str, str]


@dataclass
class BlobServer:
    """The running server; ``base`` is ``http://127.0.0.1:PORT``."""

    server: ThreadingHTTPServer
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    hits: Counter[str] = field(default_factory=Counter)
    gate: threading.Event = field(default_factory=threading.Event)

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self.server.server_address[1])

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, as BLOB_ALLOWED_HOSTS names it."""
        return f"127.0.0.1:{self.port}"

    @property
    def base(self) -> str:
        """The server's base URL."""
        return f"http://{self.host}"

    def url(self, path: str) -> str:
        """An absolute URL on this server."""
        return self.base + path

    def add_file(self, name: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Serve ``data`` at /files/<name>; returns its URL."""
        self.files[name] = (data, content_type)
        return self.url(f"/files/{name}")

    def close(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()


def _handler(state: BlobServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
            """Keep test output quiet."""

        def _send(self, status: int, body: bytes = b"", content_type: str = "text/plain",
                  headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            """Dispatch on the first path segment."""
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            state.seen.append(Seen(self.path, dict(self.headers.items())))
            kind, _, rest = parts.path.lstrip("/").partition("/")
            # A client that hangs up gave up on purpose (a cap or a timeout under test).
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                getattr(self, f"route_{kind}", self.route_missing)(rest, query)

        def route_missing(self, rest: str, query: dict[str, str]) -> None:
            self._send(404, b"not found")

        def route_files(self, rest: str, query: dict[str, str]) -> None:
            if rest not in state.files:
                self._send(404, b"no such file")
                return
            data, content_type = state.files[rest]
            self._send(200, data, content_type)

        def route_gated(self, rest: str, query: dict[str, str]) -> None:
            state.gate.wait(timeout=120)  # bounded: a forgotten gate must not hang the suite
            self.route_files(rest, query)

        def route_redirect(self, rest: str, query: dict[str, str]) -> None:
            self._send(int(query.get("status", "302")), headers={"Location": query["to"]})

        def route_chain(self, rest: str, query: dict[str, str]) -> None:
            left = int(rest or "0")
            target = f"/chain/{left - 1}" if left > 1 else "/files/doc.txt"
            self._send(302, headers={"Location": target})

        def route_slow(self, rest: str, query: dict[str, str]) -> None:
            time.sleep(float(query.get("delay", "2")))
            self._send(200, b"finally here", "text/plain")

        def route_drip(self, rest: str, query: dict[str, str]) -> None:
            every = float(query.get("every", "0.2"))
            body = b"a" * int(query.get("size", "50"))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for byte in body:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(every)

        def route_driphead(self, rest: str, query: dict[str, str]) -> None:
            every = float(query.get("every", "0.2"))
            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + b"X-Padding: " + b"p" * 200 + b"\r\n"
            for byte in head:  # never the blank line that ends the headers: the status never completes
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(every)
            self.close_connection = True

        def route_huge(self, rest: str, query: dict[str, str]) -> None:
            size = int(query.get("size", "1000000"))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            chunk = b"x" * 65536
            for start in range(0, size, len(chunk)):
                self.wfile.write(chunk[: min(len(chunk), size - start)])

        def route_chunked(self, rest: str, query: dict[str, str]) -> None:
            size = int(query.get("size", "1000000"))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"y" * 8192
            for start in range(0, size, len(chunk)):
                piece = chunk[: min(len(chunk), size - start)]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")

        def route_status(self, rest: str, query: dict[str, str]) -> None:
            headers = {"Retry-After": query["retry_after"]} if "retry_after" in query else {}
            self._send(int(rest), b"status", headers=headers)

        def route_flaky(self, rest: str, query: dict[str, str]) -> None:
            state.hits[rest] += 1
            if state.hits[rest] <= int(query.get("fail", "1")):
                self._send(503, b"try again", headers={"Retry-After": "0"})
            else:
                self._send(200, b"recovered text", "text/plain")

    return Handler


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up (timeouts, caps under test) is expected; anything else is printed."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


def start_blob_server() -> BlobServer:
    """Start a BlobServer on a free 127.0.0.1 port, serving from a daemon thread."""
    server = _QuietServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server.daemon_threads = True
    state = BlobServer(server)
    server.RequestHandlerClass = _handler(state)
    threading.Thread(target=server.serve_forever, name="blob-server", daemon=True).start()
    return state
