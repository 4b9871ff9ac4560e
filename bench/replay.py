"""Spool replay throughput in records per second, against a raw batched-upsert floor in the same run.

``python -m bench.replay [--records 10000] [--quick] [--profile] [--server-url URL]``

1. Spool: with DATABASE_URL at a port nothing listens on (DATABASE_ONLY, production policies),
   runs of the offline engine's real outputs are written through ``build_store``: create_run,
   start_attempt, save_stage ×5, complete_run, 8 records a run, until N records wait in the spool
   (10,000; 1,000 with --quick). The breaker opens on the first run; every write is journalled.
2. Replay: the breaker is reset (the operator's "database is back"), then a fresh interpreter
   runs ``replay_spool(settings)`` against the real database and reports its wall time and peak
   RSS (``ru_maxrss``, started through a tiny launcher interpreter so that it does not inherit
   this process's high-water mark, see bench/README.md).
3. Floor: one psycopg connection ``executemany``-s the same N records, as upserts of their JSON
   (the bytes the spool holds) into a one-table scratch schema, 100 rows and one commit per batch.
4. Check: the spool is empty, nothing went to dead/, and the row counts are exactly the expected
   ones (runs, 5 stage rows a run, the report's cards a run), all runs COMPLETED.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.scratch import (
    exit_on_sigterm,
    print_table,
    profile_text,
    quiet_logging,
    refused_url,
    rounded,
    sample_run,
    server_url,
    throwaway_database,
)
from config.settings import APP_DIR

AIM = 0.8
BATCH = 100
RECORDS_PER_RUN = 8
FLOOR_TABLE = """
CREATE TABLE bench_floor.spool_record (
    run_id text NOT NULL,
    seq integer NOT NULL,
    verb text NOT NULL,
    args jsonb NOT NULL,
    PRIMARY KEY (run_id, seq)
)
"""
FLOOR_UPSERT = """
INSERT INTO bench_floor.spool_record (run_id, seq, verb, args) VALUES (%(run_id)s, %(seq)s, %(verb)s, %(args)s)
ON CONFLICT (run_id, seq) DO UPDATE SET verb = EXCLUDED.verb, args = EXCLUDED.args
"""
# Linux carries a parent's RSS high-water mark into a child's ru_maxrss across exec; a tiny
# interpreter in between resets the inherited mark to its own few MiB.
LAUNCHER = "import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:]).returncode)"
COUNTS = """
SELECT (SELECT count(*) FROM "PipelineRun"),
       (SELECT count(*) FROM "PipelineRun" WHERE status = 'COMPLETED'),
       (SELECT count(*) FROM "StageOutput"),
       (SELECT count(*) FROM "OpportunityCard")
"""


def run_writes(outputs: dict[int, dict[str, Any]], report: Any, runs: int, prefix: str = "replay") -> list[Any]:
    """The write commands of ``runs`` complete runs, in order."""
    from persistence.commands import Command, CompleteRun, CreateRun, SaveStage, StartAttempt
    from persistence.records import RunRequest, StageResult, utcnow

    calls: list[Command] = []
    for i in range(runs):
        run_id = f"{prefix}-{i:05d}"
        calls.append(CreateRun(RunRequest(run_id, "mccormick-usa", "bench", "bench://sample")))
        calls.append(StartAttempt(run_id, 1))
        for stage, output in outputs.items():
            done = utcnow()
            calls.append(SaveStage(run_id, 1, StageResult(stage, output, done - timedelta(milliseconds=800), done)))
        calls.append(CompleteRun(run_id, 1, report))
    return calls


def spool(settings: Any, calls: list[Any]) -> list[float]:
    """Write every call through build_store while the database refuses; seconds per 1,000 records."""
    from persistence.factory import build_store

    store = build_store(settings)
    per_thousand, t0 = [], time.perf_counter()
    try:
        for n, command in enumerate(calls, start=1):
            store.apply(command)
            if n % 1000 == 0 or n == len(calls):
                per_thousand.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
    finally:
        store.close()
    return per_thousand


def floor(url: str, calls: list[Any]) -> float:
    """Seconds to upsert the records' JSON with executemany, BATCH rows and one commit per batch."""
    import psycopg
    from psycopg.types.json import Jsonb

    rows = [{"run_id": command.run_id, "seq": seq, "verb": command.kind, "args": Jsonb(command.to_json())}
            for seq, command in enumerate(calls)]
    with psycopg.connect(url, autocommit=True) as setup:
        setup.execute("CREATE SCHEMA bench_floor")
        setup.execute(FLOOR_TABLE)
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=False) as conn:
        for i in range(0, len(rows), BATCH):
            with conn.cursor() as cur:
                cur.executemany(FLOOR_UPSERT, rows[i:i + BATCH])
            conn.commit()
    seconds = time.perf_counter() - started
    with psycopg.connect(url) as conn:
        stored = (conn.execute("SELECT count(*) FROM bench_floor.spool_record").fetchone() or (0,))[0]
    if stored != len(rows):
        raise RuntimeError(f"floor stored {stored} rows, expected {len(rows)}")
    return seconds


def child(spec: dict[str, Any]) -> None:
    """In a fresh process: replay_spool(settings), then print seconds, the report and ru_maxrss."""
    import cProfile

    from config.log import configure_logging
    from config.settings import Settings
    from persistence.factory import replay_spool
    from persistence.postgres import PostgresStore  # noqa: F401  (imported before the clock and the RSS mark)

    with open(spec["log"], "a", encoding="utf-8") as log_file:
        configure_logging("INFO", json=True, stream=log_file)
        settings = Settings(database_url=spec["url"], enable_file_fallback=False, output_dir=Path(spec["output_dir"]))
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        profiler = cProfile.Profile() if spec.get("profile") else None
        if profiler:
            profiler.enable()
        started = time.perf_counter()
        report = replay_spool(settings, batch_size=BATCH)
        seconds = time.perf_counter() - started
        if profiler:
            profiler.disable()
            profiler.dump_stats(spec["profile"])
    print(json.dumps({"seconds": seconds, "report": report.as_dict(), "rss_before_kib": rss_before,
                      "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def replay(url: str, output_dir: Path, log: Path, profile: Path | None = None) -> dict[str, Any]:
    """Run ``child`` through the launcher and return its figures."""
    spec = {"url": url, "output_dir": str(output_dir), "log": str(log), "profile": str(profile) if profile else None}
    done = subprocess.run([sys.executable, "-c", LAUNCHER, sys.executable, "-m", "bench.replay", "--child",
                           json.dumps(spec)], cwd=APP_DIR, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"replay child exited {done.returncode}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def check(url: str, settings: Any, runs: int, cards: int) -> dict[str, Any]:
    """Row counts after the replay, the spool's backlog and dead letters; ``ok`` if all are as expected."""
    import psycopg

    from persistence.spool import Spool

    with psycopg.connect(url) as conn:
        total, completed, stages, stored_cards = conn.execute(COUNTS).fetchone() or (0, 0, 0, 0)
    queue = Spool(settings.spool_dir)
    found = {"runs": total, "completed": completed, "stage_rows": stages, "cards": stored_cards,
             "spool_left": queue.count(), "dead": sum(1 for _ in queue.dead())}
    expected = {"runs": runs, "completed": runs, "stage_rows": runs * 5, "cards": runs * cards,
                "spool_left": 0, "dead": 0}
    return {"found": found, "expected": expected, "ok": found == expected}


def measure(url: str, root: Path, records: int, profile: bool) -> dict[str, Any]:
    """Spool, replay (in a child), floor and check; every figure of the benchmark."""
    from config.settings import Settings
    from persistence.factory import build_breaker
    from persistence.spool import Spool

    outputs, report = sample_run()
    runs = records // RECORDS_PER_RUN
    calls = run_writes(outputs, report, runs)
    output_dir = root / "outputs"
    refused = Settings(database_url=refused_url(url), enable_file_fallback=False, output_dir=output_dir)
    spool_seconds = spool(refused, calls)
    spooled = Spool(refused.spool_dir).count()
    if spooled != len(calls):
        raise RuntimeError(f"{spooled} records in the spool, expected {len(calls)}")
    settings = Settings(database_url=url, enable_file_fallback=False, output_dir=output_dir)
    build_breaker(settings).reset("bench: the database is back")
    replayed = replay(url, output_dir, root / "replay.log")
    checked = check(url, settings, runs, len(report.cards))
    floor_seconds = floor(url, calls)
    profiled = ""
    if profile:
        # Another 2,000 records of new runs, replayed under cProfile (slower, so not the figures above).
        spool(refused, run_writes(outputs, report, 2000 // RECORDS_PER_RUN, prefix="profiled"))
        build_breaker(settings).reset("bench: the database is back")
        replay(url, output_dir, root / "replay.log", profile=root / "replay.prof")
        profiled = profile_text(str(root / "replay.prof"), 35)
    return {"records": len(calls), "runs": runs, "spool_seconds_per_1000": spool_seconds, "replay": replayed,
            "floor_seconds": floor_seconds, "check": checked, "profile": profiled}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the tables and one final JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000, help="spooled records (default 10,000)")
    parser.add_argument("--quick", action="store_true", help="1,000 records: a smoke run")
    parser.add_argument("--profile", action="store_true", help="also print cProfile of a 2,000-record replay")
    parser.add_argument("--server-url", help="PostgreSQL server for the throwaway database")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return 0
    records = 1000 if args.quick else args.records
    exit_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        root = Path(tmp)
        quiet_logging(root / "bench.log")
        with throwaway_database(server_url(args.server_url)) as url:
            m = measure(url, root, records, args.profile)

    replayed = m["replay"]
    applied = replayed["report"]["applied"]
    replay_rate = applied / replayed["seconds"]
    floor_rate = m["records"] / m["floor_seconds"]
    spool_total = sum(m["spool_seconds_per_1000"])
    print(f"{m['records']:,} records ({m['runs']:,} runs × {RECORDS_PER_RUN}), replayed in batches of {BATCH}\n")
    print_table(["writer", "records", "seconds", "records/s"], [
        ["spooling through build_store, database refused", m["records"], spool_total, m["records"] / spool_total],
        ["replay_spool(settings), fresh process", applied, replayed["seconds"], replay_rate],
        [f"floor: executemany upserts, {BATCH} per commit", m["records"], m["floor_seconds"], floor_rate],
    ])
    print(f"\nreplay / floor: {replay_rate / floor_rate:.3f}× (aim ≥ {AIM}×: "
          f"{'met' if replay_rate / floor_rate >= AIM else 'missed'})")
    print(f"replaying process: peak RSS {replayed['peak_rss_kib'] / 1024:.1f} MiB "
          f"({replayed['rss_before_kib'] / 1024:.1f} MiB after imports, before replaying)")
    print("spooling, seconds per successive 1,000 records: "
          + ", ".join(f"{s:.2f}" for s in m["spool_seconds_per_1000"]))
    check_ = m["check"]
    verdict = "as expected" if check_["ok"] else "EXPECTED " + str(check_["expected"])
    print(f"after replay: {check_['found']} — {verdict}")
    if m["profile"]:
        print(f"\ncProfile of replaying 2,000 records:\n{m['profile']}")
    print(json.dumps({"benchmark": "replay", "records": m["records"], "replay_records_per_s": round(replay_rate, 1),
                      "floor_records_per_s": round(floor_rate, 1), "ratio": round(replay_rate / floor_rate, 4),
                      "aim": AIM, "met": replay_rate / floor_rate >= AIM,
                      "replay": rounded(replayed["report"]), "peak_rss_mib": round(replayed["peak_rss_kib"] / 1024, 1),
                      "rss_before_replay_mib": round(replayed["rss_before_kib"] / 1024, 1),
                      "spool_records_per_s": round(m["records"] / spool_total, 1),
                      "no_duplicates": check_["ok"], "counts": check_["found"]}))
    return 0 if check_["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
