"""The DUAL_WRITE mirror: record first, mirror best effort, every resume reconciles both sides."""

from __future__ import annotations

from pathlib import Path

from persistence.breaker import BreakerPolicy, CircuitBreaker
from persistence.commands import CreateRun, SaveStage, StartAttempt
from persistence.files import FileStore
from persistence.mirror import FileMirror, MirrorBreaker
from persistence.resilient import ResilientStore
from persistence.spool import Spool
from tests.unit.test_spool import NO_RETRY, FakeDatabase, request, stage


def dual(tmp_path: Path, db: FakeDatabase) -> ResilientStore:
    mirror = FileMirror(FileStore(tmp_path / "files"), tmp_path / "state" / "mirror-healed-at")
    return ResilientStore(db, Spool(tmp_path / "spool"),  # type: ignore[arg-type]
                          CircuitBreaker(tmp_path / "state", BreakerPolicy()), NO_RETRY, mirror=mirror)


def started(store: ResilientStore) -> None:
    store.apply(CreateRun(request()))
    store.apply(StartAttempt("run-1", 1))
    store.apply(SaveStage("run-1", 1, stage(1)))


def test_a_resume_heals_a_mirror_that_missed_a_recorded_stage(tmp_path: Path) -> None:
    db = FakeDatabase(tmp_path / "db")
    store = dual(tmp_path, db)
    started(store)
    db.inner.apply(SaveStage("run-1", 1, stage(2)))  # recorded; the process died before the mirror write
    assert set(FileStore(tmp_path / "files").load_stage_outputs("run-1")) == {1}
    store.apply(StartAttempt("run-1", 2))  # the resume
    assert set(store.load_stage_outputs("run-1")) == {1, 2}
    assert FileStore(tmp_path / "files").load_stage_outputs("run-1")[2] == stage(2).output


def test_a_resume_records_a_stage_only_the_mirror_has(tmp_path: Path) -> None:
    db = FakeDatabase(tmp_path / "db")
    store = dual(tmp_path, db)
    started(store)
    # An older release wrote files first and died before the database write.
    FileStore(tmp_path / "files").apply(SaveStage("run-1", 1, stage(2)))
    store.apply(StartAttempt("run-1", 2))
    assert set(store.load_stage_outputs("run-1")) == {1, 2}
    assert db.inner.load_stage_outputs("run-1")[2] == stage(2).output


def test_a_broken_mirror_never_fails_a_write_and_opens_its_breaker(tmp_path: Path) -> None:
    db = FakeDatabase(tmp_path / "db")
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the output folder should be")
    breaker = MirrorBreaker(break_s=3600)
    mirror = FileMirror(FileStore(blocked), tmp_path / "wm", breaker)
    store = ResilientStore(db, Spool(tmp_path / "spool"),  # type: ignore[arg-type]
                           CircuitBreaker(tmp_path / "state", BreakerPolicy()), NO_RETRY, mirror=mirror)
    started(store)
    assert db.inner.load_stage_outputs("run-1") == {1: stage(1).output}  # the record has everything
    assert not breaker.allows() and mirror.behind == {"run-1"}
