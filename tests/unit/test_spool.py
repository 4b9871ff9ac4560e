"""The spool (durable journal, lazy listing, replay, dead letters) and ResilientStore over fakes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import tracemalloc
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.errors import Conflict, SchemaMismatch, StoreError, StoreUnavailable, Superseded
from persistence.breaker import OPEN, BreakerPolicy, CircuitBreaker
from persistence.commands import (
    ClaimRun,
    Command,
    CompleteRun,
    CreateRun,
    FailRun,
    SaveStage,
    StartAttempt,
    command_from_json,
)
from persistence.files import FileStore
from persistence.mirror import FileMirror
from persistence.ports import CommandVerbs, SourcedRun
from persistence.records import FinalReport, OpportunityCard, RunErrorInfo, RunRequest, StageResult
from persistence.resilient import ResilientStore
from persistence.retry import RetryPolicy
from persistence.spool import REPLAY_LOCK, Spool
from tests.known import known
from tests.statcount import stats_looked_at

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2025, 1, 1, tzinfo=UTC)
NO_RETRY = RetryPolicy(attempts=1, total_seconds=1.0, first_wait=0.0, max_wait=0.0, jitter=0.0)


def request(run_id: str = "run-1") -> RunRequest:
    return RunRequest(run_id=run_id, company_id="decathlon", user_id="u1", document_url="https://x/doc.pdf")


def stage(n: int) -> StageResult:
    return StageResult(n, {"stage": n, "items": [n, {"k": "v"}]}, T0 + timedelta(seconds=n),
                       T0 + timedelta(seconds=n, milliseconds=250))


REPORT = FinalReport("# Innovation Intelligence Report\n",
                     tuple(OpportunityCard(i, f"t{i}", f"c{i}") for i in range(1, 6)))


def run_writes(store: Any, run_id: str = "run-1") -> None:
    """The writes a pipeline run makes, in order."""
    store.create_run(request(run_id))
    store.start_attempt(run_id, 1)
    for n in range(1, 6):
        store.save_stage(run_id, 1, stage(n))
    store.complete_run(run_id, 1, REPORT)


class FakeDatabase:
    """An in-memory database (a FileStore underneath) that can be switched to fail like PostgreSQL does."""

    name = "database"

    def __init__(self, root: Path) -> None:
        self.inner = FileStore(root)  # real idempotent, fenced semantics
        self.calls: list[tuple[str, str]] = []
        self.fail: BaseException | None = None

    def _check(self, kind: str, run_id: str) -> None:
        if self.fail is not None:
            raise self.fail
        self.calls.append((kind, run_id))

    def apply(self, command: Command) -> bool:
        self._check(command.kind, command.run_id)
        return self.inner.apply(command)

    def apply_batch(self, commands: Sequence[Command]) -> list[BaseException | None]:
        verdicts: list[BaseException | None] = []
        for command in commands:
            try:
                self.apply(command)
                verdicts.append(None)
            except (StoreUnavailable, SchemaMismatch):
                raise
            except (StoreError, Superseded, Conflict) as exc:
                verdicts.append(exc)
        return verdicts

    def read_run(self, run_id: str) -> SourcedRun:
        self._check("get_run", run_id)
        return SourcedRun(known(self.inner.get_run(run_id)), "database")

    def load_stage_outputs(self, run_id: str) -> dict[int, Mapping[str, Any]]:
        self._check("load_stage_outputs", run_id)
        return self.inner.load_stage_outputs(run_id)

    def close(self) -> None:
        pass


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool")


@pytest.fixture
def db(tmp_path: Path) -> FakeDatabase:
    return FakeDatabase(tmp_path / "db")


# -- the journal ------------------------------------------------------------------------------


def test_records_round_trip_every_command(spool: Spool) -> None:
    commands: list[Command] = [
        CreateRun(request()),
        StartAttempt("run-1", 1),
        SaveStage("run-1", 1, stage(3)),
        CompleteRun("run-1", 1, REPORT),
        FailRun("run-1", 2, RunErrorInfo(3, "STAGE_FAILED", "boom")),
        ClaimRun("run-1", 3, "host/123-456", T0 + timedelta(seconds=60)),
    ]
    for command in commands:
        spool.append(command)
    records = list(spool.pending())
    assert [r.kind for r in records] == [c.kind for c in commands]
    assert [r.command() for r in records] == commands
    assert [r.seq for r in records] == sorted(r.seq for r in records)


LEGACY_BODIES = [  # exactly what the spool wrote before typed commands (verb + keyword arguments)
    ("create_run", {"request": {"run_id": "old-1", "company_id": "decathlon", "user_id": "u1",
                                "document_url": "https://x/doc.pdf"}}),
    ("start_attempt", {"run_id": "old-1", "attempt": 1}),
    *[("save_stage", {"run_id": "old-1", "attempt": 1,
                      "result": {"stage": n, "output": {"stage": n}, "started_at": "2025-01-01T00:00:00+00:00",
                                 "completed_at": "2025-01-01T00:00:01.250000+00:00"}}) for n in range(1, 6)],
    ("complete_run", {"run_id": "old-1", "attempt": 1,
                      "report": {"markdown": "# Innovation Intelligence Report\n",
                                 "cards": [{"number": i, "title": f"t{i}", "content": f"c{i}"} for i in range(1, 6)]}}),
]


def test_records_of_the_format_before_commands_still_replay(spool: Spool, db: FakeDatabase) -> None:
    spool.dir.mkdir(parents=True)
    for seq, (verb, args) in enumerate(LEGACY_BODIES, start=1):
        body = {"seq": seq, "run_id": "old-1", "verb": verb, "args": args, "spooled_at": 1_700_000_000.0}
        (spool.dir / f"{seq:020d}.old-1.{verb}.json").write_text(json.dumps(body))
    assert spool.has_pending("old-1")
    state = spool.pending("old-1")
    assert [r.command().kind for r in state] == [verb for verb, _ in LEGACY_BODIES]
    report = spool.replay(db)
    assert (report.applied, report.dead, report.remaining) == (8, 0, 0)
    run = known(db.inner.get_run("old-1"))
    assert run is not None and run.status == "COMPLETED" and run.completed_stages == (1, 2, 3, 4, 5)
    assert db.inner.load_stage_outputs("old-1")[3] == {"stage": 3}


@settings(max_examples=40, deadline=None)
@given(output=st.dictionaries(st.text(min_size=1, max_size=8),
                              st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                                           lambda kids: st.lists(kids, max_size=3)
                                           | st.dictionaries(st.text(max_size=5), kids, max_size=3),
                                           max_leaves=8), max_size=5),
       n=st.integers(1, 5))
def test_stage_outputs_survive_the_json_round_trip(output: dict[str, Any], n: int) -> None:
    result = StageResult(n, output, T0, T0 + timedelta(milliseconds=n))
    encoded = json.loads(json.dumps(SaveStage("r", 1, result).to_json()))
    assert command_from_json(encoded) == SaveStage("r", 1, result)


def test_names_sort_in_write_order_and_name_run_and_verb(spool: Spool) -> None:
    for i in range(30):
        spool.append(StartAttempt(f"run-{i % 3}", i))
    names = sorted(p.name for p in spool.dir.iterdir() if p.name[0].isdigit())
    attempts = [json.loads((spool.dir / n).read_text())["command"]["attempt"] for n in names]
    assert attempts == list(range(30))
    assert all(n.endswith(".start_attempt.json") for n in names)
    assert [r.command().attempt for r in spool.pending("run-1")] == list(range(1, 30, 3))


def test_pending_is_lazy_and_memory_bounded_for_10000_records(spool: Spool) -> None:
    spool.dir.mkdir(parents=True)
    big = "x" * 2000  # 10,000 bodies of 2 kB: 20 MB if they were ever all in memory at once
    for i in range(10_000):
        body = {"seq": i + 1, "run_id": f"r{i % 50}", "verb": "start_attempt",
                "args": {"run_id": f"r{i % 50}", "attempt": 1, "pad": big}, "spooled_at": 0}
        (spool.dir / f"{i + 1:020d}.r{i % 50}.start_attempt.json").write_text(json.dumps(body))
    tracemalloc.start()
    try:
        seen = 0
        last = 0
        for record in spool.pending():
            assert record.body()["seq"] > last
            last = record.body()["seq"]
            seen += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == 10_000
    assert peak < 5_000_000


def test_temp_files_and_strangers_are_not_records(spool: Spool) -> None:
    spool.append(StartAttempt("run-1", 1))
    (spool.dir / ".00000000000000000009.run-1.save_stage.json.abc.tmp").write_text("{half")
    (spool.dir / "README").write_text("hi")
    assert [r.kind for r in spool.pending()] == ["start_attempt"]
    assert spool.count() == 1


def test_sigkill_while_appending_leaves_only_whole_records(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    script = textwrap.dedent("""
        import sys
        from pathlib import Path
        from persistence.commands import SaveStage
        from persistence.spool import Spool
        from tests.unit.test_spool import stage
        spool = Spool(Path(sys.argv[1]))
        i = 0
        while True:
            i += 1
            spool.append(SaveStage("run-k", i, stage(1 + i % 5)))
            if i == 20:
                print("ready", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script, str(spool_dir)], cwd=REPO, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        while known(proc.stdout).readline().strip() != "ready":
            assert proc.poll() is None, "the writer died before it was killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    records = list(Spool(spool_dir).pending())
    assert len(records) >= 20
    attempts = [r.command().attempt for r in records]  # every body parses
    assert attempts == list(range(1, len(records) + 1))


# -- replay -----------------------------------------------------------------------------------


def test_replay_applies_in_order_and_deletes_after_confirm(spool: Spool, db: FakeDatabase) -> None:
    run_writes(_Recorder(spool))
    report = spool.replay(db, batch_size=3)
    assert (report.applied, report.dead, report.remaining, report.stopped) == (8, 0, 0, None)
    assert [v for v, _ in db.calls] == ["create_run", "start_attempt"] + ["save_stage"] * 5 + ["complete_run"]
    assert known(db.inner.get_run("run-1")).status == "COMPLETED"


def test_replay_twice_writes_nothing_twice(spool: Spool, db: FakeDatabase) -> None:
    run_writes(_Recorder(spool))
    spool.replay(db)
    again = spool.replay(db)
    assert (again.applied, again.remaining) == (0, 0)
    assert len(db.calls) == 8


def test_a_transient_failure_stops_replay_and_keeps_the_record(spool: Spool, db: FakeDatabase) -> None:
    run_writes(_Recorder(spool))
    db.fail = StoreUnavailable("connection refused")
    report = spool.replay(db)
    assert (report.applied, report.dead, report.remaining) == (0, 0, 8)
    assert report.stopped == "STORE_UNAVAILABLE"
    db.fail = None
    assert spool.replay(db).applied == 8


def test_schema_mismatch_stops_replay_without_burying_anything(spool: Spool, db: FakeDatabase) -> None:
    run_writes(_Recorder(spool))
    db.fail = SchemaMismatch('column "stage1Output" does not exist')
    report = spool.replay(db)
    assert (report.applied, report.dead, report.remaining) == (0, 0, 8)
    assert list(spool.dead()) == []


@pytest.mark.parametrize("error", [Superseded("attempt 1 superseded by 2"), StoreError("invalid input syntax")])
def test_a_refused_record_goes_to_dead_with_its_reason(spool: Spool, db: FakeDatabase, error: Exception) -> None:
    spool.append(StartAttempt("run-1", 1))
    db.fail = error
    report = spool.replay(db)
    assert (report.applied, report.dead, report.remaining) == (0, 1, 0)
    [dead] = list(spool.dead())
    reason = json.loads((spool.dead_dir / (dead.path.name + ".reason.json")).read_text())
    assert reason["error"] == type(error).__name__ and reason["message"] == str(error)


def test_a_corrupt_record_goes_to_dead_and_the_rest_replays(spool: Spool, db: FakeDatabase) -> None:
    run_writes(_Recorder(spool))
    third = list(spool.pending())[2]  # stage 1's output
    third.path.write_text("{torn")
    report = spool.replay(db)
    # Each record stands alone (the store fences every write), so the others still apply.
    assert (report.applied, report.dead, report.remaining) == (7, 1, 0)
    assert set(db.inner.load_stage_outputs("run-1")) == {2, 3, 4, 5}


def test_a_second_replayer_backs_off_while_one_holds_the_lock(spool: Spool, db: FakeDatabase) -> None:
    import fcntl

    run_writes(_Recorder(spool))
    with open(spool.dir / REPLAY_LOCK, "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        busy = spool.replay(db)
    assert busy.busy and busy.applied == 0 and busy.remaining == 8
    assert spool.replay(db).applied == 8


def test_concurrent_replayers_never_apply_a_record_twice(spool: Spool, db: FakeDatabase) -> None:
    for i in range(40):
        run_writes(_Recorder(spool), f"run-{i}")
    reports = []
    threads = [threading.Thread(target=lambda: reports.append(spool.replay(db, batch_size=7))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    while spool.count():
        reports.append(spool.replay(db))
    assert sum(r.applied for r in reports) == 320
    assert len(db.calls) == len(set((i, c) for i, c in enumerate(db.calls)))
    assert sorted(db.calls).count(("create_run", "run-0")) == 1


class _Recorder(CommandVerbs):
    """Turns store writes into spool records, as ResilientStore does during an outage."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool

    def apply(self, command: Command) -> bool:
        self.spool.append(command)
        return True


# -- ResilientStore over fakes ----------------------------------------------------------------


QUICK_BREAKER = BreakerPolicy(consecutive_failures=1, break_seconds=0.0, break_jitter=0.0)


def resilient(tmp_path: Path, db: FakeDatabase, *, files: bool = False,
              policy: BreakerPolicy = QUICK_BREAKER) -> ResilientStore:
    # A fake database (no queue, no ping): enough for the writes and reads these tests make.
    return ResilientStore(db, Spool(tmp_path / "spool"),  # type: ignore[arg-type]
                          CircuitBreaker(tmp_path / "state", policy), NO_RETRY,
                          mirror=FileMirror(FileStore(tmp_path / "files"), tmp_path / "state" / "mirror-healed-at")
                          if files else None)


def test_writes_go_to_the_spool_when_the_database_is_down(tmp_path: Path, db: FakeDatabase) -> None:
    store = resilient(tmp_path, db, policy=BreakerPolicy(consecutive_failures=1, break_seconds=3600))
    db.fail = StoreUnavailable("connection refused")
    run_writes(store)  # never raises
    assert store.breaker.state() == OPEN
    assert store.spool.count() == 8
    assert db.calls == []


@pytest.mark.parametrize("error", [SchemaMismatch("no column"), StoreError("value too long")])
def test_no_store_error_reaches_the_run(tmp_path: Path, db: FakeDatabase, error: Exception) -> None:
    store = resilient(tmp_path, db)
    db.fail = error
    run_writes(store)
    # Schema trouble keeps the records for later; a record-level error ends in dead/ with its reason.
    assert store.spool.count() + len(list(store.spool.dead())) == 8


def test_a_new_run_looks_at_the_breaker_and_the_spool_once_each(tmp_path: Path, db: FakeDatabase,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # Every webhook takes this path; each stat hands the GIL to another request thread.
    store = resilient(tmp_path, db)
    store.create_run(request("run-0"))  # the breaker writes its closed state once
    with stats_looked_at(monkeypatch) as looked:
        assert store.create_run(request("run-1")) is True
    assert looked.count(store.breaker.path) == 1
    assert len([p for p in looked if tmp_path / "spool" in (p, *p.parents)]) == 1
    assert db.calls[-1] == ("create_run", "run-1")


def test_reads_lay_the_spooled_writes_over_the_database(tmp_path: Path, db: FakeDatabase) -> None:
    store = resilient(tmp_path, db, policy=BreakerPolicy(consecutive_failures=5))
    store.create_run(request())
    store.start_attempt("run-1", 1)
    store.save_stage("run-1", 1, stage(1))
    db.fail = StoreUnavailable("connection lost")
    store.save_stage("run-1", 1, stage(2))
    db.fail = None
    store._draining = True  # hold the drain back to look at the in-between state
    assert known(store.get_run("run-1")).completed_stages == (1, 2)
    assert set(store.load_stage_outputs("run-1")) == {1, 2}
    assert store.read_run("run-1").source == "files"  # partly from the spool


def test_a_run_resumed_while_the_database_is_skipped_finds_its_stages(tmp_path: Path, db: FakeDatabase) -> None:
    store = resilient(tmp_path, db, policy=BreakerPolicy(consecutive_failures=1, break_seconds=3600))
    db.fail = StoreUnavailable("connection refused")
    store.create_run(request())
    store.start_attempt("run-1", 1)
    store.save_stage("run-1", 1, stage(1))
    store.save_stage("run-1", 1, stage(2))
    assert store.breaker.state() == OPEN
    resumed = resilient(tmp_path, db)  # another process, same host
    state = known(resumed.get_run("run-1"))
    assert state is not None and state.status == "PROCESSING" and state.completed_stages == (1, 2)
    assert resumed.load_stage_outputs("run-1") == {1: stage(1).output, 2: stage(2).output}
    assert db.calls == []  # the open breaker was obeyed by the new process too


def test_dual_write_reads_the_files_while_the_database_is_skipped(tmp_path: Path, db: FakeDatabase) -> None:
    store = resilient(tmp_path, db, files=True, policy=BreakerPolicy(consecutive_failures=1, break_seconds=3600))
    store.create_run(request())
    store.start_attempt("run-1", 1)
    db.fail = StoreUnavailable("connection lost")
    for n in (1, 2, 3):
        store.save_stage("run-1", 1, stage(n))
    assert known(store.get_run("run-1")).completed_stages == (1, 2, 3)
    assert set(store.load_stage_outputs("run-1")) == {1, 2, 3}
    assert store.read_run("run-1").source == "files"


def test_a_runs_later_writes_queue_behind_its_spooled_ones(tmp_path: Path, db: FakeDatabase) -> None:
    store = resilient(tmp_path, db)
    store.create_run(request())
    store.start_attempt("run-1", 1)
    db.fail = StoreUnavailable("blip")
    store.save_stage("run-1", 1, stage(1))
    db.fail = None
    for n in range(2, 6):
        store.save_stage("run-1", 1, stage(n))
    store.complete_run("run-1", 1, REPORT)
    # Recovery drained the run's spool in order: stage 1 reached the database before stage 2.
    assert [c for c in db.calls if c[0] == "save_stage"] == [("save_stage", "run-1")] * 5
    assert store.spool.count() == 0
    assert db.inner.load_stage_outputs("run-1") == {n: stage(n).output for n in range(1, 6)}
    assert known(db.inner.get_run("run-1")).status == "COMPLETED"


def test_the_probe_that_closes_the_breaker_drains_the_spool(tmp_path: Path, db: FakeDatabase) -> None:
    store = resilient(tmp_path, db)
    db.fail = StoreUnavailable("down")
    run_writes(store, "run-a")
    db.fail = None
    run_writes(store, "run-b")  # the first write probes, closes the breaker and replays run-a
    assert store.spool.count() == 0
    assert known(db.inner.get_run("run-a")).status == "COMPLETED"
    assert known(db.inner.get_run("run-b")).status == "COMPLETED"


def test_conflict_and_superseded_are_answers_not_outages(tmp_path: Path, db: FakeDatabase) -> None:
    store = resilient(tmp_path, db)
    store.create_run(request())
    with pytest.raises(Conflict):
        store.create_run(RunRequest("run-1", "decathlon", "someone-else", "https://x/doc.pdf"))
    store.start_attempt("run-1", 2)
    with pytest.raises(Superseded):
        store.start_attempt("run-1", 1)
    assert store.spool.count() == 0


def test_create_run_during_an_outage_is_idempotent_and_detects_conflicts(tmp_path: Path, db: FakeDatabase) -> None:
    store = resilient(tmp_path, db)
    db.fail = StoreUnavailable("down")
    assert store.create_run(request()) is True
    assert store.create_run(request()) is False
    with pytest.raises(Conflict):
        store.create_run(RunRequest("run-1", "decathlon", "someone-else", "https://x/doc.pdf"))
    assert store.spool.count() == 1


# -- cost that must not grow with the backlog -------------------------------------------------


def test_has_pending_answers_from_the_runs_marker_without_listing(spool: Spool,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    spool.append(StartAttempt("run-1", 1))
    listed = []
    real = os.scandir
    def counted(*a: Any) -> Any:
        listed.append(a)
        return real(*a)

    monkeypatch.setattr(os, "scandir", counted)
    assert spool.has_pending("run-1") and not spool.has_pending("run-2")
    assert list(spool.pending("run-2")) == []
    assert listed == []


def test_a_replayed_run_loses_its_marker_and_a_new_write_brings_it_back(spool: Spool, db: FakeDatabase) -> None:
    spool.append(CreateRun(request()))
    spool.append(StartAttempt("run-1", 1))
    spool.replay(db)
    assert not spool.has_pending("run-1") and spool.count() == 0
    spool.append(StartAttempt("run-1", 2))
    assert spool.has_pending("run-1")


def test_a_spool_written_before_markers_existed_is_indexed_once(spool: Spool) -> None:
    spool.dir.mkdir(parents=True)
    body = {"seq": 1, "run_id": "old-run", "verb": "start_attempt", "args": {"run_id": "old-run", "attempt": 1},
            "spooled_at": 0}
    (spool.dir / f"{1:020d}.old-run.start_attempt.json").write_text(json.dumps(body))
    assert spool.has_pending("old-run")
    assert Spool(spool.dir).has_pending("old-run")
    assert [r.run_id for r in spool.pending("old-run")] == ["old-run"]


def test_a_stale_marker_only_spools_and_is_cleaned_by_the_next_drain(spool: Spool, db: FakeDatabase) -> None:
    spool.append(CreateRun(request()))
    for record in list(spool.pending("run-1")):
        record.path.unlink()  # as if a replayer crashed between its delete and its cleanup
    assert spool.has_pending("run-1")
    spool.replay(db, run_id="run-1")
    assert not spool.has_pending("run-1")


def test_a_spooled_write_skips_the_drain_while_the_breaker_is_open(tmp_path: Path, db: FakeDatabase,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    store = resilient(tmp_path, db, policy=BreakerPolicy(consecutive_failures=1, break_seconds=3600))
    db.fail = StoreUnavailable("connection refused")
    replays = []
    real = store.spool.replay
    def counted(*a: Any, **k: Any) -> Any:
        replays.append(k)
        return real(*a, **k)

    monkeypatch.setattr(store.spool, "replay", counted)
    run_writes(store)
    assert store.spool.count() == 8
    assert replays == []


class BatchingDatabase(FakeDatabase):
    """A FakeDatabase whose batch becomes visible only when it commits, like a transaction."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.commit_error: BaseException | None = None
        self.commits = 0

    def apply_batch(self, commands: Sequence[Command]) -> list[BaseException | None]:
        if self.commit_error is not None:
            raise self.commit_error
        verdicts = super().apply_batch(commands)
        self.commits += 1
        return verdicts


def test_a_batch_commits_once_and_only_then_deletes_its_records(spool: Spool, tmp_path: Path) -> None:
    db = BatchingDatabase(tmp_path / "db")
    run_writes(_Recorder(spool))
    report = spool.replay(db, batch_size=100)
    assert (report.applied, report.remaining, db.commits) == (8, 0, 1)
    assert known(db.inner.get_run("run-1")).status == "COMPLETED"


def test_a_batch_whose_commit_fails_keeps_every_record_for_the_next_replay(spool: Spool, tmp_path: Path) -> None:
    db = BatchingDatabase(tmp_path / "db")
    run_writes(_Recorder(spool))
    db.commit_error = StoreUnavailable("connection lost at commit")
    report = spool.replay(db, batch_size=100)
    assert (report.applied, report.dead, report.remaining, report.stopped) == (0, 0, 8, "STORE_UNAVAILABLE")
    assert db.inner.get_run("run-1") is None  # nothing reached the database
    db.commit_error = None
    assert spool.replay(db, batch_size=100).applied == 8
    assert known(db.inner.get_run("run-1")).status == "COMPLETED"


def test_a_record_deleted_by_a_concurrent_replay_is_skipped_not_a_crash(spool: Spool) -> None:
    from persistence.spool.view import fold_outputs, fold_run

    run_writes(_Recorder(spool))
    records = list(spool.pending("run-1"))
    saved = [r for r in records if r.kind == "save_stage"]
    saved[0].path.unlink()  # replayed and deleted between the listing and the read
    outputs = fold_outputs({}, records)
    assert sorted(outputs) == [2, 3, 4, 5]
    assert known(fold_run(None, records)).status == "COMPLETED"
