"""The web process's gunicorn worker: gthread, with each request read by the event loop first.

gunicorn's gthread worker hands a connection to a thread as soon as its first bytes arrive, and
the thread then blocks until the request head (and later the body) is complete. Fifteen clients
that sent ``POST /run HTTP/1.1`` and a header line and then nothing held every thread, and
/health went unanswered for over a minute.

``FrontedThreadWorker`` keeps gthread's threads and its keep-alive handling, but reads every
request on the worker's event loop, without blocking, until the head and a body of declared
length are buffered; only a complete request reaches a thread, which then never waits on the
client. Each request must arrive within WEB_READ_TIMEOUT_SECONDS (default 10) of its first byte
or of the connection; an idle or slow connection costs a file descriptor and a few bytes, never
a thread (bench/slow_clients.py measures /health with 200 of them held open).

Answers this front gives itself, and every error page gunicorn writes, are JSON like the app's:
``{"error": ..., "code": ...}`` (400, 408, 413, 431, and whatever else gunicorn refuses).
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

from config.log import get_logger
from handlers.request_scan import MAX_BODY_BYTES, RequestScan

log = get_logger("handlers.web_worker")

READ_TIMEOUT_ENV = "WEB_READ_TIMEOUT_SECONDS"
DEFAULT_READ_TIMEOUT_S = 10.0
RECV_BYTES = 64 * 1024
# After an error answer: how long and how much to keep reading (and discarding) so that closing
# with unread input does not send a reset that destroys the answer (RFC 9112 section 9.6).
LINGER_S = 2.0
LINGER_BYTES = 256 * 1024

REASONS = {400: "Bad Request", 408: "Request Timeout", 411: "Length Required", 413: "Request Entity Too Large",
           414: "Request-URI Too Long", 417: "Expectation Failed", 431: "Request Header Fields Too Large",
           500: "Internal Server Error", 501: "Not Implemented"}
ADVICE = {
    400: "the request is not valid HTTP/1.1: check the request line, the headers and Content-Length",
    408: "the request did not arrive in time: send the whole request at once",
    411: "send the request body with a Content-Length header (chunked bodies are not accepted)",
    413: f"the request body is larger than {MAX_BODY_BYTES:,} bytes",
    414: "the request line is too long",
    431: "the request headers are too large: send fewer or shorter headers",
    500: "internal server error",
}


@dataclass
class _Reading:
    """A request being buffered on the event loop."""

    deadline: float
    scan: RequestScan = field(default_factory=RequestScan)
    closing: bool = False  # answered and half-closed: reading only to let the answer arrive
    drained: int = 0  # bytes discarded while closing
    registered: bool = False  # on the poller (a request read at once never is)


def read_timeout() -> float:
    """WEB_READ_TIMEOUT_SECONDS, read at the edge like the rest of gunicorn.conf.py's settings."""
    raw = os.environ.get(READ_TIMEOUT_ENV, "").strip()
    try:
        value = float(raw) if raw else DEFAULT_READ_TIMEOUT_S
    except ValueError:
        value = DEFAULT_READ_TIMEOUT_S
    return value if value > 0 else DEFAULT_READ_TIMEOUT_S


def json_error(status: int, message: str | None = None) -> bytes:
    """A whole HTTP/1.1 answer with a JSON error body; the connection is closed after it."""
    reason = REASONS.get(status, "Error")
    body = json.dumps({"error": message or ADVICE.get(status, reason.lower()),
                       "code": reason.upper().replace("-", "_").replace(" ", "_")}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


class FrontedThreadWorker(ThreadWorker):
    """gthread whose threads only ever see complete, buffered requests (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_timeout = read_timeout()
        self.reading: dict[Any, _Reading] = {}

    def enqueue_req(self, conn: Any) -> None:
        """Start reading ``conn``'s next request on the event loop instead of in a thread."""
        held = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        state = _Reading(time.monotonic() + self.read_timeout)
        conn.sock.setblocking(False)
        verdict = state.scan.add(held) if held else None
        if verdict is not None:  # pipelined: the next request was already read with the last one
            self._finish(conn, state, verdict)
            return
        self.reading[conn] = state
        # A kept-alive connection comes here because it became readable, so its request is
        # usually all there: read it now, not after another turn of the event loop (and two
        # more epoll_ctl calls).
        self._on_readable(conn, conn.sock)
        if self.reading.get(conn) is state:
            self._watch(conn, state)

    def _watch(self, conn: Any, state: _Reading) -> None:
        """Read ``conn`` when it becomes readable."""
        state.registered = True
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    def _on_readable(self, conn: Any, sock: socket.socket) -> None:
        state = self.reading.get(conn)
        if state is None:
            return
        try:
            data = sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if state.closing:  # discard: only waiting for the client to read the answer and hang up
            state.drained += len(data)
            if not data or state.drained > LINGER_BYTES:
                self._forget(conn)
                self._close(conn)
            return
        if not data:  # the client went away
            self._forget(conn)
            self._close(conn)
            return
        verdict = state.scan.add(data)
        if verdict is not None:
            self._forget(conn)  # off the event loop before a thread may touch the socket
            self._finish(conn, state, verdict)

    def _finish(self, conn: Any, state: _Reading, verdict: int) -> None:
        """Hand a complete request to a thread (verdict 0), or answer one that cannot complete."""
        if verdict:
            self._refuse(conn, verdict)
            return
        if not conn.initialized:
            conn.init()  # the HTTP/1.1 parser over this socket; it reads nothing yet
        conn.sock.setblocking(True)
        conn.parser.unreader.unread(bytes(state.scan.data))
        conn.data_ready = True
        super().enqueue_req(conn)

    def _forget(self, conn: Any) -> None:
        state = self.reading.pop(conn, None)
        if state is not None and state.registered:
            with contextlib.suppress(KeyError, ValueError, OSError):  # closed meanwhile
                self.poller.unregister(conn.sock)

    def _refuse(self, conn: Any, status: int) -> None:
        """Answer ``status`` as JSON, half-close, and linger on the event loop until the client hangs up."""
        log.warning("request_refused", status=status, client=str(conn.client[0]) if conn.client else None,
                    reason=ADVICE.get(status))
        self._forget(conn)
        try:
            util.write_nonblock(conn.sock, json_error(status))
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:  # the client is gone or not reading: closing is all that is left
            self._close(conn)
            return
        state = self.reading[conn] = _Reading(time.monotonic() + LINGER_S, closing=True)
        self._watch(conn, state)

    def _close(self, conn: Any) -> None:
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        """gthread's pending-connection sweep, plus requests whose read deadline passed."""
        super().murder_pending()
        now = time.monotonic()
        for conn, state in list(self.reading.items()):
            if state.deadline > now:
                continue
            self._forget(conn)
            if state.scan.data and not state.closing:
                self._refuse(conn, 408)
            else:  # lingered long enough, or never spoke (a 408 could be taken as an answer)
                self._close(conn)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """gunicorn's error handling (status, logging, access log), answered as JSON instead of HTML."""
        capture = _Capture()
        super().handle_error(req, capture, addr, exc)
        status_line = capture.data.split(b"\r\n", 1)[0].split()
        status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 500
        try:
            util.write_nonblock(client, json_error(status))
        except OSError:
            log.debug("error_answer_not_sent", status=status)


class _Capture:
    """Stands in for the client socket while gunicorn writes its HTML error page, to learn the status."""

    def __init__(self) -> None:
        self.data = b""

    def gettimeout(self) -> float:
        """Non-blocking, so gunicorn writes straight through."""
        return 0.0

    def sendall(self, data: bytes) -> None:
        """Keep what gunicorn would have sent."""
        self.data += data
