"""Database faults against real PostgreSQL: every run completes, and replay makes the database whole.

Each scenario drives the writes of a pipeline run (create_run, start_attempt, save_stage ×5,
complete_run) through ``build_store(settings)`` while a fault hits, checks that nothing raised and
the outputs sit in the spool (and files), recovers, replays, and then compares the database ROW BY
ROW with a fault-free run (all columns but timestamps and identity ids). Only DbTimeouts,
BreakerPolicy and RetryPolicy are shrunk; assertions are about states and outcomes, never durations.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from structlog.testing import capture_logs

from config.modes import Mode
from config.settings import Settings
from persistence.breaker import OPEN, BreakerPolicy
from persistence.factory import breaker_state, build_store, replay_spool, spool_backlog
from persistence.files import FileStore
from persistence.postgres import DbTimeouts, PostgresStore
from persistence.records import STAGE_FILES, FinalReport, OpportunityCard, RunRequest, StageResult
from persistence.retry import RetryPolicy
from persistence.spool import Spool
from tests.faultfixtures import fault_proxy, private_cluster, private_database_url  # noqa: F401
from tests.faultproxy import FaultProxy
from tests.known import known
from tests.pgcluster import PrivateCluster
from tests.pgfixtures import url_for_database

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parents[2]
RUN_ID = "resilience-run"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TIMEOUTS = DbTimeouts(connect_s=2, statement_s=2, lock_s=1, idle_in_transaction_s=5, deadline_s=2.5,
                      keepalives_idle_s=1, keepalives_interval_s=1, keepalives_count=2, tcp_user_timeout_s=3)
BREAKER = BreakerPolicy(consecutive_failures=2, window_size=20, min_calls=3, failure_rate=0.5,
                        slow_call_seconds=0.3, slow_call_rate=0.5, break_seconds=0.2, max_break_seconds=1.0,
                        break_jitter=0.1, probe_lease_seconds=10)
RETRY = RetryPolicy(attempts=2, total_seconds=4, first_wait=0.05, max_wait=0.1, jitter=0.02)
POLICIES: dict[str, Any] = {"timeouts": TIMEOUTS, "breaker_policy": BREAKER, "retry_policy": RETRY}
TABLES = (("PipelineRun", ("id",)), ("StageOutput", ("runId", "stageNumber")), ("OpportunityCard", ("runId", "number")))
MODES = [Mode.DATABASE_ONLY, Mode.DUAL_WRITE]

OUTPUTS: dict[int, dict[str, Any]] = {
    1: {"summary": "s", "core_mechanism": "m", "inspirations": [{"title": "t", "description": "d",
        "mechanism_type": "UNBUNDLED", "evidence": ["quote"]}]},
    2: {"signals": [{"id": "S1", "category": "c", "description": "d", "relevance": "r", "inspiration": 1}]},
    3: {"insights": [{"id": "I1", "title": "t", "description": "d", "transferability": "high", "signal_ids": ["S1"]}]},
    4: {"brand_id": "decathlon", "insights": [{"id": "B1", "title": "t", "description": "d", "brand_fit": "f",
        "insight_ids": ["I1"]}]},
    5: {"opportunities": [{"number": i, "title": f"Opportunity {i}", "innovation_type": "Premium", "description": "d",
        "actionability": ["a", "b", "c"], "follow_up_prompts": ["p", "q"]} for i in range(1, 6)]},
}
REPORT = FinalReport(f"# Innovation Intelligence Report\n\nBrand: decathlon · run {RUN_ID}\n",
                     tuple(OpportunityCard(i, f"Opportunity {i}", f"## Opportunity {i}\n\ncontent")
                           for i in range(1, 6)))


def request(run_id: str) -> RunRequest:
    return RunRequest(run_id=run_id, company_id="decathlon", user_id="user-1", document_url="https://blob/doc.pdf")


def stage_result(n: int) -> StageResult:
    started = T0 + timedelta(minutes=n)
    return StageResult(n, OUTPUTS[n], started, started + timedelta(seconds=n, milliseconds=125))


def drive_run(store: Any, run_id: str = RUN_ID, after_stage: Callable[[int], None] | None = None) -> None:
    """The RunStore writes of one pipeline run, as the runner makes them."""
    store.create_run(request(run_id))
    store.start_attempt(run_id, 1)
    for n in range(1, 6):
        store.save_stage(run_id, 1, stage_result(n))
        if after_stage is not None:
            after_stage(n)
    store.complete_run(run_id, 1, REPORT)


def settings_for(tmp_path: Path, url: str, mode: Mode = Mode.DATABASE_ONLY) -> Settings:
    return Settings(database_url=url, enable_file_fallback=mode is Mode.DUAL_WRITE, output_dir=tmp_path / "out")


def rows(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of the run tables, without timestamp and identity columns, in key order."""
    out: dict[str, list[dict[str, Any]]] = {}
    with psycopg.connect(url, connect_timeout=10) as conn:
        for table, keys in TABLES:
            skipped = {name for name, in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                "AND (data_type LIKE 'timestamp%%' OR is_identity = 'YES')", (table,))}
            cur = conn.execute(sql.SQL("SELECT * FROM {} ORDER BY {}").format(
                sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, keys))))
            names = [d.name for d in known(cur.description)]
            out[table] = [{k: v for k, v in zip(names, row, strict=True) if k not in skipped} for row in cur.fetchall()]
    return out


def run_key(table: str) -> str:
    """The column that names the run in ``table``."""
    return "id" if table == "PipelineRun" else "runId"


def rows_of_run(table_rows: dict[str, list[dict[str, Any]]], run_id: str) -> dict[str, list[dict[str, Any]]]:
    """Only ``run_id``'s rows."""
    return {t: [r for r in rs if r[run_key(t)] == run_id] for t, rs in table_rows.items()}


def renamed(table_rows: dict[str, list[dict[str, Any]]], run_id: str) -> dict[str, list[dict[str, Any]]]:
    """The reference rows as they would be for ``run_id``."""
    return {t: [{**r, run_key(t): run_id} for r in rs] for t, rs in table_rows.items()}


@pytest.fixture(scope="session")
def reference_rows(pg_server_url: str, pg_template: str) -> Iterator[dict[str, list[dict[str, Any]]]]:
    """The database content of the same run with no fault at all (production policies)."""
    name = f"reference_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name),
                                                                       sql.Identifier(pg_template)))
    url = url_for_database(pg_server_url, name)
    out = Path(f"/tmp/reference-{name}")
    try:
        settings = Settings(database_url=url, enable_file_fallback=False, output_dir=out)
        store = build_store(settings)
        drive_run(store)
        store.close()
        assert spool_backlog(settings) == 0
        yield rows(url)
    finally:
        shutil.rmtree(out, ignore_errors=True)
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def replay_until_drained(settings: Settings, deadline_s: float = 90) -> list[Any]:
    """Replay as cron would, again after each break, until the spool is empty."""
    reports = []
    give_up = time.monotonic() + deadline_s
    while True:
        report = replay_spool(settings, **POLICIES)
        reports.append(report)
        if report.remaining == 0 and not report.busy:
            return reports
        assert report.dead == 0, report
        assert time.monotonic() < give_up, f"the spool did not drain: {report}"
        time.sleep(0.1)  # the breaker's break is shrunk to fractions of a second


def assert_spooled_and_finished(settings: Settings, mode: Mode) -> None:
    """The run finished without the database: its writes wait in the spool (and files)."""
    pending = [r.kind for r in Spool(settings.spool_dir).pending(RUN_ID)]
    assert pending and pending[-1] == "complete_run"
    if mode is Mode.DUAL_WRITE:
        state = known(FileStore(settings.output_dir, stages_in_run_json=False).get_run(RUN_ID))  # the mirror
        assert state.status == "COMPLETED" and state.completed_stages == (1, 2, 3, 4, 5)


def assert_files_match_rows(settings: Settings, url: str) -> None:
    """DUAL_WRITE: the file mirror says what the database says."""
    folder = settings.output_dir / RUN_ID
    run = json.loads((folder / "run.json").read_text())
    with psycopg.connect(url) as conn:
        status, stage, attempt, markdown, *columns = known(conn.execute(
            'SELECT status, "currentStage", attempt, "fullReportMarkdown", "stage1Output", "stage2Output", '
            '"stage3Output", "stage4Output" FROM "PipelineRun" WHERE id = %s', (RUN_ID,)
        ).fetchone())
        outputs: dict[int, Any] = dict(conn.execute(
            'SELECT "stageNumber", output FROM "StageOutput" WHERE "runId" = %s', (RUN_ID,)).fetchall())
    assert (run["status"], run["current_stage"], run["attempt"]) == (status, stage, attempt)
    assert (folder / "report.md").read_text() == markdown
    for n in range(1, 6):
        mirrored = json.loads((folder / STAGE_FILES[n]).read_text())
        assert mirrored == outputs[n]
        if n < 5:
            assert mirrored == columns[n - 1]


def finish_scenario(settings: Settings, url: str, mode: Mode, reference: dict[str, Any]) -> None:
    replay_until_drained(settings)
    assert spool_backlog(settings) == 0
    assert rows(url) == reference
    if mode is Mode.DUAL_WRITE:
        assert_files_match_rows(settings, url)


# -- the five faults --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_outputs_survive_a_database_refused_before_the_run(tmp_path: Path, private_cluster: PrivateCluster,  # noqa: F811 (fixtures imported from tests.faultfixtures)
                                                           private_database_url: str, reference_rows: Any,  # noqa: F811 (fixtures imported from tests.faultfixtures)
                                                           mode: Mode) -> None:
    settings = settings_for(tmp_path, private_database_url, mode)
    private_cluster.stop()
    store = build_store(settings, **POLICIES)
    drive_run(store)
    store.close()
    assert breaker_state(settings) == OPEN
    assert spool_backlog(settings) == 8
    assert_spooled_and_finished(settings, mode)
    private_cluster.start()
    finish_scenario(settings, private_database_url, mode, reference_rows)


@pytest.mark.parametrize("mode", MODES)
def test_outputs_survive_database_death_mid_run(tmp_path: Path, private_cluster: PrivateCluster,  # noqa: F811 (fixtures imported from tests.faultfixtures)
                                                private_database_url: str, reference_rows: Any, mode: Mode) -> None:  # noqa: F811 (fixtures imported from tests.faultfixtures)
    settings = settings_for(tmp_path, private_database_url, mode)
    store = build_store(settings, **POLICIES)
    drive_run(store, after_stage=lambda n: private_cluster.kill() if n == 2 else None)
    store.close()
    assert_spooled_and_finished(settings, mode)
    private_cluster.start()
    assert len(rows(private_database_url)["StageOutput"]) == 2  # stages 1-2 made it before the crash
    finish_scenario(settings, private_database_url, mode, reference_rows)


@pytest.mark.parametrize("mode", MODES)
def test_a_blackholed_database_does_not_hang_the_run(tmp_path: Path, fault_proxy: FaultProxy, database_url: str,  # noqa: F811 (fixtures imported from tests.faultfixtures)
                                                     reference_rows: Any, mode: Mode) -> None:
    settings = settings_for(tmp_path, fault_proxy.url_for(database_url), mode)
    store = build_store(settings, **POLICIES)
    with capture_logs() as logs:
        drive_run(store, after_stage=lambda n: fault_proxy.blackhole() if n == 2 else None)
    store.close()
    assert_spooled_and_finished(settings, mode)
    assert any(e["event"] == "breaker_opened" for e in logs)
    fault_proxy.passthrough()
    finish_scenario(settings, database_url, mode, reference_rows)


def test_a_database_blackholed_before_the_run_costs_one_connect_timeout(tmp_path: Path, fault_proxy: FaultProxy,  # noqa: F811 (fixtures imported from tests.faultfixtures)
                                                                        database_url: str, reference_rows: Any) -> None:
    settings = settings_for(tmp_path, fault_proxy.url_for(database_url))
    fault_proxy.blackhole()
    accepted = fault_proxy.accepted
    store = build_store(settings, **POLICIES)
    with capture_logs() as logs:
        drive_run(store)
    store.close()
    # No retry of the timeout and no second attempt: the first one opens the breaker.
    assert fault_proxy.accepted - accepted == 1
    opened = [e["reason"] for e in logs if e["event"] == "breaker_opened"]
    assert opened and opened[0].startswith("connect_timeout")
    assert any(e["event"] == "store_not_retried" and e["reason"] == "connect_timeout" for e in logs)
    assert not any(e["event"] == "store_retry" for e in logs)
    assert_spooled_and_finished(settings, Mode.DATABASE_ONLY)
    fault_proxy.passthrough()
    finish_scenario(settings, database_url, Mode.DATABASE_ONLY, reference_rows)


@pytest.mark.parametrize("mode", MODES)
def test_a_slow_database_trips_the_breaker(tmp_path: Path, fault_proxy: FaultProxy, database_url: str,  # noqa: F811 (fixtures imported from tests.faultfixtures)
                                           reference_rows: Any, mode: Mode) -> None:
    settings = settings_for(tmp_path, fault_proxy.url_for(database_url), mode)
    fault_proxy.latency(80)
    store = build_store(settings, **POLICIES)
    with capture_logs() as logs:
        drive_run(store)
    store.close()
    opened = [e["reason"] for e in logs if e["event"] == "breaker_opened"]
    assert opened and opened[0].startswith("slow_call_rate")
    assert_spooled_and_finished(settings, mode)
    fault_proxy.passthrough()
    finish_scenario(settings, database_url, mode, reference_rows)


@pytest.mark.parametrize("mode", MODES)
def test_a_dropped_column_trips_the_breaker_at_once(tmp_path: Path, database_url: str, reference_rows: Any,
                                                    mode: Mode) -> None:
    settings = settings_for(tmp_path, database_url, mode)

    def alter(statement: str) -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(statement)

    store = build_store(settings, **POLICIES)
    with capture_logs() as logs:
        drive_run(store, after_stage=lambda n: alter('ALTER TABLE "PipelineRun" DROP COLUMN "stage3Output"')
                  if n == 2 else None)
    store.close()
    opened = [e["reason"] for e in logs if e["event"] == "breaker_opened"]
    assert opened and opened[0].startswith("schema_mismatch")
    retries = [e for e in logs if e["event"] == "store_retry"]
    assert retries == []  # a schema mismatch is not worth asking again
    assert_spooled_and_finished(settings, mode)
    alter('ALTER TABLE "PipelineRun" ADD COLUMN "stage3Output" jsonb')  # the operator's fix
    finish_scenario(settings, database_url, mode, reference_rows)


# -- replay guarantees ------------------------------------------------------------------------


def spool_runs_while_refused(tmp_path: Path, proxy: FaultProxy, database_url: str, run_ids: list[str]) -> Settings:
    settings = settings_for(tmp_path, proxy.url_for(database_url))
    proxy.reset()
    store = build_store(settings, **POLICIES)
    for run_id in run_ids:
        drive_run(store, run_id)
    store.close()
    assert spool_backlog(settings) == 8 * len(run_ids)
    proxy.passthrough()
    return settings


def test_replaying_the_same_records_twice_writes_nothing_twice(tmp_path: Path, fault_proxy: FaultProxy,  # noqa: F811 (fixtures imported from tests.faultfixtures)
                                                              database_url: str, reference_rows: Any) -> None:
    settings = spool_runs_while_refused(tmp_path, fault_proxy, database_url, [RUN_ID])
    backup = tmp_path / "backup"
    shutil.copytree(settings.spool_dir, backup)
    replay_until_drained(settings)
    assert rows(database_url) == reference_rows
    # As if every delete had been lost to a SIGKILL right after the database confirmed it.
    for record in backup.glob("0*.json"):
        shutil.copy2(record, settings.spool_dir / record.name)
    assert spool_backlog(settings) == 8
    reports = replay_until_drained(settings)
    assert sum(r.applied for r in reports) == 8 and sum(r.dead for r in reports) == 0
    assert rows(database_url) == reference_rows


REPLAYER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from config.settings import Settings
    from persistence.breaker import BreakerPolicy
    from persistence.factory import replay_spool
    settings = Settings(database_url=sys.argv[1], enable_file_fallback=False, output_dir=Path(sys.argv[2]))
    applied = dead = 0
    while True:
        report = replay_spool(settings, breaker_policy=BreakerPolicy(break_seconds=0.1, max_break_seconds=0.5))
        applied += report.applied
        dead += report.dead
        if report.remaining == 0 and not report.busy:
            break
        time.sleep(0.01)
    print("RESULT " + json.dumps({"applied": applied, "dead": dead}))
""")


def test_two_processes_replaying_at_once_apply_each_record_once(tmp_path: Path, fault_proxy: FaultProxy,  # noqa: F811 (fixtures imported from tests.faultfixtures)
                                                               database_url: str, reference_rows: Any) -> None:
    run_ids = [f"run-{i}" for i in range(6)]
    settings = spool_runs_while_refused(tmp_path, fault_proxy, database_url, run_ids)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", REPLAYER, database_url, str(settings.output_dir)], cwd=REPO,
                              env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        results.append(json.loads([line for line in out.splitlines() if line.startswith("RESULT ")][-1][7:]))
    assert sum(r["applied"] for r in results) == 48 and sum(r["dead"] for r in results) == 0
    assert spool_backlog(settings) == 0
    got = rows(database_url)
    assert [len(got[t]) for t, _ in TABLES] == [6, 30, 30]
    for run_id in run_ids:
        assert rows_of_run(got, run_id) == renamed(reference_rows, run_id)


CHILD_WRITE = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from config.settings import Settings
    from persistence.factory import breaker_state, build_store, spool_backlog
    from persistence.records import RunRequest
    settings = Settings(database_url=sys.argv[1], enable_file_fallback=False, output_dir=Path(sys.argv[2]))
    store = build_store(settings)
    created = store.create_run(RunRequest("child-run", "decathlon", "user-2", "https://blob/other.pdf"))
    print("RESULT " + json.dumps({"created": created, "state": breaker_state(settings),
                                  "backlog": spool_backlog(settings)}))
""")


def test_a_fresh_process_skips_a_database_another_process_found_dead(tmp_path: Path, fault_proxy: FaultProxy,  # noqa: F811 (fixtures imported from tests.faultfixtures)
                                                                     database_url: str) -> None:
    long_break = BreakerPolicy(consecutive_failures=2, break_seconds=600, break_jitter=0.0)
    settings = settings_for(tmp_path, fault_proxy.url_for(database_url))
    fault_proxy.reset()
    store = build_store(settings, timeouts=TIMEOUTS, breaker_policy=long_break, retry_policy=RETRY)
    drive_run(store)
    store.close()
    assert breaker_state(settings) == OPEN
    connections_before = fault_proxy.accepted
    out = subprocess.run([sys.executable, "-c", CHILD_WRITE, known(settings.database_url), str(settings.output_dir)],
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                         check=True, timeout=60)
    result = json.loads([line for line in out.stdout.splitlines() if line.startswith("RESULT ")][-1][7:])
    assert result == {"created": True, "state": OPEN, "backlog": 9}
    assert fault_proxy.accepted == connections_before  # it never even tried to connect


def test_dual_write_never_grants_on_the_files_an_attempt_the_database_may_have_granted(
        tmp_path: Path, fault_proxy: FaultProxy, database_url: str) -> None:  # noqa: F811
    # A dispatcher claimed "known" in PostgreSQL (attempt 1) and died before its mirror write (or
    # the disk was full): the files still say QUEUED. During the next outage the file mirror must
    # not hand attempt 1 out again: two processes would run the same attempt (the chaos suite saw
    # stage 1 run twice under one attempt). A run accepted during the outage still runs on files.
    settings = settings_for(tmp_path, fault_proxy.url_for(database_url), Mode.DUAL_WRITE)
    store = build_store(settings, **POLICIES)
    try:
        store.create_run(request("known"))
        direct = PostgresStore(database_url)
        try:
            claimed = direct.claim("known", "host-gone/1", 60)  # the database's grant the mirror never saw
        finally:
            direct.close()
        assert claimed is not None and claimed.attempt == 1
        fault_proxy.reset()  # the outage: every connection refused
        store.create_run(request("accepted-in-outage"))  # journalled in the spool, mirrored in files
        claims = store.claim_next("host/2", 60, 5)
        assert [(c.run_id, c.attempt) for c in claims] == [("accepted-in-outage", 1)]
        assert store.claim("known", "host/2", 60) is None
    finally:
        store.close()
