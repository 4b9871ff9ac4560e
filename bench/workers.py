"""Benchmark run throughput of worker replicas against one worker (RUN_DISPATCH=workers).

Run from the repository root: ``python -m bench.workers [--runs 60] [--workers 3] [--quick]``

For each fleet size (one worker: the floor; then ``--workers``), in a fresh ``bench_*`` database:
the real gunicorn with RUN_DISPATCH=workers accepts ``--runs`` signed webhooks whose documents a
local blob server holds behind its gate; the workers (``python -m handlers.dispatcher``, each on
its own state folder, MAX_CONCURRENT_RUNS=2, offline engine) are started and ready first. The
clock starts when the gate opens and stops when PostgreSQL holds every run COMPLETED, so worker
start-up and webhook intake are outside the measured time.

On one machine the workers share its cores: the ratio says what extra replicas buy here (2
shared cores), not on Railway, where each replica has its own. Prints a table, then one JSON
object on the last line. Databases and processes are removed even on error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

from bench.webhook import DEFAULT_SERVER_URL, REPO, database, exit_on_sigterm

QUICK_RUNS = 12


def measure(server_url: str, fleet: int, runs: int, work: Path) -> float:
    """Seconds from the gate opening until ``runs`` runs are COMPLETED with ``fleet`` workers."""
    import psycopg

    from persistence.migrate import upgrade
    from tests.blobserver import start_blob_server
    from tests.e2e.webserver import API_TOKEN, WEBHOOK_SECRET, post_run, start_gunicorn
    from tests.e2e.workerfleet import Worker, worker_env

    sample = (REPO / "data" / "samples" / "outdoor-gear-circularity.txt").read_bytes()
    with ExitStack() as stack:
        url = stack.enter_context(database(server_url, f"bench_workers_{uuid.uuid4().hex[:8]}",
                                           lambda fresh: None if upgrade(fresh) else None))
        blob = start_blob_server()
        stack.callback(blob.close)
        stack.callback(blob.gate.set)
        blob.add_file("report.txt", sample, "text/plain")
        # INFO: Worker.start waits for the worker's dispatcher_started line.
        env = worker_env(url, blob.host, MAX_CONCURRENT_RUNS="2", RAILWAY_DEPLOYMENT_DRAINING_SECONDS="10")
        web = start_gunicorn(work / f"web{fleet}", {**env, "WEBHOOK_SECRET": WEBHOOK_SECRET, "API_TOKEN": API_TOKEN})
        stack.callback(web.stop)
        workers = [Worker(f"w{fleet}-{i}", work / f"w{fleet}-{i}" / "outputs", env) for i in range(fleet)]
        for worker in workers:
            stack.callback(worker.stop)
            worker.start()
        for n in range(runs):
            answer = post_run(web, {"run_id": f"bench-{n:04d}", "blob_url": blob.url("/gated/report.txt"),
                                    "company_id": "decathlon", "user_id": "user_1"})
            if answer.status_code != 202:
                raise RuntimeError(f"POST /run answered {answer.status_code}: {answer.text}")
        with psycopg.connect(url, autocommit=True) as conn:
            started = time.perf_counter()
            blob.gate.set()
            while True:
                done, failed = conn.execute("""SELECT count(*) FILTER (WHERE status = 'COMPLETED'),
                                                      count(*) FILTER (WHERE status = 'FAILED')
                                               FROM "PipelineRun" """).fetchone() or (0, 0)
                if failed:
                    raise RuntimeError(f"{failed} runs FAILED with {fleet} workers")
                if done == runs:
                    return time.perf_counter() - started
                if time.perf_counter() - started > 600:
                    raise RuntimeError(f"only {done} of {runs} runs completed in 600 s")
                time.sleep(0.02)
    raise AssertionError("unreachable")


def main(argv: list[str] | None = None) -> int:
    """Measure one worker (the floor) and the fleet; print the table and a JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_RUNS} runs, for a smoke test")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL")
                        or os.environ.get("TEST_DATABASE_URL", DEFAULT_SERVER_URL))
    args = parser.parse_args(argv)
    runs = QUICK_RUNS if args.quick else args.runs
    exit_on_sigterm()
    seconds: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        for fleet in (1, args.workers):
            seconds[fleet] = measure(args.database_url, fleet, runs, Path(tmp))
    per_s = {fleet: runs / s for fleet, s in seconds.items()}
    ratio = per_s[args.workers] / per_s[1]
    print(f"{'workers':>8} {'runs':>5} {'seconds':>9} {'runs/s':>8} {'vs one worker':>14}")
    for fleet, s in seconds.items():
        print(f"{fleet:>8} {runs:>5} {s:>9.2f} {per_s[fleet]:>8.2f} {per_s[fleet] / per_s[1]:>13.2f}x")
    print(f"(MAX_CONCURRENT_RUNS=2 per worker, offline engine, {os.cpu_count()} CPUs shared by all workers)")
    print(json.dumps({"benchmark": "workers", "runs": runs, "workers": args.workers, "cpus": os.cpu_count(),
                      "seconds": {str(k): round(v, 3) for k, v in seconds.items()},
                      "runs_per_s": {str(k): round(v, 3) for k, v in per_s.items()}, "ratio": round(ratio, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
