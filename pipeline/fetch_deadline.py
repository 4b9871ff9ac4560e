"""A fetch's one total deadline, enforced wherever its socket blocks: connect, headers or body.

urllib3's timeouts bound each socket operation, so a server that sends one byte just inside the
read timeout, in its status line, headers or body, could hold a run (and one of its slots)
forever. ``Deadline`` watches every connection the fetch opens; when the deadline passes, a timer
shuts the sockets down, the blocked read fails at once, and the fetcher reports the deadline
(``expired``) instead of whatever error or short read the shutdown caused.

The timer thread exists only during a fetch, inside a run process; the dispatcher, which forks,
never fetches.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from types import TracebackType
from typing import Any


class Deadline:
    """A monotonic deadline that can cut off the sockets of the connections it watches."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._fds: list[int] = []  # duplicates: shutdown reaches the socket even after TLS wraps it
        self._timer: threading.Timer | None = None

    def remaining(self) -> float:
        """Seconds left, never below zero."""
        return max(0.0, self.at - time.monotonic())

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down when the deadline passes (at once if it already has)."""
        with self._lock:
            fd = os.dup(sock.fileno())
            self._fds.append(fd)
            if self.expired:
                _shutdown(fd)
            elif self._timer is None:
                self._timer = threading.Timer(self.remaining(), self._expire)
                self._timer.daemon = True
                self._timer.start()

    def connection_class(self, base: type[Any]) -> type[Any]:
        """A subclass of urllib3's connection class ``base`` whose sockets this deadline watches."""
        deadline = self

        class Watched(base):
            def _new_conn(self) -> socket.socket:
                sock: socket.socket = super()._new_conn()
                deadline.watch(sock)
                return sock

        return Watched

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for fd in self._fds:
                _shutdown(fd)

    def __enter__(self) -> Deadline:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            for fd in self._fds:
                os.close(fd)
            self._fds.clear()


def _shutdown(fd: int) -> None:
    """Shut down the socket behind ``fd`` for both directions, leaving the descriptor open."""
    sock = socket.socket(fileno=fd)
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by the peer or by urllib3: nothing left to cut off
    finally:
        sock.detach()
