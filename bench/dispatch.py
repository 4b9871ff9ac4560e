"""Benchmark webhook-to-stage-1 latency of the run dispatcher, and the memory of each process.

Run from the repository root: ``python -m bench.dispatch [--runs 50] [--quick] [--modes file,database]``

For each mode, the real gunicorn (handlers/gunicorn.conf.py, whose master starts the dispatcher)
gets ``--runs`` signed webhooks one at a time; each run's document is served at once by a local
blob server, and the next webhook waits until the run's process has exited (and ``--gap-ms``
more: 0 sends it at once, which finds the next spare run process just forked; a gap measures a
service that was idle). Latency is the ``timestamp`` of the run's ``stage_started`` stage=1 log
line minus ``time.time()`` when the 202 answer arrived (one machine, one clock). The log also
gives the steps in between: the dispatcher's handoff (``run_process_started``), the run process
ready (``run_started``) and the document fetched (``document_loaded``).

Floors, measured in the same run: a bare interpreter start (``python -c pass``), an interpreter
that imports our stack (what a fresh subprocess per run would pay before its first line), and
an ``os.fork()`` + ``os._exit`` + ``waitpid`` round trip from a process that has imported it.

Memory (from /proc): VmRSS and VmHWM of a web worker, of the dispatcher, and of a run process
held mid-fetch by the blob server's gate, with Pss, shared and private from smaps_rollup
(a forked run shares the dispatcher's pages until either writes to them).

Prints tables, then one JSON object on the last line. The server, the dispatcher and its
standbys, and the database (``bench_*``) are removed even on error.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bench.webhook import (
    DEFAULT_SERVER_URL,
    REPO,
    WEBHOOK_SECRET,
    children,
    database,
    dispatcher_pids,
    exit_on_sigterm,
    ours_env,
    stop_server,
    wait_for_dispatcher,
)

if TYPE_CHECKING:
    from tests.blobserver import BlobServer
    from tests.e2e.webserver import WebServer

STACK = "import handlers.app, pipeline.bootstrap, persistence.factory, pipeline.offline"
FORK_CHILD = f"""
import json, os, sys, time
{STACK}
samples = []
for _ in range(int(sys.argv[1])):
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    samples.append(time.perf_counter() - start)
print(json.dumps(samples))
"""
# What the dispatcher's preload saves every run: in a fresh interpreter with the run's stack
# imported (not handlers.dispatcher, whose spare's rehearsal imports the fetcher itself), the
# document fetcher's import and a first brand profile read from YAML. The dispatcher does both
# before it forks (Dispatcher.__init__), so a run process pays neither.
AFTER_FORK_CHILD = """
import json, sys, time
from pathlib import Path
import pipeline.bootstrap, pipeline.offline, persistence.factory
from pipeline.brands import load_brand
assert "pipeline.fetch" not in sys.modules, "the stack imports the fetcher now: this figure would read 0"
out = {}
start = time.perf_counter()
import pipeline.fetch
out["import pipeline.fetch"] = time.perf_counter() - start
start = time.perf_counter()
load_brand(Path("data/brand-profiles"), "decathlon")
out["load_brand('decathlon') (YAML, first time)"] = time.perf_counter() - start
print(json.dumps(out))
"""
SAMPLE = REPO / "data" / "samples" / "outdoor-gear-circularity.txt"
STEPS = (("run_process_started", "fork"), ("run_started", "run ready"), ("document_loaded", "document"),
         ("stage_started", "stage 1"))


def ms(values: list[float]) -> dict[str, float]:
    """Median and p90 of ``values`` (seconds), in milliseconds."""
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {"median_ms": round(statistics.median(ordered) * 1000, 2), "p90_ms": round(p90 * 1000, 2),
            "n": len(ordered)}


# -- floors -----------------------------------------------------------------------------------


def process_floor(argv: list[str], repeats: int) -> dict[str, float]:
    """Wall time of running ``argv`` to completion from the repository root, ``repeats`` times."""
    subprocess.run(argv, cwd=REPO, check=True)  # warm the page cache: a cold disk is not what we compare
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, cwd=REPO, check=True)
        samples.append(time.perf_counter() - start)
    return ms(samples)


def fork_floor(repeats: int) -> dict[str, float]:
    """fork + _exit + waitpid round trips in a fresh interpreter that has imported our stack."""
    out = subprocess.run([sys.executable, "-c", FORK_CHILD, str(repeats)], cwd=REPO, check=True,
                         capture_output=True, text=True)
    return ms(json.loads(out.stdout.strip().splitlines()[-1]))


def after_fork_costs(repeats: int) -> dict[str, dict[str, float]]:
    """Each in a fresh interpreter with the dispatcher's preload, as a forked run meets them."""
    samples: dict[str, list[float]] = {}
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", AFTER_FORK_CHILD], cwd=REPO, check=True,
                             capture_output=True, text=True)
        for key, value in json.loads(out.stdout.strip().splitlines()[-1]).items():
            samples.setdefault(key, []).append(value)
    return {key: ms(values) for key, values in samples.items()}


def connect_floor(url: str, repeats: int) -> dict[str, float]:
    """A new PostgreSQL connection, opened and closed: what a DATABASE_ONLY run process pays first."""
    import psycopg

    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        psycopg.connect(url).close()
        samples.append(time.perf_counter() - start)
    return ms(samples)


# -- memory -----------------------------------------------------------------------------------


def memory(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (/proc/<pid>/status), Pss, shared and private (smaps_rollup), in MiB."""
    fields: dict[str, int] = {}
    for name in ("status", "smaps_rollup"):
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            key, _, value = line.partition(":")
            if value.strip().endswith("kB"):
                fields[key] = int(value.split()[0])
    mib = {"rss": fields["VmRSS"], "hwm": fields["VmHWM"], "pss": fields["Pss"],
           "shared": fields["Shared_Clean"] + fields["Shared_Dirty"],
           "private": fields["Private_Clean"] + fields["Private_Dirty"]}
    return {key: round(value / 1024, 1) for key, value in mib.items()}


# -- the server -------------------------------------------------------------------------------


class LogTail:
    """The JSON lines gunicorn, the dispatcher and the runs append to one file, read incrementally."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.lines: list[dict[str, Any]] = []

    def poll(self) -> None:
        """Parse the complete lines written since the last poll (non-JSON lines are skipped)."""
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        for raw in data[:end].splitlines():
            try:
                self.lines.append(json.loads(raw))
            except ValueError:
                continue

    def find(self, message: str, run_id: str | None = None, **match: object) -> dict[str, Any] | None:
        """The first line with this message (and run_id and fields), if it was written."""
        for line in self.lines:
            if line.get("message") == message and (run_id is None or line.get("run_id") == run_id) \
                    and all(line.get(k) == v for k, v in match.items()):
                return line
        return None

    def wait(self, message: str, run_id: str | None = None, seconds: float = 60, **match: object) -> dict[str, Any]:
        """Poll until the line exists; RuntimeError after ``seconds``."""
        deadline = time.monotonic() + seconds
        while True:
            found = self.find(message, run_id, **match)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {message!r} line for {run_id} within {seconds:g} s")
            time.sleep(0.005)
            self.poll()


def post_run(port: int, run_id: str, blob_url: str) -> float:
    """POST one signed webhook; return time.time() when the 202 answer had arrived."""
    from handlers.webhook_signature import signed_headers

    body = json.dumps({"run_id": run_id, "blob_url": blob_url, "company_id": "decathlon",
                       "user_id": "bench_user"}).encode()
    headers = {"Content-Type": "application/json", **signed_headers(WEBHOOK_SECRET, body, msg_id=f"msg_{run_id}")}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/run", body=body, headers=headers)
        answer = conn.getresponse()
        answer.read()
        arrived = time.time()
    finally:
        conn.close()
    if answer.status != 202:
        raise RuntimeError(f"POST /run answered {answer.status}")
    return arrived


def stamp(line: dict[str, Any]) -> float:
    """A log line's ``timestamp`` (ISO 8601, UTC) as Unix seconds."""
    return datetime.fromisoformat(line["timestamp"]).timestamp()


def measure_mode(mode: str, database_url: str | None, runs: int, blob: BlobServer, tmp: Path,
                 gap_s: float = 0.0) -> dict[str, Any]:
    """Latency over ``runs`` sequential runs ``gap_s`` apart, then the memory of each process, for one mode."""
    from tests.e2e.webserver import start_gunicorn

    server = start_gunicorn(tmp / mode, ours_env(blob.host, tmp / f"out-{mode}", database_url))
    try:
        wait_for_dispatcher(server)
        port = int(urlsplit(server.base).port or 0)
        tail = LogTail(server.log_path)
        latency: dict[str, list[float]] = {label: [] for _, label in STEPS}
        started_by: Counter[str] = Counter()  # a spare run process, or a fresh fork (none was waiting)
        for n in range(runs + 1):  # the first run warms the path (page cache, first connections)
            run_id = f"disp-{mode}-{n}-{uuid.uuid4().hex[:8]}"
            time.sleep(gap_s)  # 0: the next webhook follows the last run's exit at once
            answered = post_run(port, run_id, blob.url("/files/report.txt"))
            exited = tail.wait("run_process_exited", run_id)
            if exited.get("exit_code") != 0:
                raise RuntimeError(f"run {run_id} exited with {exited.get('exit_code')}")
            if n == 0:
                continue
            started = tail.find("run_process_started", run_id) or {}
            started_by[str(started.get("started_by", "fork"))] += 1
            for message, label in STEPS:
                line = tail.find(message, run_id, **({"stage": 1} if message == "stage_started" else {}))
                if line is None:
                    raise RuntimeError(f"run {run_id} logged no {message!r}")
                latency[label].append(stamp(line) - answered)
        rss = held_memory(server, tail, port, blob, mode)
    finally:
        stop_server(server)
    return {"latency": {label: ms(values) for label, values in latency.items()},
            "stage1_minus_answer_ms": [round(v * 1000, 2) for v in latency["stage 1"]], "memory": rss,
            "started_by": dict(started_by)}


def held_memory(server: WebServer, tail: LogTail, port: int, blob: BlobServer, mode: str) -> dict[str, Any]:
    """Memory of a web worker, the dispatcher and a run process held in its document fetch."""
    run_id = f"held-{mode}-{uuid.uuid4().hex[:8]}"
    post_run(port, run_id, blob.url(f"/gated/{run_id}.txt"))
    child = int(tail.wait("run_process_started", run_id)["pid"])
    deadline = time.monotonic() + 30
    while not any(seen.path == f"/gated/{run_id}.txt" for seen in blob.seen):  # it is waiting on the gate now
        if time.monotonic() > deadline:
            raise RuntimeError("the held run never fetched its document")
        time.sleep(0.01)
    dispatcher = dispatcher_pids(Path(server.env["OUTPUT_DIR"]))
    workers = [pid for pid in children(server.process.pid) if pid not in dispatcher]
    result: dict[str, Any] = {"web_worker": [memory(pid) for pid in workers],
                              "dispatcher": memory(dispatcher[0]), "run_held": memory(child)}
    blob.add_file(f"{run_id}.txt", SAMPLE.read_bytes(), "text/plain")
    blob.gate.set()  # let it run to the end, sampling its high-water mark as it goes
    peak = result["run_held"]["hwm"]
    while True:
        try:
            peak = max(peak, memory(child)["hwm"])
        except (FileNotFoundError, KeyError, ProcessLookupError):
            break
        time.sleep(0.005)
    result["run_peak_hwm"] = peak
    blob.gate.clear()
    tail.wait("run_process_exited", run_id)
    return result


# -- output -----------------------------------------------------------------------------------


def print_report(floors: dict[str, dict[str, float]], modes: dict[str, dict[str, Any]]) -> None:
    """The latency table (with the floors) and the memory table."""
    print(f"\n{'webhook 202 answer -> log line':<44}{'median ms':>11}{'p90 ms':>9}{'n':>5}")
    for mode, result in modes.items():
        for label, figures in result["latency"].items():
            print(f"{mode + ': ' + label:<44}{figures['median_ms']:>11.2f}{figures['p90_ms']:>9.2f}{figures['n']:>5}")
    for mode, result in modes.items():
        started = ", ".join(f"{how} {n}" for how, n in result["started_by"].items())
        print(f"{mode + ': runs started by':<44}{started:>25}")
    for label, figures in floors.items():
        print(f"{'floor: ' + label:<44}{figures['median_ms']:>11.2f}{figures['p90_ms']:>9.2f}{figures['n']:>5}")
    print(f"\n{'process (MiB)':<28}{'VmRSS':>8}{'VmHWM':>8}{'Pss':>8}{'shared':>8}{'private':>9}")
    for mode, result in modes.items():
        mem = result["memory"]
        rows = [(f"web worker {i + 1}", m) for i, m in enumerate(mem["web_worker"])]
        rows += [("dispatcher", mem["dispatcher"]), ("run, held mid-fetch", mem["run_held"])]
        for label, m in rows:
            print(f"{mode + ': ' + label:<28}{m['rss']:>8.1f}{m['hwm']:>8.1f}{m['pss']:>8.1f}{m['shared']:>8.1f}"
                  f"{m['private']:>9.1f}")
        print(f"{mode + ': run, peak VmHWM':<28}{'':>8}{mem['run_peak_hwm']:>8.1f}")


def main(argv: list[str] | None = None) -> int:
    """Measure the floors, then each mode; print the tables and a JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="5 runs and fewer floor samples, for a smoke test")
    parser.add_argument("--modes", default="file,database", help="comma-separated: file, database")
    parser.add_argument("--gap-ms", type=float, default=0.0,
                        help="idle time between one run's exit and the next webhook (default 0: back to back)")
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL", DEFAULT_SERVER_URL),
                        help="a server where this user may CREATE DATABASE bench_*")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    if args.quick:
        args.runs = 5
    repeats = 5 if args.quick else 20
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]

    from config.log import configure_logging
    from persistence.migrate import upgrade
    from tests.blobserver import start_blob_server

    configure_logging("WARNING")  # the migrations of the throwaway database narrate at INFO
    python = str(Path(sys.executable))
    spacing = f"{args.gap_ms:g} ms apart" if args.gap_ms else "back to back"
    print(f"{args.runs} runs per mode, one at a time ({spacing}); document served at once by a local blob server; "
          f"floors over {repeats} samples (fork: {repeats * 10})", flush=True)
    floors = {"python -c pass": process_floor([python, "-c", "pass"], repeats),
              "python -c 'import <our stack>'": process_floor([python, "-c", STACK], repeats),
              "fork + _exit + waitpid (stack imported)": fork_floor(repeats * 10)}
    after_fork = after_fork_costs(max(3, repeats // 2))
    results: dict[str, dict[str, Any]] = {}
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-dispatch-")))
        blob = start_blob_server()
        stack.callback(blob.close)
        stack.callback(blob.gate.set)
        blob.add_file("report.txt", SAMPLE.read_bytes(), "text/plain")
        for mode in modes:
            url: str | None = None
            if mode == "database":
                url = stack.enter_context(database(args.database_url, f"bench_dispatch_{uuid.uuid4().hex[:8]}",
                                                   upgrade))
                floors["psycopg.connect + close"] = connect_floor(url, repeats)
            results[mode] = measure_mode(mode, url, args.runs, blob, tmp, args.gap_ms / 1000)
    print_report(floors, results)
    print("\nsaved by the dispatcher's preload (both are done once before any fork, so a run never pays them):")
    for label, figures in after_fork.items():
        print(f"  {label:<48}{figures['median_ms']:>9.2f} ms median")
    summary = {mode: {"stage1_median_ms": r["latency"]["stage 1"]["median_ms"],
                      "stage1_p90_ms": r["latency"]["stage 1"]["p90_ms"],
                      "x_fork_floor": round(r["latency"]["stage 1"]["median_ms"]
                                            / floors["fork + _exit + waitpid (stack imported)"]["median_ms"], 1),
                      "x_import_floor": round(r["latency"]["stage 1"]["median_ms"]
                                              / floors["python -c 'import <our stack>'"]["median_ms"], 3)}
               for mode, r in results.items()}
    print(json.dumps({"bench": "dispatch", "runs": args.runs, "gap_ms": args.gap_ms, "cpus": os.cpu_count(),
                      "floors": floors,
                      "after_fork": after_fork, "summary": summary, "modes": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
