"""A local stand-in for the frontend's callback endpoint: answers from a script, records every request.

    script = ["fail", "timeout", "ok"]   # 500, then hold the answer past the sender's timeout, then 204

Once the script runs out, every request gets the last behaviour. ``received`` keeps each
request's headers and body for the test to verify (signature, webhook-id, payload).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    """One request as the receiver saw it, and what it answered."""

    headers: dict[str, str]
    body: bytes
    answer: str


@dataclass
class CallbackReceiver:
    """The running receiver; ``url`` is what CALLBACK_URL should be."""

    server: ThreadingHTTPServer
    script: list[str]
    hold_seconds: float = 3.0
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT`` (for BLOB_ALLOWED_HOSTS)."""
        return f"127.0.0.1:{self.server.server_address[1]}"

    @property
    def url(self) -> str:
        """The callback URL."""
        return f"http://{self.host}/api/runner-callback"

    def close(self) -> None:
        """Stop serving."""
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def start_callback_receiver(script: list[str], *, hold_seconds: float = 3.0) -> CallbackReceiver:
    """Start a receiver on a free port that answers per ``script``."""
    receiver: CallbackReceiver

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
            return

        def do_POST(self) -> None:  # noqa: N802 - stdlib naming
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with receiver.lock:
                step = len(receiver.received)
                answer = receiver.script[min(step, len(receiver.script) - 1)]
                receiver.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body, answer))
            if answer == "timeout":
                receiver.release.wait(receiver.hold_seconds)  # longer than the sender waits
            status = 204 if answer == "ok" else 500
            try:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the sender gave up waiting, as the test intends

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = CallbackReceiver(server, list(script), hold_seconds)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver
