"""A small threaded TCP proxy that misbehaves on demand, in front of a PostgreSQL server.

    proxy = FaultProxy("127.0.0.1", 5432).start()
    url = proxy.url_for(database_url)        # same database, through the proxy
    proxy.latency(200)   # every chunk, each way, waits 200 ms
    proxy.blackhole()    # connections are accepted and kept, nothing is forwarded
    proxy.reset()        # new and existing connections get a TCP RST
    proxy.passthrough()  # healthy again
    proxy.close()

A stand-in for Toxiproxy: modes switch at runtime and apply to connections already open.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from urllib.parse import urlsplit

PASS, LATENCY, BLACKHOLE, RESET = "pass", "latency", "blackhole", "reset"
CHUNK = 65536
TICK = 0.1  # how often idle pump threads look at the mode and the stop flag


def _rst(sock: socket.socket) -> None:
    """Close ``sock`` with an RST instead of a FIN (SO_LINGER on, timeout 0)."""
    # Already closed by the other pump: closing again below is harmless.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class _Pair:
    """One proxied connection: the client's socket and ours to the server."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.lock = threading.Lock()
        self.closed = False

    def close(self, *, rst: bool = False) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            for sock in (self.client, self.upstream):
                if rst:
                    _rst(sock)
                else:
                    sock.close()


class FaultProxy:
    """TCP proxy on 127.0.0.1 (random port) with pass-through, latency, blackhole and reset modes."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.mode = PASS
        self.latency_ms = 0
        self.accepted = 0  # connections the proxy accepted, whatever it did with them
        self._pairs: set[_Pair] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, name="faultproxy-accept", daemon=True)

    @classmethod
    def in_front_of(cls, url: str) -> FaultProxy:
        """A proxy to the host and port of a PostgreSQL URL (not started)."""
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 5432)

    def start(self) -> FaultProxy:
        """Start accepting connections; returns self."""
        self._listener.listen(64)
        self._listener.settimeout(TICK)
        self._thread.start()
        return self

    def url_for(self, url: str) -> str:
        """``url`` rewritten to go through this proxy (user, database and query kept)."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        return parts._replace(netloc=netloc).geturl()

    # -- modes -----------------------------------------------------------------------------

    def passthrough(self) -> None:
        """Forward everything at once."""
        self._set(PASS)

    def latency(self, ms: int) -> None:
        """Delay every forwarded chunk, in both directions, by ``ms`` milliseconds."""
        self.latency_ms = ms
        self._set(LATENCY)

    def blackhole(self) -> None:
        """Accept and keep connections but forward nothing (a silent network partition)."""
        self._set(BLACKHOLE)

    def reset(self) -> None:
        """Send RST on every open connection, and on each new one until the mode changes."""
        self._set(RESET)
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            pair.close(rst=True)

    def _set(self, mode: str) -> None:
        with self._lock:
            self.mode = mode

    # -- plumbing --------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed by close()
            with self._lock:
                self.accepted += 1
                mode = self.mode
            if mode == RESET:
                _rst(client)
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _rst(client)  # the server is down: the client sees a refused/reset connection
                continue
            pair = _Pair(client, upstream)
            with self._lock:
                self._pairs.add(pair)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(pair, src, dst), daemon=True,
                                 name="faultproxy-pump").start()

    def _pump(self, pair: _Pair, src: socket.socket, dst: socket.socket) -> None:
        try:
            while not pair.closed and not self._stop.is_set():
                ready, _, _ = select.select([src], [], [], TICK)
                if not ready:
                    continue
                data = src.recv(CHUNK)
                if not data:
                    break
                mode = self.mode
                if mode == BLACKHOLE:
                    continue  # swallowed: the peer waits for an answer that never comes
                if mode == LATENCY:
                    time.sleep(self.latency_ms / 1000)
                dst.sendall(data)
        except (OSError, ValueError):
            pass  # the pair was reset or closed under us (ValueError: select on a closed fd)
        finally:
            pair.close()
            with self._lock:
                self._pairs.discard(pair)

    def close(self) -> None:
        """Stop the proxy and close every connection."""
        self._stop.set()
        self._listener.close()
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            pair.close()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
