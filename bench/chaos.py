"""``python -m bench.chaos --runs N --seed S [--mode dual|database]``: persistence under seeded fire.

N runs are submitted over HTTP to real gunicorn (its dispatcher forks a process per run) backed
by a private PostgreSQL cluster behind the fault proxy, with OUTPUT_DIR on a small tmpfs. While
they run, a driver seeded with S injects, at random moments:

    db_kill      SIGKILL the PostgreSQL cluster, restart it a moment later (crash recovery)
    blackhole    the proxy forwards nothing for a while (a silent network partition)
    run_kill     SIGKILL one run process (a stage may be between its two writes)
    web_kill     SIGKILL the whole web process group (gunicorn, dispatcher, runs), start it again
    disk_full    fill the output tmpfs, free it a moment later (dual mode: the mirror and spool disk)

Then the faults stop and recovery runs as in production (reap and replay, the dispatcher's
claims). It checks: every run COMPLETED; no duplicate "StageOutput" or "OpportunityCard" rows
(five of each per run); database and files identical for every stage, report and status of
every run (dual mode); no stage executed more often than the run's attempts allow. It prints
the faults injected, stage executions, records replayed and the time to full recovery, then a
JSON summary as its last line; exit 0 when every check holds, 1 otherwise, 2 on usage errors.
The same seed gives the same sequence of faults (their effect depends on timing).

Needs root (tmpfs mount), PostgreSQL binaries (tests/pgcluster.py) and the test virtualenv.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import requests

from bench.chaos_checks import check_runs, stage_executions
from config.settings import Settings
from handlers.recovery import reap
from persistence.factory import build_breaker, build_store, replay_spool
from tests.blobserver import BlobServer, start_blob_server
from tests.e2e.webserver import API_TOKEN, WEBHOOK_SECRET, WebServer, post_run, start_gunicorn
from tests.faultproxy import FaultProxy
from tests.pgcluster import PrivateCluster
from tests.smalldisk import SmallDisk, small_disk

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "samples" / "outdoor-gear-circularity.txt"
FAULTS = ("db_kill", "blackhole", "run_kill", "web_kill", "disk_full")
LEASE_S = 5
RECOVERY_BUDGET_S = 300.0  # a hang guard: past it the run reports what is still missing


def _env(blob: BlobServer, url: str, output_dir: Path, mode: str) -> dict[str, str]:
    return {"WEBHOOK_SECRET": WEBHOOK_SECRET, "API_TOKEN": API_TOKEN, "PIPELINE_ENGINE": "offline",
            "DATABASE_URL": url, "ENABLE_FILE_FALLBACK": "true" if mode == "dual" else "false",
            "OUTPUT_DIR": str(output_dir), "BLOB_ALLOWED_HOSTS": blob.host, "BLOB_ALLOW_HTTP": "true",
            "RUN_LEASE_SECONDS": str(LEASE_S), "MAX_RUN_ATTEMPTS": "20", "MAX_CONCURRENT_RUNS": "2",
            "RAILWAY_DEPLOYMENT_DRAINING_SECONDS": "3"}


class Chaos:
    """The system under test and the faults applied to it."""

    def __init__(self, args: argparse.Namespace, work: Path, cluster: PrivateCluster, disk: SmallDisk) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.work = work
        self.cluster = cluster
        self.disk = disk
        self.database_url = cluster.create_database("chaos")
        self.proxy = FaultProxy.in_front_of(self.database_url).start()
        self.blob = start_blob_server()
        self.blob.add_file("report.txt", SAMPLE.read_bytes(), "text/plain")
        self.env = _env(self.blob, self.proxy.url_for(self.database_url), disk.path, args.mode)
        self.settings = Settings.from_env(self.env)
        self.web: WebServer | None = None
        self.faults: Counter[str] = Counter()
        self.restarts = 0

    # -- the web process -----------------------------------------------------------------------

    def start_web(self) -> None:
        self.restarts += 1
        self.web = start_gunicorn(self.work / f"web{self.restarts}", self.env, new_session=True)

    def kill_web(self) -> None:
        if self.web is not None and self.web.process.poll() is None:
            os.killpg(self.web.process.pid, signal.SIGKILL)
            self.web.process.wait()
        dispatcher = self._dispatcher_pid()
        if dispatcher is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(dispatcher, signal.SIGKILL)

    def _dispatcher_pid(self) -> int | None:
        try:
            return int((self.settings.state_dir / "dispatcher.pid").read_text())
        except (OSError, ValueError):
            return None

    def run_processes(self) -> list[int]:
        """Pids of the dispatcher's children (one per running run)."""
        parent = self._dispatcher_pid()
        if parent is None:
            return []
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rpartition(")")[2].split()[1]) == parent:
                    found.append(int(entry.name))
        return sorted(found)

    # -- submitting and watching ---------------------------------------------------------------

    def submit(self, run_id: str) -> None:
        """POST /run until the run is recorded (503 while nothing can record it is the contract)."""
        body: dict[str, object] = {"run_id": run_id, "blob_url": self.blob.url("/files/report.txt"),
                                   "company_id": "decathlon", "user_id": "chaos"}
        for _ in range(200):
            try:
                if self.web is not None and post_run(self.web, body).status_code in (200, 202):
                    return
            except requests.RequestException:
                pass
            if self.web is None or self.web.process.poll() is not None:
                self.start_web()
            time.sleep(0.2)
        raise RuntimeError(f"run {run_id} could not be submitted")

    def statuses(self) -> dict[str, str]:
        """Run statuses straight from the database ({} while it cannot be read)."""
        try:
            with psycopg.connect(self.database_url, connect_timeout=2) as conn:
                return {r: s for r, s in conn.execute('SELECT id, status FROM "PipelineRun"').fetchall()}
        except psycopg.Error:
            return {}

    # -- faults --------------------------------------------------------------------------------

    def inject(self) -> None:
        """One seeded fault, held for a seeded moment, then undone."""
        kinds = [k for k in FAULTS if self.args.mode == "dual" or k != "disk_full"]
        # Every number is drawn whatever happens next, so a seed always gives the same sequence.
        kind, hold, delay, pick = self.rng.choice(kinds), self.rng.uniform(0.3, 2.0), self.rng.uniform(0, 0.3), \
            self.rng.random()
        self.faults[kind] += 1
        print(f"  fault {sum(self.faults.values()):3d}: {kind} ({hold:.1f} s)", flush=True)
        if kind == "db_kill":
            self.cluster.kill()
            time.sleep(hold)
            self.cluster.start()
        elif kind == "blackhole":
            self.proxy.blackhole()
            time.sleep(hold)
            self.proxy.passthrough()
        elif kind == "run_kill":
            # Wait (briefly) for a run process, then kill it a seeded moment later: often mid-stage,
            # sometimes between the two writes of a stage.
            deadline = time.monotonic() + hold
            while not (victims := self.run_processes()) and time.monotonic() < deadline:
                time.sleep(0.05)
            if victims:
                time.sleep(delay)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(victims[int(pick * len(victims))], signal.SIGKILL)
        elif kind == "web_kill":
            self.kill_web()
            time.sleep(hold)
            self.start_web()
        else:
            self.disk.fill()
            time.sleep(hold)
            self.disk.free()

    def heal(self) -> None:
        """Every fault undone: the database up, the network through, space back, the web process alive."""
        self.proxy.passthrough()
        self.disk.free()
        if not self.cluster.running:
            self.cluster.start()
        if self.web is None or self.web.process.poll() is not None or self._dispatcher_pid() is None:
            self.kill_web()
            self.start_web()

    def recover(self) -> float:
        """Reap and replay as the cron jobs do until every run completes; seconds it took."""
        started = time.monotonic()
        replayed = 0
        while time.monotonic() - started < RECOVERY_BUDGET_S:
            build_breaker(self.settings).reset("chaos: every fault is undone")
            store = build_store(self.settings)
            try:
                reap(store, self.settings)
            finally:
                store.close()
            report = replay_spool(self.settings)
            replayed += report.applied
            statuses = self.statuses()
            if len(statuses) == self.args.runs and set(statuses.values()) == {"COMPLETED"} and not report.remaining:
                self.replayed_by_cron = replayed
                return time.monotonic() - started
            time.sleep(1.0)
        self.replayed_by_cron = replayed
        return time.monotonic() - started

    def close(self) -> None:
        self.kill_web()
        self.proxy.close()
        self.blob.close()


def main(argv: list[str] | None = None) -> int:
    """Run the chaos suite; the last stdout line is the JSON summary."""
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, required=True, help="runs to submit (1-200)")
    parser.add_argument("--seed", type=int, required=True, help="seed of the fault sequence")
    parser.add_argument("--mode", choices=("dual", "database"), default="dual",
                        help="DUAL_WRITE (dual, default) or DATABASE_ONLY (database)")
    parser.add_argument("--faults", type=int, default=0, help="faults to inject (default: 2 per run, at least 6)")
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= 200:
        parser.error("--runs must be between 1 and 200")
    args.faults = args.faults or max(6, 2 * args.runs)
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="chaos-"))
    cluster = PrivateCluster.create()
    summary: dict[str, Any] = {"benchmark": "chaos", "runs": args.runs, "seed": args.seed, "mode": args.mode}
    try:
        with small_disk(work / "out", size="64m") as disk:
            chaos = Chaos(args, work, cluster, disk)
            try:
                chaos.start_web()
                run_ids = [f"chaos-{args.seed}-{i:03d}" for i in range(args.runs)]
                print(f"chaos: {args.runs} runs, seed {args.seed}, mode {args.mode}", flush=True)
                # Submissions are spread over the faults, so runs are in flight while faults land.
                pending = list(run_ids)
                for i in range(args.faults):
                    due = min(args.runs, -(-(i + 1) * args.runs // args.faults))
                    while args.runs - len(pending) < due:
                        chaos.submit(pending.pop(0))
                    chaos.inject()
                for run_id in pending:
                    chaos.submit(run_id)
                chaos.heal()
                seconds = chaos.recover()
                log_paths = sorted(work.glob("web*/gunicorn-*.log"))
                verdict = check_runs(chaos.database_url, disk.path if args.mode == "dual" else None, run_ids)
                executions = stage_executions(log_paths)
                summary.update(verdict.as_dict(executions, chaos.database_url))
                summary.update({"faults": dict(chaos.faults), "web_restarts": chaos.restarts - 1,
                                "stage_executions": sum(executions.values()),
                                "records_replayed_by_cron": chaos.replayed_by_cron,
                                "recovery_seconds": round(seconds, 1)})
            finally:
                chaos.close()
    finally:
        cluster.cleanup()
    ok = not summary.get("problems")
    for problem in summary.get("problems", [])[:20]:
        print(f"  PROBLEM: {problem}", flush=True)
    print(f"faults {summary.get('faults')}, stage executions {summary.get('stage_executions')}, records replayed "
          f"by cron {summary.get('records_replayed_by_cron')}, full recovery in {summary.get('recovery_seconds')} s: "
          f"{'OK' if ok else 'FAILED'}", flush=True)
    summary["ok"] = ok
    print(json.dumps(summary), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
