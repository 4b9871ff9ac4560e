"""PostgresStore against real PostgreSQL: every verb, idempotency, fencing, the sequence guard,
parity with FileStore, and errors translated into the runner's tree."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.errors import Conflict, SchemaMismatch, StoreError, StoreUnavailable, Superseded
from persistence.commands import RecordUsage
from persistence.files import FileStore
from persistence.postgres import DbTimeouts, PostgresStore, is_transient
from persistence.postgres.connection import APPLICATION_NAME
from persistence.records import (
    FinalReport,
    OpportunityCard,
    RunErrorInfo,
    RunRequest,
    RunState,
    RunStatus,
    RunUsage,
    StageResult,
)
from tests.known import known
from tests.pgfixtures import wait_for_backends

FAST = DbTimeouts(connect_s=2, statement_s=5, lock_s=2, deadline_s=5)
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
REQUEST = RunRequest(run_id="run-1", company_id="mccormick-usa", user_id="user-1",
                     document_url="https://x.public.blob.vercel-storage.com/doc.pdf")


def stage(n: int, attempt: int = 1) -> StageResult:
    start = T0 + timedelta(minutes=n, seconds=attempt)
    return StageResult(n, {"stage": n, "attempt": attempt, "items": [{"k": "é"}]}, start,
                       start + timedelta(milliseconds=250 * n))


def report(attempt: int = 1) -> FinalReport:
    cards = tuple(OpportunityCard(i, f"Opportunity {i} (attempt {attempt})", f"## Card {i}\n") for i in range(1, 6))
    return FinalReport(f"# Innovation Intelligence Report\n\nattempt {attempt}\n", cards)


ERROR = RunErrorInfo(stage=3, code="STAGE_FAILED", message="stage 3 returned no insights")


@pytest.fixture
def store(database_url: str) -> Iterator[PostgresStore]:
    db = PostgresStore(database_url, FAST)
    yield db
    db.close()


def query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def run_to_completion(db: Any, run_id: str = "run-1", attempt: int = 1) -> None:
    db.start_attempt(run_id, attempt)
    for n in range(1, 6):
        db.save_stage(run_id, attempt, stage(n, attempt))
    db.complete_run(run_id, attempt, report(attempt))


def test_create_run_is_idempotent_for_the_same_request(store: PostgresStore) -> None:
    assert store.create_run(REQUEST) is True
    assert store.create_run(REQUEST) is False
    state = known(store.get_run("run-1"))
    assert (state.request, state.status, state.attempt, state.current_stage) == (REQUEST, RunStatus.QUEUED, 0, None)


@pytest.mark.parametrize("field", ["company_id", "user_id", "document_url"])
def test_create_run_with_another_payload_is_a_conflict(store: PostgresStore, field: str) -> None:
    store.create_run(REQUEST)
    other = RunRequest(**{**REQUEST.as_dict(), field: "something-else"})
    with pytest.raises(Conflict):
        store.create_run(other)
    assert known(store.get_run("run-1")).request == REQUEST


def test_unknown_run_reads_as_none_and_no_outputs(store: PostgresStore) -> None:
    assert store.get_run("never-seen") is None
    assert store.load_stage_outputs("never-seen") == {}


def test_a_full_run_lands_in_every_table_in_one_piece(store: PostgresStore, database_url: str) -> None:
    store.create_run(REQUEST)
    run_to_completion(store)

    state = known(store.get_run("run-1"))
    assert (state.status, state.attempt, state.current_stage, state.error) == (RunStatus.COMPLETED, 1, 5, None)
    assert state.completed_stages == (1, 2, 3, 4, 5)
    assert state.stages[3].completed_at == stage(3).completed_at and state.stages[3].duration_ms == 750
    assert state.completed_at is not None and state.created_at <= state.updated_at
    assert store.load_stage_outputs("run-1") == {n: stage(n).output for n in range(1, 6)}
    (row,) = query(database_url, 'SELECT "stage1Output", "stage4Output", "fullReportMarkdown", "stageTimings" '
                                 'FROM "PipelineRun"')
    assert row[0] == stage(1).output and row[1] == stage(4).output
    assert row[2].startswith("# Innovation Intelligence Report")
    assert set(row[3]) == {"1", "2", "3", "4", "5"} and row[3]["2"]["duration_ms"] == 500
    assert query(database_url, 'SELECT "stageNumber", attempt, "durationMs" FROM "StageOutput" ORDER BY 1') == [
        (n, 1, 250 * n) for n in range(1, 6)]
    assert query(database_url, 'SELECT number, title FROM "OpportunityCard" ORDER BY 1') == [
        (c.number, c.title) for c in report().cards]


def test_every_write_repeated_changes_nothing(store: PostgresStore, database_url: str) -> None:
    def snapshot() -> tuple:
        state = known(store.get_run("run-1"))
        return (state.status, state.attempt, state.current_stage, dict(state.stages), state.completed_at,
                query(database_url, 'SELECT count(*) FROM "StageOutput"'),
                query(database_url, 'SELECT count(*), min(title) FROM "OpportunityCard"'))

    store.create_run(REQUEST)
    run_to_completion(store)
    once = snapshot()
    store.create_run(REQUEST)
    run_to_completion(store)
    assert snapshot() == once


USAGE = RunUsage("openrouter", "anthropic/claude-sonnet-4.5",
                 {1: {"calls": 2, "prompt_tokens": 900, "completion_tokens": 300, "cached_tokens": 0,
                      "cost_usd": 0.0123}}, (2,))
VERBS: dict[str, Callable[[Any, str, int], None]] = {
    "start_attempt": lambda db, run_id, attempt: db.start_attempt(run_id, attempt),
    "save_stage": lambda db, run_id, attempt: db.save_stage(run_id, attempt, stage(2, attempt)),
    "complete_run": lambda db, run_id, attempt: db.complete_run(run_id, attempt, report(attempt)),
    "fail_run": lambda db, run_id, attempt: db.fail_run(run_id, attempt, ERROR),
    "record_usage": lambda db, run_id, attempt: db.apply(RecordUsage(run_id, attempt, USAGE)),
}


@pytest.mark.parametrize("verb", VERBS)
def test_writes_from_an_older_attempt_are_superseded(store: PostgresStore, verb: str) -> None:
    store.create_run(REQUEST)
    store.start_attempt("run-1", 1)
    store.save_stage("run-1", 1, stage(1))
    store.start_attempt("run-1", 2)
    before = known(store.get_run("run-1"))
    with pytest.raises(Superseded):
        VERBS[verb](store, "run-1", 1)
    after = known(store.get_run("run-1"))
    assert (after.status, after.attempt, after.stages, after.usage) == (before.status, 2, before.stages, None)
    assert store.load_stage_outputs("run-1")[1]["attempt"] == 1


def test_usage_is_recorded_by_the_current_attempt_and_again_by_a_newer_one(store: PostgresStore) -> None:
    store.create_run(REQUEST)
    store.start_attempt("run-1", 1)
    store.apply(RecordUsage("run-1", 1, USAGE))
    assert known(store.get_run("run-1")).usage == USAGE
    store.start_attempt("run-1", 2)
    offline = RunUsage("offline")
    store.apply(RecordUsage("run-1", 2, offline))
    assert known(store.get_run("run-1")).usage == offline


@pytest.mark.parametrize("verb", VERBS)
def test_writes_to_a_run_never_created_are_superseded_like_file_store(store: PostgresStore, verb: str) -> None:
    with pytest.raises(Superseded):
        VERBS[verb](store, "ghost", 1)


@pytest.mark.parametrize("late_write", [
    lambda db: db.save_stage("run-1", 1, stage(2)),
    lambda db: db.start_attempt("run-1", 1),
    lambda db: (db.start_attempt("run-1", 1), db.save_stage("run-1", 1, stage(1))),
], ids=["stage-2-replayed", "start-replayed", "start-and-stage-1-replayed"])
def test_a_replayed_older_write_never_moves_a_completed_run_backwards(store: PostgresStore, late_write) -> None:
    store.create_run(REQUEST)
    run_to_completion(store)
    late_write(store)
    state = known(store.get_run("run-1"))
    assert (state.status, state.current_stage, state.error) == (RunStatus.COMPLETED, 5, None)


def test_fail_run_records_the_error_and_a_new_attempt_clears_it(store: PostgresStore) -> None:
    store.create_run(REQUEST)
    store.start_attempt("run-1", 1)
    store.save_stage("run-1", 1, stage(1))
    store.fail_run("run-1", 1, ERROR)
    failed = known(store.get_run("run-1"))
    assert (failed.status, failed.error) == (RunStatus.FAILED, ERROR)

    store.start_attempt("run-1", 2)
    retried = known(store.get_run("run-1"))
    assert (retried.status, retried.attempt, retried.error) == (RunStatus.PROCESSING, 2, None)
    assert retried.completed_stages == (1,)


def _failed_then_retried(db: Any) -> None:
    db.start_attempt("run-1", 1)
    db.save_stage("run-1", 1, stage(1))
    db.fail_run("run-1", 1, RunErrorInfo(None, "X", "lost"))
    run_to_completion(db, attempt=2)


HISTORIES: dict[str, Callable[[Any], object]] = {
    "created-only": lambda db: None,
    "completed": run_to_completion,
    "failed-at-stage-3": lambda db: (db.start_attempt("run-1", 1), db.save_stage("run-1", 1, stage(1)),
                                     db.save_stage("run-1", 1, stage(2)), db.fail_run("run-1", 1, ERROR)),
    "failed-then-retried": lambda db: _failed_then_retried(db),
    "repeated-writes": lambda db: (db.start_attempt("run-1", 1), db.start_attempt("run-1", 1),
                                   db.save_stage("run-1", 1, stage(1)), db.save_stage("run-1", 1, stage(1))),
}


def comparable(state: RunState) -> tuple:
    """The RunState fields that do not depend on the wall clock of the write."""
    return (state.request, state.status, state.attempt, state.current_stage, state.error,
            dict(state.stages), state.completed_at is None, state.extra.get("lease"))


@pytest.mark.parametrize("history", HISTORIES)
def test_run_state_equals_file_store_for_the_same_history(store: PostgresStore, tmp_path: Path, history: str) -> None:
    files = FileStore(tmp_path / "outputs")
    for db in (store, files):
        db.create_run(REQUEST)
        HISTORIES[history](db)
    assert comparable(known(store.get_run("run-1"))) == comparable(known(files.get_run("run-1")))
    assert store.load_stage_outputs("run-1") == files.load_stage_outputs("run-1")


WRITES = [("start", 0)] + [("stage", n) for n in range(1, 6)] + [("complete", 0)]
RANK = {RunStatus.QUEUED: 0, RunStatus.PROCESSING: 1, RunStatus.COMPLETED: 2}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(range(len(WRITES))), replays=st.lists(st.integers(0, len(WRITES) - 1), max_size=4))
def test_no_delivery_order_moves_a_run_backwards(store: PostgresStore, order: list[int], replays: list[int]) -> None:
    run_id = f"run-{time.monotonic_ns()}"
    store.create_run(RunRequest(run_id, "mccormick-usa", "u", "https://d/x.pdf"))
    ranks = []
    for index in [*order, *replays]:
        kind, n = WRITES[index]
        if kind == "start":
            store.start_attempt(run_id, 1)
        elif kind == "stage":
            store.save_stage(run_id, 1, stage(n))
        else:
            store.complete_run(run_id, 1, report())
        ranks.append(RANK[known(store.get_run(run_id)).status])
    assert ranks == sorted(ranks) and ranks[-1] == RANK[RunStatus.COMPLETED]
    assert sorted(store.load_stage_outputs(run_id)) == [1, 2, 3, 4, 5]


def test_ping_and_schema_state_on_a_migrated_database(store: PostgresStore) -> None:
    store.ping(2)
    assert store.schema_state() == "ok"


@pytest.mark.parametrize(("tamper", "state"), [
    ("DELETE FROM runner_schema_migrations WHERE version = 3", "behind"),
    ("UPDATE runner_schema_migrations SET checksum = 'edited' WHERE version = 1", "drift"),
    ("INSERT INTO runner_schema_migrations VALUES (99, 'from_the_future', 'x', now(), 1)", "unknown"),
])
def test_schema_state_reports_what_the_migrations_table_says(store: PostgresStore, database_url: str,
                                                            tamper: str, state: str) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(tamper)
    assert store.schema_state() == state


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _assert_unavailable(call: Callable[[], Any]) -> StoreUnavailable:
    # The outcome is the behaviour under test; a call that hangs is stopped by the suite's hang guard.
    with pytest.raises(StoreUnavailable) as caught:
        call()
    assert is_transient(caught.value) and caught.value.__cause__ is not None
    assert "hunter2" not in str(caught.value)
    return caught.value


@pytest.mark.parametrize("verb", ["create_run", "get_run", "ping"])
def test_a_closed_port_is_unavailable_at_once(verb: str) -> None:
    db = PostgresStore(f"postgresql://runner:hunter2@127.0.0.1:{_free_port()}/x", FAST)
    calls = {"create_run": lambda: db.create_run(REQUEST), "get_run": lambda: known(db.get_run("run-1")),
             "ping": lambda: db.ping(1)}
    _assert_unavailable(calls[verb])


def test_a_server_that_never_answers_is_unavailable_after_connect_timeout() -> None:
    with socket.socket() as silent:  # accepts TCP, never speaks PostgreSQL
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        db = PostgresStore(f"postgresql://runner:hunter2@127.0.0.1:{silent.getsockname()[1]}/x",
                           DbTimeouts(connect_s=2, deadline_s=1))
        _assert_unavailable(lambda: known(db.get_run("run-1")))


@pytest.mark.parametrize(("timeouts", "expected"), [
    (DbTimeouts(lock_s=30, statement_s=30, deadline_s=0.5), "deadline"),
    (DbTimeouts(lock_s=0.2, statement_s=30, deadline_s=10), "LockNotAvailable"),
    (DbTimeouts(lock_s=30, statement_s=0.3, deadline_s=10), "QueryCanceled"),
], ids=["watchdog-deadline", "lock-timeout", "statement-timeout"])
def test_a_call_blocked_by_a_row_lock_is_cut_and_the_store_recovers(database_url: str, timeouts: DbTimeouts,
                                                                     expected: str) -> None:
    db = PostgresStore(database_url, timeouts)
    db.create_run(REQUEST)
    with psycopg.connect(database_url) as blocker:
        blocker.execute('SELECT 1 FROM "PipelineRun" WHERE id = %s FOR UPDATE', ("run-1",))
        error = _assert_unavailable(lambda: db.start_attempt("run-1", 1))
        assert expected in str(error)
    db.start_attempt("run-1", 1)  # the lock is gone: the same store works again
    assert known(db.get_run("run-1")).status is RunStatus.PROCESSING
    db.close()


def test_a_terminated_connection_fails_one_call_then_reconnects(store: PostgresStore, database_url: str) -> None:
    store.create_run(REQUEST)
    query(database_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = 'innovation-runner' AND datname = current_database()")
    with pytest.raises(StoreUnavailable):
        known(store.get_run("run-1"))
    assert known(store.get_run("run-1")).status is RunStatus.QUEUED


@pytest.mark.parametrize(("ddl", "verb"), [
    ('ALTER TABLE "PipelineRun" DROP COLUMN "stageTimings"', lambda db: known(db.get_run("run-1"))),
    ('ALTER TABLE "PipelineRun" DROP COLUMN "fullReportMarkdown"', lambda db: db.complete_run("run-1", 1, report())),
    ('DROP TABLE "StageOutput"', lambda db: db.save_stage("run-1", 1, stage(1))),
    ('DROP TABLE "OpportunityCard"', lambda db: db.complete_run("run-1", 1, report())),
], ids=["column-read", "column-written", "stage-table", "card-table"])
def test_a_schema_the_code_does_not_expect_is_a_schema_mismatch(store: PostgresStore, database_url: str,
                                                               ddl: str, verb) -> None:
    store.create_run(REQUEST)
    store.start_attempt("run-1", 1)
    with psycopg.connect(database_url) as conn:
        conn.execute(ddl)
    with pytest.raises(SchemaMismatch) as caught:
        verb(store)
    assert not is_transient(caught.value) and isinstance(caught.value.__cause__, psycopg.Error)
    assert "migrate" in str(caught.value)


def test_other_driver_errors_are_store_errors(store: PostgresStore) -> None:
    store.create_run(REQUEST)
    store.start_attempt("run-1", 1)
    bad = StageResult(6, {"x": 1}, T0, T0)  # violates the stageNumber CHECK
    with pytest.raises(StoreError) as caught:
        store.save_stage("run-1", 1, bad)
    assert type(caught.value) is StoreError and not is_transient(caught.value)


def test_concurrent_threads_share_the_one_connection_safely(store: PostgresStore) -> None:
    store.create_run(REQUEST)
    store.start_attempt("run-1", 1)
    errors: list[BaseException] = []

    def save(n: int) -> None:
        try:
            store.save_stage("run-1", 1, stage(n))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(n,)) for n in range(1, 6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and known(store.get_run("run-1")).completed_stages == (1, 2, 3, 4, 5)


def test_with_a_connection_per_thread_each_thread_uses_its_own_and_close_releases_them_all(database_url):
    import threading

    from persistence.postgres import PostgresStore
    from persistence.records import RunRequest

    store = PostgresStore(database_url, per_thread=True)
    backends: list[int] = []
    barrier = threading.Barrier(4)

    def work(n: int) -> None:
        store.create_run(RunRequest(f"t{n}", "decathlon", "u", "https://x/y.pdf"))
        with store._db.transaction("which backend") as conn:
            barrier.wait(timeout=30)  # all four hold a transaction at once
            backends.append(known(conn.execute("SELECT pg_backend_pid() AS pid").fetchone())["pid"])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(set(backends)) == 4
    assert all(store.get_run(f"t{n}") is not None for n in range(4))
    store.close()
    wait_for_backends(database_url, APPLICATION_NAME, at_most=0)


def test_connections_of_finished_threads_are_closed_not_leaked(database_url):
    import threading

    from persistence.postgres import PostgresStore

    store = PostgresStore(database_url, per_thread=True)
    for _ in range(6):  # like /health, each probe in a new short-lived thread
        thread = threading.Thread(target=store.ping, args=(5.0,))
        thread.start()
        thread.join(timeout=30)
    store.ping(5.0)  # a new slot in this thread reclaims the dead threads' connections
    wait_for_backends(database_url, APPLICATION_NAME, at_most=2)  # this thread's, and at most the last prober's
    store.close()


def test_a_replay_batch_goes_in_at_once_and_a_refused_command_rolls_back_alone(store: PostgresStore,
                                                                              database_url: str) -> None:
    from persistence.commands import CreateRun, SaveStage, StartAttempt

    fast = store.apply_batch([CreateRun(REQUEST), StartAttempt("run-1", 1), SaveStage("run-1", 1, stage(1)),
                              SaveStage("run-1", 1, stage(2))])
    assert fast == [None] * 4
    mixed = store.apply_batch([SaveStage("run-1", 1, stage(3)), SaveStage("ghost", 1, stage(1)),
                               SaveStage("run-1", 1, stage(4))])
    assert mixed[0] is None and isinstance(mixed[1], Superseded) and mixed[2] is None
    assert [n for n, in query(database_url, 'SELECT "stageNumber" FROM "StageOutput" ORDER BY 1')] == [1, 2, 3, 4]
