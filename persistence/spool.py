"""The spool: a durable journal of database writes the database has not confirmed yet.

    spool_dir/<seq:020d>.<run_id>.<verb>.json    one record per write, in write order
    spool_dir/dead/<same name> + <name>.reason.json   records the database keeps refusing
    spool_dir/.seq    the host's last sequence number      spool_dir/.replay.lock
    spool_dir/.runs/<run_id>    the run's marker: it exists while the run may have records

A record is the RunStore verb and its arguments as JSON, written to a temporary file, fsynced and
renamed into place (persistence.atomic), so a SIGKILL leaves either the whole record or nothing.
Replay deletes a record only after the database confirmed it; a crash between the two re-applies
it later, which is harmless because every store write is an idempotent, fenced upsert.

The run markers keep "does this run have spooled writes?" (asked before every write) O(1) however
long the backlog: a record never exists without its run's marker. ``append`` creates the marker
durably and holds a shared flock on it while it writes the record; replay removes a marker only
under an exclusive flock, after a listing shows the run has no record left. A marker without
records (a crash between the two) only spools the run's next write, which the next drain
applies and cleans up. ``.runs/.built`` says every record older than the markers has one (a
spool written before markers existed is indexed once, on first use).
"""

from __future__ import annotations

import contextlib

import fcntl
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.errors import InvalidInput, RunnerError, SchemaMismatch, StoreError, StoreUnavailable
from config.log import get_logger
from config.paths import check_run_id
from persistence import atomic
from persistence.ports import RunStore
from persistence.spool_codec import VERBS, decode_args, encode_args, run_id_of

log = get_logger(__name__)

SEQ_FILE = ".seq"
SEQ_LOCK = ".seq.lock"
REPLAY_LOCK = ".replay.lock"
DEAD_DIR = "dead"
REASON_SUFFIX = ".reason.json"
RUNS_DIR = ".runs"
BUILT = ".built"
FORGET_CHUNK = 200  # markers locked at once while cleaning up (bounded file descriptors)
# Errors that say "the database, not this record, is the problem": stop and keep the record.
STOPPING_ERRORS = (StoreUnavailable, SchemaMismatch)
# Errors that say "this record will never apply": move it aside so it cannot block the rest.
RECORD_ERRORS = (RunnerError, ValueError, KeyError, TypeError)


@dataclass(frozen=True)
class SpoolRecord:
    """One journalled write: where it lives, its order, its run, its verb and (lazily) its body."""

    path: Path
    seq: int
    run_id: str
    verb: str

    def body(self) -> dict[str, Any]:
        """The record's JSON: {"seq", "run_id", "verb", "args", "spooled_at"}."""
        return atomic.read_json(self.path)

    def args(self) -> dict[str, Any]:
        """The verb's keyword arguments, rebuilt as record values (RunRequest, StageResult, …)."""
        return decode_args(self.verb, self.body()["args"])


@dataclass(frozen=True)
class ReplayReport:
    """What one replay did. ``busy``: another replayer held the lock; ``stopped``: why it stopped early."""

    applied: int
    dead: int
    remaining: int
    seconds: float
    busy: bool = False
    stopped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The report as the cron job's JSON summary."""
        return {"applied": self.applied, "dead": self.dead, "remaining": self.remaining,
                "seconds": round(self.seconds, 3), "busy": self.busy, "stopped": self.stopped}


def _is_record_name(name: str) -> bool:
    return name[:1].isdigit() and name.endswith(".json")


def _parse_name(path: Path) -> SpoolRecord | None:
    parts = path.name.split(".")
    if len(parts) != 4 or parts[3] != "json" or not parts[0].isdigit() or parts[2] not in VERBS:
        return None  # temp files (".name.xyz.tmp"), locks, sidecars, strangers
    return SpoolRecord(path, int(parts[0]), parts[1], parts[2])


class Spool:
    """The journal under ``spool_dir``: append, list lazily in order, replay, dead-letter."""

    def __init__(self, spool_dir: Path) -> None:
        self.dir = spool_dir
        self.dead_dir = spool_dir / DEAD_DIR
        self.runs_dir = spool_dir / RUNS_DIR
        self._indexed = False

    @contextmanager
    def _flock(self, name: str, *, blocking: bool = True) -> Iterator[bool]:
        atomic.ensure_dir(self.dir)
        with open(self.dir / name, "a+b") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _next_seq(self) -> int:
        """A host-wide increasing number; never below the clock, so a lost .seq cannot reuse one."""
        with self._flock(SEQ_LOCK):
            path = self.dir / SEQ_FILE
            last = int(path.read_text().strip() or 0) if path.exists() else 0
            seq = max(last + 1, time.time_ns())
            atomic.write_bytes(path, f"{seq}\n".encode())
            return seq

    def append(self, verb: str, args: Mapping[str, Any]) -> SpoolRecord:
        """Journal one verb call durably; once this returns the write cannot be lost."""
        if verb not in VERBS:
            raise InvalidInput(f"cannot spool unknown store verb {verb!r}; known: {', '.join(VERBS)}")
        run_id = check_run_id(run_id_of(verb, args))
        body = {"seq": 0, "run_id": run_id, "verb": verb, "args": encode_args(verb, args),
                "spooled_at": time.time()}
        with self._marked(run_id):
            body["seq"] = seq = self._next_seq()
            path = self.dir / f"{seq:020d}.{run_id}.{verb}.json"
            atomic.write_json(path, body)
        log.info("spool_appended", run_id=run_id, verb=verb, seq=seq)
        return SpoolRecord(path, seq, run_id, verb)

    # -- the run markers ---------------------------------------------------------------------

    def _index(self) -> None:
        """Make sure every record has its run's marker (once per spool folder, then a stat)."""
        if self._indexed:
            return
        built = self.runs_dir / BUILT
        if not built.exists():
            atomic.ensure_dir(self.runs_dir)
            for name in self._names():
                run_id = name.split(".")[1]
                if not (self.runs_dir / run_id).exists():
                    (self.runs_dir / run_id).touch()
            atomic.fsync_dir(self.runs_dir)
            atomic.write_bytes(built, b"")
            log.info("spool_runs_indexed")
        self._indexed = True

    @contextmanager
    def _marked(self, run_id: str) -> Iterator[None]:
        """Hold the run's marker (created durably if new) shared while a record is written."""
        self._index()
        path = self.runs_dir / run_id
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                created = True
            except FileNotFoundError:
                self._indexed = False  # the spool folder was removed under us: index it again
                self._index()
                continue
            except FileExistsError:
                try:
                    fd = os.open(path, os.O_RDWR)
                except FileNotFoundError:
                    continue  # removed between the two opens: create it again
                created = False
            fcntl.flock(fd, fcntl.LOCK_SH)
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # replay removed this marker while we waited: take the new one
        try:
            if created:
                atomic.fsync_dir(self.runs_dir)  # the marker must survive whatever its record does
            yield
        finally:
            os.close(fd)  # releases the flock

    def _forget(self, run_ids: set[str]) -> None:
        """Remove the markers of runs left without records (under an exclusive flock each)."""
        ordered = sorted(run_ids)
        for start in range(0, len(ordered), FORGET_CHUNK):
            held: list[tuple[str, int]] = []
            try:
                for run_id in ordered[start:start + FORGET_CHUNK]:
                    try:
                        fd = os.open(self.runs_dir / run_id, os.O_RDWR)
                    except FileNotFoundError:
                        continue
                    held.append((run_id, fd))
                    fcntl.flock(fd, fcntl.LOCK_EX)
                left = {name.split(".")[1] for name in self._names()}
                for run_id, fd in held:
                    path = self.runs_dir / run_id
                    if run_id not in left and os.stat(path).st_ino == os.fstat(fd).st_ino:
                        path.unlink()  # not fsynced: a marker that comes back is only stale
            finally:
                for _, fd in held:
                    os.close(fd)

    # -- listing ------------------------------------------------------------------------------

    def _names(self, run_id: str | None = None) -> list[str]:
        # Names only (tens of bytes each): 10,000 records cost well under a megabyte. A run's
        # records are picked by name before anything is built or sorted.
        marker = f".{run_id}." if run_id is not None else ""
        try:
            with os.scandir(self.dir) as entries:
                return sorted(e.name for e in entries
                              if marker in e.name and _is_record_name(e.name) and e.is_file())
        except FileNotFoundError:
            return []

    def pending(self, run_id: str | None = None) -> Iterator[SpoolRecord]:
        """Records not yet confirmed, oldest first; bodies are read only when asked for."""
        if run_id is not None and not self.has_pending(run_id):
            return
        for name in self._names(run_id):
            record = _parse_name(self.dir / name)
            if record is not None and (run_id is None or record.run_id == run_id):
                yield record

    def has_pending(self, run_id: str) -> bool:
        """True while ``run_id`` may have records waiting (its later writes must queue behind them)."""
        if not self._indexed and not self.dir.exists():
            return False
        self._index()
        return (self.runs_dir / run_id).exists()

    def any_pending(self) -> bool:
        """True if any record waits; stops at the first one found."""
        try:
            with os.scandir(self.dir) as entries:
                return any(_is_record_name(e.name) for e in entries)
        except FileNotFoundError:
            return False

    def count(self) -> int:
        """How many records wait for replay (the /health spool_backlog): names are not parsed."""
        try:
            with os.scandir(self.dir) as entries:
                return sum(1 for e in entries if _is_record_name(e.name))
        except FileNotFoundError:
            return 0

    def dead(self) -> Iterator[SpoolRecord]:
        """Records moved aside because the database refused them for good."""
        if not self.dead_dir.exists():
            return
        for name in sorted(os.listdir(self.dead_dir)):
            record = _parse_name(self.dead_dir / name)
            if record is not None:
                yield record

    def discard(self, record: SpoolRecord) -> None:
        """Forget a record the database confirmed (a missing file means another replayer did)."""
        try:
            record.path.unlink()
        except FileNotFoundError:
            log.warning("spool_record_already_gone", run_id=record.run_id, seq=record.seq)

    def bury(self, record: SpoolRecord, exc: BaseException) -> None:
        """Move a record the database refuses for good to dead/, with the reason beside it."""
        atomic.ensure_dir(self.dead_dir)
        reason = {"error": type(exc).__name__, "code": getattr(exc, "code", None), "message": str(exc),
                  "run_id": record.run_id, "verb": record.verb, "seq": record.seq, "at": time.time()}
        # Sidecar first: a crash between the two steps leaves a stray reason, never a silent record.
        atomic.write_json(self.dead_dir / (record.path.name + REASON_SUFFIX), reason)
        os.replace(record.path, self.dead_dir / record.path.name)
        atomic.fsync_dir(self.dead_dir)
        atomic.fsync_dir(self.dir)
        log.error("spool_record_dead", run_id=record.run_id, verb=record.verb, seq=record.seq,
                  error=type(exc).__name__, reason=str(exc))

    def replay(
        self,
        store: RunStore,
        batch_size: int = 100,
        *,
        run_id: str | None = None,
        max_records: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> ReplayReport:
        """Apply pending records to ``store`` in order, in batches; stop at the first transient error."""
        started = clock()
        with self._flock(REPLAY_LOCK, blocking=False) as locked:
            if not locked:
                log.info("spool_replay_busy", reason="another process is replaying")
                return ReplayReport(0, 0, self.count(), clock() - started, busy=True)
            applied, dead, stopped = self._replay_locked(store, batch_size, run_id, max_records)
        report = ReplayReport(applied, dead, self.count(), clock() - started, stopped=stopped)
        log.info("spool_replayed", **report.as_dict())
        return report

    def _replay_locked(
        self, store: RunStore, batch_size: int, run_id: str | None, max_records: int | None
    ) -> tuple[int, int, str | None]:
        # A run-scoped drain also cleans up a marker its records no longer back.
        touched: set[str] = {run_id} if run_id is not None else set()
        try:
            return self._apply_pending(store, batch_size, run_id, max_records, touched)
        finally:
            if touched:
                self._forget(touched)

    def _apply_pending(
        self, store: RunStore, batch_size: int, run_id: str | None, max_records: int | None, touched: set[str]
    ) -> tuple[int, int, str | None]:
        applied = dead = 0
        chunk: list[SpoolRecord] = []
        for record in self.pending(run_id):
            if max_records is not None and applied + dead + len(chunk) >= max_records:
                break
            touched.add(record.run_id)
            chunk.append(record)
            if len(chunk) >= batch_size:
                done, refused, stopped = self._apply_chunk(store, chunk)
                applied, dead, chunk = applied + done, dead + refused, []
                if stopped:
                    return applied, dead, stopped
        else:
            if chunk:
                done, refused, stopped = self._apply_chunk(store, chunk)
                return applied + done, dead + refused, stopped
            return applied, dead, None
        done, refused, stopped = self._apply_chunk(store, chunk) if chunk else (0, 0, None)
        return applied + done, dead + refused, stopped or "max_records"

    def _apply_chunk(self, store: RunStore, chunk: list[SpoolRecord]) -> tuple[int, int, str | None]:
        """Apply records in order; with a store that has ``batch()``, in one transaction.

        In a batch each record is a savepoint: one refused record rolls back alone, and the
        batch's records are deleted (or buried) only once its commit succeeded, so a crash or a
        lost connection before the commit re-applies them later (idempotently), never loses them.
        """
        batch = getattr(store, "batch", None)
        done: list[SpoolRecord] = []
        refused: list[tuple[SpoolRecord, BaseException]] = []
        try:
            with batch() if batch is not None else contextlib.nullcontext():
                for record in chunk:
                    try:
                        _apply_twice(store, record)
                    except FileNotFoundError:
                        continue  # removed under us by an operator: nothing left to apply
                    except STOPPING_ERRORS:
                        raise
                    except RECORD_ERRORS as exc:
                        refused.append((record, exc))
                        if batch is None:
                            self.bury(record, exc)
                        continue
                    done.append(record)
                    if batch is None:
                        self.discard(record)
        except STOPPING_ERRORS as exc:
            # The database is the problem, not the records: keep them, let the breaker decide.
            log.warning("spool_replay_stopped", run_id=chunk[0].run_id, seq=chunk[0].seq,
                        error=type(exc).__name__, reason=str(exc))
            if batch is None:
                self._confirm(done)
                return len(done), len(refused), getattr(exc, "code", type(exc).__name__)
            return 0, 0, getattr(exc, "code", type(exc).__name__)  # nothing of the batch committed
        if batch is not None:
            for record in done:
                self.discard(record)
            for record, exc in refused:
                self.bury(record, exc)
        self._confirm(done)
        return len(done), len(refused), None

    def _confirm(self, batch: list[SpoolRecord]) -> None:
        """Make a batch's deletions durable with one folder fsync (a lost delete only re-applies)."""
        if batch:
            atomic.fsync_dir(self.dir)
            log.debug("spool_batch_applied", records=len(batch), last_seq=batch[-1].seq)


def apply_record(store: RunStore, record: SpoolRecord) -> Any:
    """Call the record's verb on ``store`` with its decoded arguments."""
    return getattr(store, record.verb)(**record.args())


def _apply_twice(store: RunStore, record: SpoolRecord) -> None:
    """Apply a record; a plain StoreError gets one more try before the record counts as refused."""
    try:
        apply_record(store, record)
    except STOPPING_ERRORS:
        raise
    except StoreError as exc:
        # e.g. a serialization failure or deadlock the store did not class as transient
        log.warning("spool_record_retry", run_id=record.run_id, seq=record.seq, reason=str(exc))
        apply_record(store, record)
