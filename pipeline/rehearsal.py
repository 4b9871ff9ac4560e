"""A rehearsal of a run's document path, for a spare run process before its claim.

A run process forked from the dispatcher pays for the first fetch and the first input gate it
runs: every page of the fork server's heap that code touches is copied on its first write (a
reference count is a write), and the IDNA codec a host name needs loads on first use. In a
forked child of the dispatcher (2 cores), the first fetch of the 6.5 KB sample over the
loopback took 8–9 ms and about 1,700 page faults; the next fetch in the same process 1.3 ms and
25 faults. A spare (handlers/run_process.py) waits for its claim anyway, so it pays that first:
the bundled sample is served by a one-shot HTTP server on the loopback, then fetched, parsed and
gated by the same code as a run's document. Nothing is written anywhere, and the lines that code
logs at INFO or WARNING are held back (an operator's log shows runs, not rehearsals).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from config.settings import APP_DIR, Settings
from pipeline.document import Document
from pipeline.documents import parse_document
from pipeline.fetch import fetch_document

SAMPLE = APP_DIR / "data" / "samples" / "outdoor-gear-circularity.txt"
_SERVER_TIMEOUT_S = 10.0  # the loopback answers in microseconds; this only bounds a broken rehearsal


def rehearse_document_path(settings: Settings) -> Document:
    """Fetch, parse and gate the bundled sample exactly as a run would, from a loopback server.

    Raises what a run's own document loading raises (``RunnerError``, ``OSError``); the caller
    decides whether a failed rehearsal matters (a spare logs it and waits for its claim anyway).
    """
    body = SAMPLE.read_bytes()
    with _one_shot_server(body, "text/plain; charset=utf-8") as port:
        host = f"127.0.0.1:{port}"
        # Only this host, over plain HTTP, and never the blob token: the rehearsal talks to itself.
        local = replace(settings, blob_allowed_hosts=(host,), blob_allow_http=True, blob_read_write_token=None)
        with _quiet():
            return parse_document(fetch_document(local, f"http://{host}/{SAMPLE.name}"))


@contextmanager
def _one_shot_server(body: bytes, content_type: str) -> Iterator[int]:
    """A thread that answers one GET on 127.0.0.1 with ``body``; yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(_SERVER_TIMEOUT_S)
    head = (f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode("ascii")

    def answer_once() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:  # closed or timed out: the fetch never came, and the caller reports why
            return
        with conn:
            conn.settimeout(_SERVER_TIMEOUT_S)
            request = b""
            try:
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    request += chunk
                conn.sendall(head + body)
            except OSError:  # the client went away: its own error is the one that is raised
                return

    server = threading.Thread(target=answer_once, name="rehearsal-server", daemon=True)
    server.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        listener.close()
        server.join(_SERVER_TIMEOUT_S)


@contextmanager
def _quiet() -> Iterator[None]:
    """Hold back INFO and WARNING lines for the block; errors still reach the log."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)
