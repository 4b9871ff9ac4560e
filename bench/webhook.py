"""Benchmark ``POST /run`` on the real gunicorn against a floor measured in the same run.

Run from the repository root:
``python -m bench.webhook [--requests 3000] [--rounds 3] [--client auto|wrk|python] [--profile] [--quick]``

Three servers, taking turns for ``--rounds`` rounds, each with the same load (``--requests``
signed webhooks, each with a new run_id, over ``--concurrency`` keep-alive connections, after an
unmeasured warm-up). Figures are medians over the rounds; each ratio is ours over the floor of
the same round (the median of those is reported):

* floor: bench/floor_app.py (Flask, one pooled INSERT of the same row into the same table, in a
  throwaway migrated database of its own) on gunicorn gthread, 2 workers, 8 threads;
* ours in FILE_ONLY, and ours in DATABASE_ONLY on a throwaway migrated database: gunicorn with
  handlers/gunicorn.conf.py (gthread, WEB_CONCURRENCY=2, 8 threads), whose master starts the
  run dispatcher as in production.

Every run's ``blob_url`` is the local blob server's ``/gated/`` route, whose gate stays shut:
the dispatcher forks its MAX_CONCURRENT_RUNS (2) children, each waits on its fetch, and every
other run stays QUEUED. So the dispatcher works (it reads every wake-up datagram) but no stage
burns CPU beside the web workers.

The load generator is wrk (``apt-get install wrk``) when it is on PATH, else a Python asyncio
client with raw keep-alive sockets (``--client python``); both send the same pre-signed bytes.
``--profile`` then runs ours again under cProfile inside each worker thread (the env-guarded
``profiled_app`` below, never used for the timed figures) and prints where a request's time goes.

Prints a table, then one JSON object on the last line. Servers, the dispatcher (and any
standby) and the databases (``bench_*``) are removed even on error.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import cProfile
import json
import os
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, redirect_stdout, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike
    from flask import Flask

    from tests.e2e.webserver import WebServer

REPO = Path(__file__).resolve().parent.parent
PROFILE_ENV = "BENCH_PROFILE_DIR"
PROFILE_CLOCK_ENV = "BENCH_PROFILE_CLOCK"  # "wall" (waits included) or "cpu" (this thread's CPU time)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
API_TOKEN = "bench-status-token"
DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
WORKERS = 2  # gunicorn workers of every server: FLOOR_CONF's, and WEB_CONCURRENCY's default for ours
READY_MARKS = ("web_app_ready", "floor_app_ready")  # one line per worker that has loaded its app
# The floor's gunicorn settings: what handlers/gunicorn.conf.py sets, minus our logger and hooks.
FLOOR_CONF = """\
import os
bind = ["[::]:" + os.environ["PORT"]]
worker_class = "gthread"
workers = 2
threads = 8
timeout = 30
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
control_socket_disable = True
"""


@dataclass
class Load:
    """What one load run measured."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non_202: int
    client_cpu_s: float

    @property
    def rps(self) -> float:
        """Requests per second over the whole run."""
        return self.requests / self.seconds


# -- requests ---------------------------------------------------------------------------------


def signed_requests(count: int, prefix: str, blob_url: str) -> list[bytes]:
    """``count`` raw HTTP/1.1 POST /run requests, each signed, each with a new run_id."""
    from handlers.webhook_signature import signed_headers

    out = []
    for _ in range(count):
        run_id = f"{prefix}-{uuid.uuid4().hex[:16]}"
        body = json.dumps({"run_id": run_id, "blob_url": blob_url, "company_id": "decathlon",
                           "user_id": "bench_user"}).encode()
        headers = {"Host": "127.0.0.1", "Content-Type": "application/json", "Content-Length": str(len(body)),
                   **signed_headers(WEBHOOK_SECRET, body, msg_id=f"msg_{run_id}")}
        head = "POST /run HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        out.append(head.encode() + body)
    return out


# -- load generators --------------------------------------------------------------------------


async def _client_loop(port: int, queue: Iterator[bytes], latencies: list[float], statuses: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for raw in queue:
            start = time.perf_counter()
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            await reader.readexactly(int(fields.get("content-length", "0")))
            latencies.append(time.perf_counter() - start)
            statuses.append(int(lines[0].split()[1]))
            if fields.get("connection", "").lower() == "close":
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


def python_load(port: int, requests: list[bytes], concurrency: int) -> Load:
    """Send ``requests`` over ``concurrency`` keep-alive connections from one asyncio loop."""
    latencies: list[float] = []
    statuses: list[int] = []
    queue = iter(requests)  # one loop, one thread: coroutines share the iterator safely

    async def run() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(_client_loop(port, queue, latencies, statuses) for _ in range(concurrency)))
        return time.perf_counter() - start

    cpu = time.process_time()
    seconds = asyncio.run(run())
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return Load(len(latencies), seconds, cuts[49] * 1000, cuts[98] * 1000,
                sum(1 for s in statuses if s != 202), time.process_time() - cpu)


WRK_SCRIPT = """\
local ffi = require("ffi")
ffi.cdef[[ typedef struct { long tv_sec; long tv_nsec; } bench_ts; int clock_gettime(int, bench_ts *); ]]
local ts = ffi.new("bench_ts")
local function now() ffi.C.clock_gettime(1, ts); return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9 end
local sent, got, bad, first = 0, 0, 0, nil
function request()
  if first == nil then first = now() end
  sent = sent + 1
  return all[math.min(sent, #all)]
end
function response(status, headers, body)
  got = got + 1
  if status ~= 202 then bad = bad + 1 end
  if got == quota then
    io.write(string.format("BENCH_DONE %.6f %.6f %d\\n", first, now(), bad)); io.flush()
    wrk.thread:stop()
  end
end
function done(summary, latency, requests)
  io.write(string.format("BENCH_SUMMARY %d %d %d\\n", summary.requests, latency:percentile(50),
                         latency:percentile(99)))
end
"""


def wrk_load(port: int, requests: list[bytes], concurrency: int, tmp: Path) -> Load:
    """Send the first ``len(requests) - concurrency`` requests with wrk (one thread); the rest are padding."""
    quota = len(requests) - concurrency  # padding: connections still in flight at the stop send new ids too
    script = tmp / "wrk-requests.lua"
    listed = ",\n".join(json.dumps(raw.decode()) for raw in requests)
    script.write_text(f"all = {{\n{listed}\n}}\nquota = {quota}\n" + WRK_SCRIPT)
    before = os.times()
    limit = max(60, quota // 20)  # a bound, not the plan: the script stops wrk at the quota
    process = subprocess.Popen(["wrk", "-t1", f"-c{concurrency}", f"-d{limit}s", "--timeout", "10s", "-s", str(script),
                                f"http://127.0.0.1:{port}/run"], stdout=subprocess.PIPE, text=True)
    done = summary = None
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("BENCH_DONE"):
                done = line.split()[1:]
                process.send_signal(signal.SIGINT)  # wrk waits out -d otherwise
            elif line.startswith("BENCH_SUMMARY"):
                summary = line.split()[1:]
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if done is None or summary is None:
        raise RuntimeError(f"wrk ended before {quota} answers (exit {process.returncode}): socket errors or timeouts")
    first, last, bad = done
    count, p50_us, p99_us = summary
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    # Throughput over the first ``quota`` answers; wrk's percentiles may include the few answers
    # its event loop handled in the same turn as the stop (``count`` of them in all).
    assert int(count) >= quota, f"wrk counted {count} answers, fewer than {quota}"
    return Load(quota, float(last) - float(first), int(p50_us) / 1000, int(p99_us) / 1000, int(bad), cpu)


# -- servers and databases --------------------------------------------------------------------


@contextmanager
def database(server_url: str, name: str, setup: Callable[[str], object]) -> Iterator[str]:
    """A fresh database ``name`` (bench_*) prepared by ``setup(url)`` (its result unused), dropped on the way out."""
    import psycopg
    from psycopg import sql

    url = urlsplit(server_url)._replace(path="/" + name).geturl()
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        setup(url)
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def wait_for_dispatcher(server: WebServer, seconds: float = 30) -> None:
    """Wait until the dispatcher the master started listens: a webhook before that starts another."""
    deadline = time.monotonic() + seconds
    while not any(line.get("message") == "dispatcher_started" for line in server.log_lines()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no dispatcher_started line within {seconds:g} s")
        time.sleep(0.05)


def wait_for_workers(server: WebServer, count: int = WORKERS, seconds: float = 60) -> None:
    """Wait until each of the ``count`` workers has loaded its app (its ready line is in the log).

    A kept-alive connection stays with the worker that accepted it: a load started while one
    worker still loaded ran on the other alone, at half the throughput. The first worker answers
    /health (all start_gunicorn waits for) up to a second before the second one has loaded ours.
    """
    deadline = time.monotonic() + seconds
    while sum(server.log_path.read_text().count(mark) for mark in READY_MARKS) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"fewer than {count} workers loaded the app within {seconds:g} s")
        time.sleep(0.05)


def dispatcher_pids(output_dir: Path) -> list[int]:
    """Every ``python -m handlers.dispatcher`` whose OUTPUT_DIR is ``output_dir``: the live one and standbys."""
    wanted = f"OUTPUT_DIR={output_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if b"handlers.dispatcher" in (entry / "cmdline").read_bytes() and \
                    wanted in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return found


def stop_server(server: WebServer) -> None:
    """Stop a tests.e2e.webserver.WebServer, then kill every dispatcher of its OUTPUT_DIR, by pid.

    Beyond the pid file (tests/e2e/test_dispatch.py ``_stop_dispatcher``): a standby dispatcher
    blocked on the host lock outlives gunicorn, so each one is found in /proc and killed.
    """
    if server.process.poll() is None:
        server.stop()
    output_dir = server.env.get("OUTPUT_DIR")
    for pid in dispatcher_pids(Path(output_dir)) if output_dir else ():
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def ours_env(blob_host: str, output_dir: Path, database_url: str | None) -> dict[str, str]:
    """Our server's environment: FILE_ONLY, or DATABASE_ONLY when ``database_url`` is given."""
    env = {"WEBHOOK_SECRET": WEBHOOK_SECRET, "API_TOKEN": API_TOKEN, "PIPELINE_ENGINE": "offline",
           "BLOB_ALLOWED_HOSTS": blob_host, "BLOB_ALLOW_HTTP": "true", "OUTPUT_DIR": str(output_dir),
           "ENABLE_DATABASE_WRITES": "false"}
    if database_url:
        env.update(ENABLE_DATABASE_WRITES="true", ENABLE_FILE_FALLBACK="false", DATABASE_URL=database_url)
    return env


def children(pid: int) -> list[int]:
    """The child processes of ``pid``: gunicorn's workers and the dispatcher, for the master."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU seconds used so far by ``pids`` (those still alive)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / CLOCK_TICKS


def machine_busy() -> tuple[int, int]:
    """Busy and total jiffies of every CPU since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, sum(values)


# -- the profile hook (bench only) ------------------------------------------------------------


def profiled_app() -> Flask:
    """``create_app()``; with BENCH_PROFILE_DIR set, every gunicorn worker thread is also profiled.

    Used as ``gunicorn -c handlers/gunicorn.conf.py "bench.webhook:profiled_app()"``: each
    ``ThreadWorker.handle`` call (parse, app, access log, for one request) runs under a cProfile
    of its own thread; the profiles are written to the folder when the worker exits.
    """
    from handlers.app import create_app

    app = create_app()
    directory = os.environ.get(PROFILE_ENV)
    if directory:  # unset in every timed run: the profiler would distort what it measures
        _profile_worker_threads(Path(directory))
    return app


def _profile_worker_threads(directory: Path) -> None:
    from gunicorn.workers import gthread

    profiles: dict[int, cProfile.Profile] = {}
    timer = time.thread_time if os.environ.get(PROFILE_CLOCK_ENV) == "cpu" else time.perf_counter
    original = gthread.ThreadWorker.handle

    def handle(self: object, conn: object) -> object:
        profile = profiles.get(threading.get_ident())
        if profile is None:
            profile = profiles[threading.get_ident()] = cProfile.Profile(timer)
        profile.enable()
        try:
            return original(self, conn)
        finally:
            profile.disable()

    def dump() -> None:
        for ident, profile in profiles.items():
            profile.dump_stats(str(directory / f"worker-{os.getpid()}-{ident}.prof"))

    gthread.ThreadWorker.handle = handle
    atexit.register(dump)


AREAS = (("handlers/", "handlers"), ("persistence/", "persistence"), ("config/", "config"),
         ("pipeline/", "pipeline"), ("/flask/", "flask"), ("/werkzeug/", "werkzeug"), ("/gunicorn/", "gunicorn"),
         ("/structlog/", "structlog"), ("/logging/", "logging"), ("/psycopg", "psycopg"), ("/json/", "json"))


def _area(filename: str, name: str) -> str:
    if filename == "~":
        return f"builtin {name.strip('<>').split(' of ')[0].removeprefix('built-in method ')}"
    return next((area for marker, area in AREAS if marker in filename), "other python")


def summarise_profile(directory: Path, requests: int, top: int = 15) -> dict[str, object]:
    """Per-request milliseconds: in total, by area (own time), and the costliest of our functions."""
    files = sorted(directory.glob("*.prof"))
    stats = pstats.Stats(*map(str, files))
    raw = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in raw.values())
    areas: dict[str, float] = defaultdict(float)
    for (filename, _, name), (_, _, tt, _, _) in raw.items():
        areas[_area(filename, name)] += tt
    ours = [(ct, f"{Path(f).relative_to(REPO)}:{line} {name}") for (f, line, name), (_, _, _, ct, _) in raw.items()
            if f.startswith(str(REPO)) and "/.venv/" not in f]
    per = 1000 / requests
    return {"ms_per_request": round(total * per, 3),
            "own_ms_by_area": {k: round(v * per, 3) for k, v in sorted(areas.items(), key=lambda kv: -kv[1])[:top]},
            "cumulative_ms_ours": {name: round(ct * per, 3) for ct, name in sorted(ours, reverse=True)[:top]}}


def _timed(fn: Callable[[int], object], n: int) -> tuple[float, float]:
    """Mean wall and CPU microseconds of ``fn(i)`` over ``n`` calls, in this thread."""
    wall, cpu = time.perf_counter(), time.thread_time()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - wall) / n * 1e6, (time.thread_time() - cpu) / n * 1e6


def step_costs(mode: str, database_url: str | None, floor_url: str, blob_url: str, tmp: Path,
               n: int = 300) -> tuple[dict[str, tuple[float, float]], int]:
    """The request path taken apart in-process, one thread, no contention: (wall, CPU) us per step.

    Also returns how many fsync calls one ``store.create_run`` makes.

    The full request goes through Flask's test client, for ours and for the floor alike (so the
    test client's own cost cancels out of the comparison); logging is rendered to /dev/null.
    """
    from bench import floor_app
    from config.log import configure_logging, get_logger
    from config.settings import Settings
    from handlers import dispatch_socket
    from handlers.app import create_app
    from handlers.launcher import DispatcherLauncher
    from handlers.payload import parse_run_request
    from handlers.webhook_signature import verify
    from persistence.factory import build_store

    env = {k.upper(): v for k, v in ours_env(urlsplit(blob_url).netloc, tmp / f"steps-{mode}", database_url).items()}
    settings = Settings.from_env({**env, "DATA_DIR": str(REPO / "data"), "LOG_LEVEL": "INFO"})
    store = build_store(settings)
    launcher = DispatcherLauncher(settings)
    listener = dispatch_socket.open_listener(settings)  # a stand-in dispatcher: notify() succeeds, nothing runs
    costs: dict[str, tuple[float, float]] = {}
    with open(os.devnull, "w") as devnull:
        try:
            with redirect_stdout(devnull):  # create_app logs to sys.stdout as it configures logging
                app = create_app(settings, store=store, launcher=launcher)
            configure_logging("INFO", json=True, stream=devnull)
            log = get_logger("bench")

            def raws(prefix: str) -> list[tuple[dict[str, str], bytes]]:
                out = []
                for raw in signed_requests(n, f"{prefix}-{mode}", blob_url):
                    head, _, body = raw.partition(b"\r\n\r\n")
                    lines = head.decode().split("\r\n")[1:]
                    out.append(({k: v.strip() for k, _, v in (line.partition(":") for line in lines)}, body))
                return out

            pre = raws("steps")
            requests = [parse_run_request(settings, body) for _, body in pre]
            costs["verify signature"] = _timed(lambda i: verify(WEBHOOK_SECRET, pre[i][0], pre[i][1]), n)
            costs["parse_run_request"] = _timed(lambda i: parse_run_request(settings, pre[i][1]), n)
            costs["store.create_run"] = _timed(lambda i: store.create_run(requests[i]), n)
            if database_url:
                more = [parse_run_request(settings, body) for _, body in raws("steps-pg")]
                costs["  of which PostgresStore.create_run"] = _timed(
                    lambda i: store.database.create_run(more[i]), n)  # type: ignore[attr-defined]

                def guarded(i: int) -> None:
                    with store.breaker.guard():  # type: ignore[attr-defined]
                        pass
                costs["  of which breaker.guard (empty call)"] = _timed(guarded, n)
            fsyncs: list[FileDescriptorLike] = []
            real_fsync = os.fsync

            def counting_fsync(fd: FileDescriptorLike) -> None:
                fsyncs.append(fd)
                real_fsync(fd)

            os.fsync = counting_fsync
            try:
                store.create_run(parse_run_request(settings, raws("fsync")[0][1]))
            finally:
                os.fsync = real_fsync
            costs["launcher.notify"] = _timed(lambda i: launcher.notify(requests[i].run_id), n)
            costs["one JSON log line"] = _timed(lambda i: log.info("run_accepted", run_id="x", company_id="y"), n)
            client = app.test_client()
            full = raws("full")
            costs["whole POST /run (test client)"] = _timed(
                lambda i: client.post("/run", data=full[i][1], headers=full[i][0]), n)
            os.environ["FLOOR_DATABASE_URL"] = floor_url
            floor_client = floor_app.create_app().test_client()
            floors = raws("floor")
            costs["floor POST /run (test client)"] = _timed(
                lambda i: floor_client.post("/run", data=floors[i][1], headers=floors[i][0]), n)
        finally:
            listener.close()
            store.close()
            configure_logging("WARNING")
    return costs, len(fsyncs)


def print_steps(mode: str, costs: dict[str, tuple[float, float]], fsyncs: int) -> None:
    """The in-process breakdown of one mode."""
    print(f"\nrequest path in-process, {mode} (one thread, no contention; mean per call; "
          f"{fsyncs} fsync calls per store.create_run):")
    print(f"  {'step':<40}{'wall us':>10}{'CPU us':>10}")
    for step, (wall, cpu) in costs.items():
        print(f"  {step:<40}{wall:>10.0f}{cpu:>10.0f}")


def print_profile(name: str, summary: dict[str, object]) -> None:
    """One profile as two short tables: own time by area, cumulative time of our functions."""
    mode, clock = name.rsplit("_", 1)
    print(f"\nprofile of ours, {mode}, {clock} clock: {summary['ms_per_request']} ms per request in the worker "
          "thread (cProfile; slows Python code, so read shares, not absolutes)")
    for title, table in (("own time by area", summary["own_ms_by_area"]),
                         ("cumulative, our code", summary["cumulative_ms_ours"])):
        print(f"  {title}:")
        for key, value in table.items():  # type: ignore[attr-defined]
            print(f"    {value:>9.3f} ms  {key}")


# -- the run ----------------------------------------------------------------------------------


def measure(port: int, requests: list[bytes], concurrency: int, client: str, tmp: Path) -> Load:
    """One measured load run with the chosen client."""
    if client == "wrk":
        return wrk_load(port, requests, concurrency, tmp)
    return python_load(port, requests[: len(requests) - concurrency], concurrency)


def run_target(label: str, start: Callable[[], WebServer], args: argparse.Namespace, blob_url: str,
               tmp: Path, check: Callable[[], int] | None = None) -> dict[str, object]:
    """Start a server, warm it up, measure it, count what it recorded, stop it."""
    recorded_before = check() if check is not None else 0
    load_before = os.getloadavg()[0]  # other work on the machine shows here (and in machine_busy)
    server = start()
    try:
        wait_for_workers(server)
        if label != "floor":
            wait_for_dispatcher(server)
        port = int(urlsplit(server.base).port or 0)
        warm = signed_requests(args.warmup, f"warm-{label}", blob_url)
        python_load(port, warm, min(args.concurrency, len(warm)))
        batch = signed_requests(args.requests + args.concurrency, label, blob_url)
        pids = children(server.process.pid)
        dispatcher = [pid for pid in pids if pid in dispatcher_pids(Path(server.env.get("OUTPUT_DIR", "/-")))]
        workers = [pid for pid in pids if pid not in dispatcher]
        cpu_before, busy_before = (cpu_seconds(workers), cpu_seconds(dispatcher)), machine_busy()
        load = measure(port, batch, args.concurrency, args.client, tmp)
        cpu_after, busy_after = (cpu_seconds(workers), cpu_seconds(dispatcher)), machine_busy()
    finally:
        stop_server(server)
    per_request = 1000 / load.requests
    result = {k: round(v, 4) if isinstance(v, float) else v for k, v in {
        **asdict(load), "rps": load.rps,
        "worker_cpu_ms_per_request": (cpu_after[0] - cpu_before[0]) * per_request,
        "dispatcher_cpu_ms_per_request": (cpu_after[1] - cpu_before[1]) * per_request,
        "machine_busy": (busy_after[0] - busy_before[0]) / max(1, busy_after[1] - busy_before[1]),
        "loadavg_1m_before": load_before,
    }.items()}
    if check is not None:
        result["recorded"] = check() - recorded_before
    if label != "floor":
        lines = server.log_lines()
        result["dispatchers_spawned"] = sum(1 for line in lines if line.get("message") == "dispatcher_spawned")
    return result


def exit_on_sigterm() -> None:
    """Turn SIGTERM (and SIGINT, which a background shell ignores) into SystemExit, so cleanup runs."""
    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def main(argv: list[str] | None = None) -> int:
    """Measure the floor and ours in FILE_ONLY and DATABASE_ONLY; print the table and a JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--quick", action="store_true", help="300 requests, for a smoke test")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--rounds", type=int, help="interleaved rounds of the three servers (default 3, --quick 1)")
    parser.add_argument("--profile", action="store_true", help="then profile ours inside its workers")
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL", DEFAULT_SERVER_URL),
                        help="a server where this user may CREATE DATABASE bench_*")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    if args.quick:
        args.requests = 300
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.warmup = max(args.concurrency, args.requests // 10)
    if args.client == "auto":
        args.client = "wrk" if shutil.which("wrk") else "python"

    sys.path.insert(0, str(REPO))
    from config.log import configure_logging
    from persistence.migrate import upgrade
    from tests.blobserver import start_blob_server
    from tests.e2e.webserver import GUNICORN, start_gunicorn

    configure_logging("WARNING")  # the migrations of the throwaway database narrate at INFO

    def count_rows(url: str, table: str) -> Callable[[], int]:
        def count() -> int:
            import psycopg

            with psycopg.connect(url) as conn:
                row = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()  # noqa: S608 - fixed name
            assert row is not None, "count(*) always returns a row"
            return int(row[0])
        return count

    tag = uuid.uuid4().hex[:8]
    rounds: dict[str, list[dict[str, object]]] = {"floor": [], "file_only": [], "database_only": []}
    profiles: dict[str, dict[str, object]] = {}
    steps: dict[str, tuple[dict[str, tuple[float, float]], int]] = {}
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-webhook-")))
        blob = start_blob_server()
        stack.callback(blob.close)
        stack.callback(blob.gate.set)  # runs after the servers stop: held fetches end (404) at once
        blob_url = blob.url("/gated/report.txt")
        floor_url = stack.enter_context(database(args.database_url, f"bench_floor_{tag}", upgrade))
        ours_url = stack.enter_context(database(args.database_url, f"bench_webhook_{tag}", upgrade))
        (tmp / "floor.conf.py").write_text(FLOOR_CONF)
        floor_cmd = [str(GUNICORN), "-c", str(tmp / "floor.conf.py"), "bench.floor_app:create_app()"]

        def floor(label: str) -> Callable[[], WebServer]:
            return lambda: start_gunicorn(tmp / label, {"FLOOR_DATABASE_URL": floor_url}, command=floor_cmd,
                                          json_logs=False)

        def ours(label: str, database_url: str | None, app: str = "handlers.app:create_app()",
                 **extra: str) -> Callable[[], WebServer]:
            env = {**ours_env(blob.host, tmp / f"out-{label}", database_url), **extra}
            command = [str(GUNICORN), "-c", "handlers/gunicorn.conf.py", app]
            return lambda: start_gunicorn(tmp / label, env, command=command)

        def run_dirs(label: str) -> Callable[[], int]:
            out = tmp / f"out-{label}"
            return lambda: sum(1 for p in out.glob("*") if p.is_dir() and not p.name.startswith("."))

        print(f"POST /run: {args.requests} signed webhooks (new run_id each) per server and round, concurrency "
              f"{args.concurrency}, client {args.client}, warm-up {args.warmup}, {args.rounds} round(s) of floor, "
              "FILE_ONLY, DATABASE_ONLY; blob_url = local /gated/ route (held shut)", flush=True)
        for n in range(args.rounds):  # interleaved, so a noisy neighbour hits every server alike
            targets = {"floor": (floor(f"floor-{n}"), count_rows(floor_url, "PipelineRun")),
                       "file_only": (ours(f"file-{n}", None), run_dirs(f"file-{n}")),
                       "database_only": (ours(f"db-{n}", ours_url), count_rows(ours_url, "PipelineRun"))}
            for name, (start, count) in targets.items():
                rounds[name].append(run_target(name, start, args, blob_url, tmp, count))
                row = rounds[name][-1]
                print(f"  round {n + 1} {name:<14}{row['rps']:>7.0f} req/s  p50 {row['p50_ms']:.1f} ms  "
                      f"p99 {row['p99_ms']:.1f} ms", flush=True)
        if args.profile:  # untimed: the same load, under cProfile in every worker thread
            for mode, url in (("file", None), ("database", ours_url)):
                for clock in ("wall", "cpu"):
                    folder = tmp / f"cprofile-{mode}-{clock}"
                    folder.mkdir()
                    start = ours(f"profile-{mode}-{clock}", url, "bench.webhook:profiled_app()",
                                 **{PROFILE_ENV: str(folder), PROFILE_CLOCK_ENV: clock})
                    run_target(f"profile-{mode}", start, argparse.Namespace(**{**vars(args), "client": "python"}),
                               blob_url, tmp)
                    profiles[f"{mode}_{clock}"] = summarise_profile(folder, args.requests + args.warmup)
                steps[mode] = step_costs(mode, url, floor_url, blob_url, tmp)

    results = {name: median_row(rows) for name, rows in rounds.items()}
    # Each round's ratio is against the floor of the same round; the median of those is reported.
    ratios = {mode: {"throughput": same_round_ratio(rounds[mode], rounds["floor"], "rps"),
                     "p99": same_round_ratio(rounds[mode], rounds["floor"], "p99_ms")}
              for mode in ("file_only", "database_only")}
    print_table(results, ratios, args.rounds)
    for name, summary in profiles.items():
        print_profile(name, summary)
    for mode, (costs, fsyncs) in steps.items():
        print_steps(mode, costs, fsyncs)
    print(json.dumps({"bench": "webhook", "requests": args.requests, "concurrency": args.concurrency,
                      "rounds": args.rounds, "client": args.client, "blob": "gated", "cpus": os.cpu_count(),
                      **results, "ratios": ratios, "per_round": rounds, "profile": profiles or None,
                      "steps": {mode: {"fsyncs_per_create_run": fsyncs, "wall_cpu_us": {
                          step.strip(): [round(wall, 1), round(cpu, 1)] for step, (wall, cpu) in costs.items()}}
                                for mode, (costs, fsyncs) in steps.items()} or None}))
    return 0


def same_round_ratio(ours: list[dict[str, Any]], floor: list[dict[str, Any]], key: str) -> float:
    """The median over the rounds of ours / the floor of the same round."""
    return round(statistics.median(o[key] / f[key] for o, f in zip(ours, floor, strict=True)), 3)


def median_row(rows: list[dict[str, object]]) -> dict[str, object]:
    """Each figure's median over the rounds."""
    return {key: round(statistics.median(_figure(row[key]) for row in rows), 4) for key in rows[0]}


def _figure(value: object) -> float:
    """A measured figure of a row (run_target's values are all ints or floats)."""
    assert isinstance(value, int | float), f"not a figure: {value!r}"
    return value


def print_table(results: dict[str, dict[str, object]], ratios: dict[str, dict[str, float]], rounds: int) -> None:
    """The summary table: medians over the rounds, ratios against the same round's floor."""
    header = (f"{'server':<15}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'x floor req/s':>14}{'x floor p99':>12}"
              f"{'non-202':>8}{'recorded':>9}{'worker CPU ms/req':>18}{'dispatcher':>11}{'2 CPUs busy':>12}"
              f"{'client CPU s':>13}")
    print(f"\nmedians of {rounds} round(s):")
    print(header)
    print("-" * len(header))
    for name, row in results.items():
        ratio = ratios.get(name, {"throughput": 1.0, "p99": 1.0})
        print(f"{name:<15}{row['rps']:>8.0f}{row['p50_ms']:>8.1f}{row['p99_ms']:>8.1f}{ratio['throughput']:>14.2f}"
              f"{ratio['p99']:>12.2f}{row['non_202']:>8.0f}{row['recorded']:>9.0f}"
              f"{row['worker_cpu_ms_per_request']:>18.2f}{row['dispatcher_cpu_ms_per_request']:>11.2f}"
              f"{row['machine_busy']:>12.0%}{row['client_cpu_s']:>13.2f}")


if __name__ == "__main__":
    raise SystemExit(main())
