"""Per-stage write latency of each persistence mode, as multiples of floors measured in the same run.

``python -m bench.store_writes [--writes 500] [--quick] [--profile] [--server-url URL]``

Every write is ``save_stage`` of the offline engine's real stage-5 output on the sample document
(about 10 KB of JSON), spread over runs of five stages each, so every write creates a new stage
row or file, as a real run does. Modes and floors take turns in rounds, so disk and server noise
falls on all of them alike:

    FILE_ONLY       FileStore                       floor: raw durable file write
    DATABASE_ONLY   build_store (ResilientStore)    floor: raw psycopg upsert
    DUAL_WRITE      build_store (files + database)  floor: raw upsert + raw file write

raw upsert       INSERT … ON CONFLICT DO UPDATE of the same jsonb into a one-table scratch schema,
                 on one open connection, autocommit off, one commit per write.
raw file write   the same bytes FileStore writes: temp file, write, fsync, rename, fsync folder.

The "parts" table times the pieces a DATABASE_ONLY write is made of, each alone, so a missed aim
says where the time goes; ``--profile`` adds cProfile's view of the store writes.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.scratch import (
    exit_on_sigterm,
    percentile,
    print_table,
    profile_text,
    quiet_logging,
    rounded,
    sample_run,
    server_url,
    throwaway_database,
)

FLOOR_SCHEMA = "CREATE SCHEMA bench_floor"
FLOOR_TABLE = """
CREATE TABLE bench_floor.stage_output (
    run_id text NOT NULL,
    stage integer NOT NULL,
    output jsonb NOT NULL,
    PRIMARY KEY (run_id, stage)
)
"""
FLOOR_UPSERT = """
INSERT INTO bench_floor.stage_output (run_id, stage, output) VALUES (%(run_id)s, %(stage)s, %(output)s)
ON CONFLICT (run_id, stage) DO UPDATE SET output = EXCLUDED.output
"""
# Issue 8's aims (p50): DATABASE_ONLY ≤ 1.3× the raw upsert and ≤ 1.1× the contract's own writes
# done raw in one statement; DUAL_WRITE ≤ 1.3× raw upsert + raw file write.
AIMS = {"DATABASE_ONLY": 1.3, "DUAL_WRITE": 1.3}
CONTRACT_AIM = 1.1
# The contract's own writes for one stage (the "StageOutput" row and the run row's stage column),
# raw: one autocommit statement, no fence, no timings, no sequence guard.
CONTRACT_STATEMENT = """
WITH stage_row AS (
    INSERT INTO "StageOutput" ("runId", "stageNumber", output, attempt)
    VALUES (%(run_id)s, %(stage)s, %(output)s, 1)
    ON CONFLICT ("runId", "stageNumber") DO UPDATE SET output = EXCLUDED.output
    RETURNING 1
)
UPDATE "PipelineRun"
SET "stage1Output" = CASE WHEN %(stage)s = 1 THEN %(output)s ELSE "stage1Output" END,
    "stage2Output" = CASE WHEN %(stage)s = 2 THEN %(output)s ELSE "stage2Output" END,
    "stage3Output" = CASE WHEN %(stage)s = 3 THEN %(output)s ELSE "stage3Output" END,
    "stage4Output" = CASE WHEN %(stage)s = 4 THEN %(output)s ELSE "stage4Output" END
WHERE id = %(run_id)s
"""
STARTED = datetime(2026, 1, 1, tzinfo=UTC)
Write = Callable[[str, int], None]  # (run_id, stage) -> one timed write


class RawFile:
    """The durable-write floor: write + fsync + rename + fsync of the folder, nothing else."""

    def __init__(self, root: Path, data: bytes) -> None:
        self.root = root
        self.data = data

    def prepare(self, run_id: str) -> None:
        """Create the run's folder (untimed, as FileStore's create_run does)."""
        (self.root / run_id).mkdir(parents=True)

    def write(self, run_id: str, stage: int) -> None:
        """Replace <run_id>/stage<N>.json durably."""
        folder = self.root / run_id
        target, tmp = folder / f"stage{stage}.json", folder / f".stage{stage}.json.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, self.data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _result(stage: int, output: dict[str, Any]) -> Any:
    from persistence.records import StageResult

    return StageResult(stage, output, STARTED, STARTED + timedelta(milliseconds=1200))


def _store_writer(store: Any, output: dict[str, Any]) -> tuple[Callable[[str], None], Write]:
    """(prepare a run, write one stage) for a RunStore: create_run + start_attempt, then save_stage."""
    from persistence.records import RunRequest

    results = {stage: _result(stage, output) for stage in (1, 2, 3, 4, 5)}

    def prepare(run_id: str) -> None:
        store.create_run(RunRequest(run_id, "mccormick-usa", "bench", "bench://sample"))
        store.start_attempt(run_id, 1)

    return prepare, lambda run_id, stage: store.save_stage(run_id, 1, results[stage])


def _floor_upsert(url: str, output: dict[str, Any]) -> tuple[Any, Write]:
    import psycopg
    from psycopg.types.json import Jsonb

    with psycopg.connect(url, autocommit=True) as setup:
        setup.execute(FLOOR_SCHEMA)
        setup.execute(FLOOR_TABLE)
    conn = psycopg.connect(url, autocommit=False)

    def write(run_id: str, stage: int) -> None:
        conn.execute(FLOOR_UPSERT, {"run_id": run_id, "stage": stage, "output": Jsonb(output)})
        conn.commit()

    return conn, write


def measure(writers: dict[str, tuple[Callable[[str], None], Write]], writes: int,
            rounds: int) -> dict[str, list[float]]:
    """Seconds per write for each writer; writers take turns, ``writes / rounds`` writes per turn."""
    runs = max(1, writes // 5)
    plan = [(f"r{i:05d}", stage) for i in range(runs) for stage in (1, 2, 3, 4, 5)]
    for name, (prepare, write) in writers.items():
        prepare(f"{name}-warmup")  # opens the connection, creates folders and the breaker file
        write(f"{name}-warmup", 1)
        for i in range(runs):
            prepare(f"{name}-r{i:05d}")
    seconds: dict[str, list[float]] = {name: [] for name in writers}
    chunk = -(-len(plan) // rounds)
    names = list(writers)
    for r in range(rounds):
        part = plan[r * chunk:(r + 1) * chunk]
        for name in names[r % len(names):] + names[:r % len(names)]:
            write = writers[name][1]
            for run, stage in part:
                t0 = time.perf_counter()
                write(f"{name}-{run}", stage)
                seconds[name].append(time.perf_counter() - t0)
    return seconds


def measure_parts(url: str, state_dir: Path, output: dict[str, Any], count: int) -> dict[str, list[float]]:
    """Each piece of a DATABASE_ONLY write alone, ``count`` times: the SQL, the store, the wrappers."""
    import psycopg

    from persistence import atomic
    from persistence.breaker import BreakerPolicy, CircuitBreaker
    from persistence.postgres import DbTimeouts, PostgresStore
    from persistence.postgres.connection import Watchdog
    from persistence.retry import RetryPolicy, call_with_retry
    from persistence.spool import Spool

    database = PostgresStore(url, DbTimeouts())
    prepare, write = _store_writer(database, output)
    raw = psycopg.connect(url, autocommit=False)
    unprepared = psycopg.connect(url, autocommit=False, **DbTimeouts().connect_kwargs())
    breaker = CircuitBreaker(state_dir / "parts-breaker", BreakerPolicy())
    for _ in range(BreakerPolicy().window_size):
        _guard(breaker)  # a full sliding window, as in steady use
    state = json.loads(breaker.path.read_text())
    spool = Spool(state_dir / "parts-spool")
    conn = database._db._connection(database._db._slot())  # the watchdog needs a live connection to point at
    watchdog = Watchdog()
    parts: dict[str, Callable[[str, int], None]] = {
        "raw: the verb's upsert into StageOutput only": lambda run, stage: _raw_sql(raw, run, stage, output, False),
        "raw: the verb's SQL (lock run, upsert, run-row copy)": lambda run, stage: _raw_sql(raw, run, stage, output),
        "raw: the same on the store's connect options": lambda run, stage: _raw_sql(unprepared, run, stage, output),
        "PostgresStore.save_stage alone": write,
        "breaker guard, closed (acquire + record)": lambda run, stage: _guard(breaker),
        "breaker.json rewrite alone (atomic.write_json)": lambda run, stage: atomic.write_json(
            state_dir / "parts-state" / "breaker.json", state),
        "watchdog arm + disarm": lambda run, stage: watchdog.disarm(watchdog.arm(conn, 15.0)),
        "spool.has_pending, empty spool": lambda run, stage: None if spool.has_pending(run) else None,
        "tenacity controller + call": lambda run, stage: None if call_with_retry(
            RetryPolicy(), time.time, verb="save_stage") else None,
    }
    seconds: dict[str, list[float]] = {name: [] for name in parts}
    try:
        for p, (name, part) in enumerate(parts.items()):
            runs = [f"parts{p}-r{i:05d}" for i in range(-(-count // 5))]
            for run in runs:
                prepare(run)
            for i in range(count):
                t0 = time.perf_counter()
                part(runs[i // 5], i % 5 + 1)
                seconds[name].append(time.perf_counter() - t0)
    finally:
        raw.close()
        unprepared.close()
        database.close()
    return seconds


def _raw_sql(conn: Any, run_id: str, stage: int, output: dict[str, Any], whole: bool = True) -> None:
    """save_stage's statements (persistence.postgres_sql) in one transaction, straight on psycopg."""
    from psycopg.types.json import Jsonb

    from persistence.postgres import sql as q

    result = _result(stage, output)
    params = {"run_id": run_id, "attempt": 1, "stage": stage, "output": Jsonb(output),
              "started_at": result.started_at, "completed_at": result.completed_at,
              "duration_ms": result.duration_ms, "timing": Jsonb({"duration_ms": result.duration_ms}),
              "seq": q.write_seq(1, q.SEQ_PER_STAGE * stage)}
    if whole:
        conn.execute(q.LOCK_RUN, params)
    conn.execute(q.UPSERT_STAGE_OUTPUT, params)
    if whole:
        conn.execute(q.SAVE_STAGE_ON_RUN, params)
    conn.commit()


def _contract_writer(url: str, output: dict[str, Any]) -> tuple[Any, Callable[[str], None], Write]:
    """The contract's writes raw in one autocommit statement: (connection, prepare a run, write)."""
    import psycopg
    from psycopg.types.json import Jsonb

    conn = psycopg.connect(url, autocommit=True)

    def prepare(run_id: str) -> None:
        conn.execute('INSERT INTO "PipelineRun" (id, "userId", "companyId", "documentUrl", status) '
                     "VALUES (%s, 'bench', 'mccormick-usa', 'bench://sample', 'PROCESSING')", (run_id,))

    def write(run_id: str, stage: int) -> None:
        conn.execute(CONTRACT_STATEMENT, {"run_id": run_id, "stage": stage, "output": Jsonb(output)})

    return conn, prepare, write


def _guard(breaker: Any) -> None:
    with breaker.guard():
        pass


def profile_store(name: str, write: Write, prepare: Callable[[str], None], count: int) -> str:
    """cProfile of ``count`` more store writes (new runs), as text."""
    runs = [f"{name}-prof{i:04d}" for i in range(-(-count // 5))]
    for run in runs:
        prepare(run)
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(count):
        write(runs[i // 5], i % 5 + 1)
    profiler.disable()
    return profile_text(profiler)


def _run(url: str, root: Path, output: dict[str, Any], file_bytes: bytes, writes: int, rounds: int,
         profile: bool) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, str]]:
    """Build the three stores and two floors over ``url`` and ``root``, then time them."""
    from config.settings import Settings
    from persistence.factory import build_store

    stores = {
        "FILE_ONLY": build_store(Settings(enable_database_writes=False, output_dir=root / "file_only")),
        "DATABASE_ONLY": build_store(Settings(database_url=url, enable_file_fallback=False,
                                              output_dir=root / "database_only")),
        "DUAL_WRITE": build_store(Settings(database_url=url, output_dir=root / "dual_write")),
    }
    floor_conn, floor_write = _floor_upsert(url, output)
    contract_conn, contract_prepare, contract_write = _contract_writer(url, output)
    raw_file = RawFile(root / "raw_file", file_bytes)
    writers = {name: _store_writer(store, output) for name, store in stores.items()}
    writers["raw upsert"] = (lambda run_id: None, floor_write)
    writers["raw contract statement"] = (contract_prepare, contract_write)
    writers["raw file write"] = (raw_file.prepare, raw_file.write)
    try:
        seconds = measure(writers, writes, rounds)
        parts = measure_parts(url, root, output, writes)
        profiles = {name: profile_store(name, writers[name][1], writers[name][0], min(writes, 200))
                    for name in ("DATABASE_ONLY", "DUAL_WRITE")} if profile else {}
    finally:
        floor_conn.close()
        contract_conn.close()
        for store in stores.values():
            store.close()
    return seconds, parts, profiles


def _ms(values: list[float]) -> dict[str, float]:
    return {"p50_ms": percentile(values, 50) * 1000, "p99_ms": percentile(values, 99) * 1000,
            "mean_ms": sum(values) / len(values) * 1000}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the tables and one final JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=500, help="timed writes per mode and floor (default 500)")
    parser.add_argument("--quick", action="store_true", help="50 writes: a smoke run of a few seconds")
    parser.add_argument("--profile", action="store_true", help="also print cProfile of the store writes")
    parser.add_argument("--server-url", help="PostgreSQL server for the throwaway database")
    args = parser.parse_args(argv)
    writes = 50 if args.quick else args.writes
    rounds = 2 if args.quick else 10
    exit_on_sigterm()

    from persistence import atomic

    output = sample_run()[0][5]
    file_bytes = atomic.dumps(output)
    with tempfile.TemporaryDirectory(prefix="bench-writes-") as tmp:
        root = Path(tmp)
        quiet_logging(root / "bench.log")
        with throwaway_database(server_url(args.server_url)) as url:
            seconds, parts, profiles = _run(url, root, output, file_bytes, writes, rounds, args.profile)

    figures = {name: _ms(values) for name, values in seconds.items()}
    upsert, file = figures["raw upsert"], figures["raw file write"]
    floors = {"DATABASE_ONLY": (upsert, "raw upsert"), "FILE_ONLY": (file, "raw file write"),
              "DUAL_WRITE": ({k: upsert[k] + file[k] for k in upsert}, "raw upsert + raw file write")}
    ratios: dict[str, dict[str, Any]] = {mode: {"floor": floor_name, "p50": figures[mode]["p50_ms"] / floor["p50_ms"],
                     "p99": figures[mode]["p99_ms"] / floor["p99_ms"], "aim": AIMS.get(mode)}
              for mode, (floor, floor_name) in floors.items()}
    for mode, aim in AIMS.items():
        ratios[mode]["met"] = ratios[mode]["p50"] <= aim
    contract = figures["raw contract statement"]
    ratios["DATABASE_ONLY vs contract"] = {
        "floor": "raw contract statement", "p50": figures["DATABASE_ONLY"]["p50_ms"] / contract["p50_ms"],
        "p99": figures["DATABASE_ONLY"]["p99_ms"] / contract["p99_ms"], "aim": CONTRACT_AIM}
    ratios["DATABASE_ONLY vs contract"]["met"] = ratios["DATABASE_ONLY vs contract"]["p50"] <= CONTRACT_AIM

    print(f"save_stage of {len(json.dumps(output)):,} bytes of JSON ({len(file_bytes):,} as the file), "
          f"{writes} timed writes each, {rounds} rounds\n")
    print_table(["writer", "p50 ms", "p99 ms", "mean ms"],
                [[n, f["p50_ms"], f["p99_ms"], f["mean_ms"]] for n, f in figures.items()])
    print()
    print_table(["mode", "floor", "p50 ×", "p99 ×", "aim (p50)", "met"],
                [[m, r["floor"], r["p50"], r["p99"], f"≤ {r['aim']}" if r["aim"] else "",
                  {True: "yes", False: "no"}.get(bool(r["met"]), "") if "met" in r else ""] for m, r in ratios.items()])
    part_figures = {name: _ms(values) for name, values in parts.items()}
    print("\nparts of a DATABASE_ONLY write, each timed alone:\n")
    print_table(["part", "p50 ms", "p99 ms", "mean ms"],
                [[n, f["p50_ms"], f["p99_ms"], f["mean_ms"]] for n, f in part_figures.items()])
    for name, text in profiles.items():
        print(f"\ncProfile of {name} save_stage:\n{text}")
    print(json.dumps({"benchmark": "store_writes", "writes": writes, "payload_bytes": len(json.dumps(output)),
                      "latency_ms": {n: rounded(f) for n, f in figures.items()},
                      "ratios": {m: rounded(r) for m, r in ratios.items()},
                      "parts_ms": {n: rounded(f) for n, f in part_figures.items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
