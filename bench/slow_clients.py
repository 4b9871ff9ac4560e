"""``/health`` latency while 200 slow clients hold connections open, against the same without them.

    python -m bench.slow_clients [--clients 200] [--requests 300] [--skip-gthread]

Starts the real web process (gunicorn with handlers/gunicorn.conf.py, FILE_ONLY, 2 workers) and
measures ``GET /health`` one request at a time, each on a fresh connection: first with no other
client (the floor), then while ``--clients`` connections each hold a partial request (a request
line and one header, then nothing). A holder thread reopens any connection the server closes,
so the count stays at ``--clients`` for the whole measurement. Then the same against gunicorn's
stock ``gthread`` worker (main's configuration) with a 2 s timeout per request, to show what the
front fixed. Prints p50/p99 and the ratio to the floor; the last stdout line is a JSON summary.
"""

from __future__ import annotations

import argparse
import http.client
import json
import selectors
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.e2e.webserver import GUNICORN, WebServer, start_gunicorn

SLOW_HEAD = b"POST /run HTTP/1.1\r\nHost: runner\r\nContent-Type: application/json\r\n"
TIMEOUT_S = 2.0


def health_latencies(server: WebServer, count: int) -> tuple[list[float], int]:
    """``count`` sequential GET /health on fresh connections: latencies (s) and how many timed out."""
    port = int(server.base.rsplit(":", 1)[1])
    latencies, timeouts = [], 0
    for _ in range(count):
        started = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
        try:
            conn.request("GET", "/health")
            conn.getresponse().read()
        except (TimeoutError, OSError):
            timeouts += 1
        finally:
            conn.close()
        latencies.append(time.perf_counter() - started)
    return latencies, timeouts


@contextmanager
def slow_clients(server: WebServer, count: int) -> Iterator[dict[str, int]]:
    """Hold ``count`` partial requests open; reopen any the server closes. Yields live counters."""
    port = int(server.base.rsplit(":", 1)[1])
    stop = threading.Event()
    counters = {"opened": 0, "closed_by_server": 0}
    selector = selectors.DefaultSelector()

    def open_one() -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(SLOW_HEAD)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        counters["opened"] += 1

    def hold() -> None:
        while not stop.is_set():
            for key, _ in selector.select(timeout=0.1):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data or b"\r\n\r\n" in data:  # an answer (408) or a close: replace it
                    selector.unregister(sock)
                    sock.close()
                    counters["closed_by_server"] += 1
                    open_one()

    for _ in range(count):
        open_one()
    holder = threading.Thread(target=hold, name="slow-clients", daemon=True)
    holder.start()
    try:
        yield counters
    finally:
        stop.set()
        holder.join(timeout=5)
        for key in list(selector.get_map().values()):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            sock.close()


def summarize(latencies: list[float]) -> dict[str, float]:
    """p50 and p99 in milliseconds."""
    ordered = sorted(latencies)
    return {"p50_ms": round(statistics.median(ordered) * 1000, 2),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2)}


def measure(worker_class: str | None, clients: int, requests: int, tmp: Path) -> dict[str, Any]:
    """Floor and loaded /health latency for one worker class (None: the configured one)."""
    command = [str(GUNICORN), "-c", "handlers/gunicorn.conf.py"]
    if worker_class:
        command += ["--worker-class", worker_class]
    server = start_gunicorn(tmp, {"ENABLE_DATABASE_WRITES": "false", "LOG_LEVEL": "WARNING"},
                            command=[*command, "handlers.app:create_app()"])
    try:
        health_latencies(server, 20)  # warm-up: imports, first connections
        floor, floor_timeouts = health_latencies(server, requests)
        with slow_clients(server, clients) as counters:
            time.sleep(1.0)  # let every slow connection reach the workers
            loaded, loaded_timeouts = health_latencies(server, requests)
            held = dict(counters)
    finally:
        server.stop()
    result: dict[str, Any] = {"worker": worker_class or "configured (handlers.web_worker.FrontedThreadWorker)",
              "floor": {**summarize(floor), "timeouts": floor_timeouts},
              "with_slow_clients": {**summarize(loaded), "timeouts": loaded_timeouts},
              "slow_connections": held}
    result["p99_ratio"] = round(result["with_slow_clients"]["p99_ms"] / (result["floor"]["p99_ms"] or 1.0), 2)
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table, then a JSON summary line."""
    parser = argparse.ArgumentParser(prog="python -m bench.slow_clients", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--skip-gthread", action="store_true", help="do not measure the stock gthread worker")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(measure(None, args.clients, args.requests, Path(tmp) / "ours"))
        if not args.skip_gthread:
            # Stock gthread pins a thread per slow client: few requests, each may wait TIMEOUT_S.
            results.append(measure("gthread", args.clients, min(args.requests, 20), Path(tmp) / "gthread"))
    for r in results:
        floor, loaded = r["floor"], r["with_slow_clients"]
        print(f"{r['worker']}: floor p50 {floor['p50_ms']} ms p99 {floor['p99_ms']} ms; "
              f"with {args.clients} slow clients p50 {loaded['p50_ms']} ms "
              f"p99 {loaded['p99_ms']} ms, {loaded['timeouts']} timed out "
              f"(> {TIMEOUT_S:g} s); p99 ratio {r['p99_ratio']}x")
    print(json.dumps({"clients": args.clients, "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
