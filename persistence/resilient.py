"""ResilientStore: PostgreSQL behind a breaker and retries, with the spool as safety net.

    write  ─► the record: run has spooled records?  yes ─► spool (keeps the run's order)
                          ─► breaker ─► retry(whole command) ─► PostgresStore
                                 └─ skipped / unavailable / schema mismatch / store error ─► spool
           ─► then, DUAL_WRITE: the file mirror (best effort, its own breaker; persistence.mirror)
    read   ─► the record: database (through the breaker) with the run's spooled writes laid on
              top; while the database cannot be read, DUAL_WRITE reads the mirror plus the spool
    resume ─► load_stage_outputs reconciles both sides and heals the one behind
    replay ─► the spool into the database, then the mirror healed from the record

In DUAL_WRITE the database plus the spool is the record and the files are its mirror: the
record is written first, so a kill between the two writes leaves only the mirror behind, and
any interleaving of kills converges to database = files. The database never fails a run: no
StoreError reaches the caller of a write, except RunNotRecorded when the spool cannot be
written either. Conflict and Superseded do, because they are answers about the run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from config.errors import Conflict, StoreError, StoreUnavailable
from config.log import get_logger
from persistence.breaker import CLOSED, CircuitBreaker, CircuitOpen
from persistence.commands import CancelRun, ClaimRun, Command, CreateRun, RetryRun, SaveStage, StartAttempt
from persistence.errors import RunNotRecorded
from persistence.files import FileStore
from persistence.mirror import FileMirror
from persistence.ports import CommandVerbs, Pingable, QueuedStore, ReplayTarget, Snapshots, SourcedRun
from persistence.queue import Claim, Lease
from persistence.records import RunRequest, RunSnapshot, StageResult, StageState, utcnow
from persistence.retry import RetryPolicy, call_with_retry, timeout_kind
from persistence.spool import ReplayReport, Spool
from persistence.spool.view import fold_outputs, fold_run

log = get_logger(__name__)

T = TypeVar("T")


class Database(QueuedStore, ReplayTarget, Pingable, Snapshots, Protocol):
    """What ResilientStore needs of its database: a store and queue that replays, pings and snapshots."""


class ResilientStore(CommandVerbs):
    """A RunStore that keeps every write: database when healthy, spool (and files) otherwise."""

    def __init__(
        self,
        database: Database,
        spool: Spool,
        breaker: CircuitBreaker,
        retry: RetryPolicy | None = None,
        *,
        mirror: FileMirror | None = None,
        drain_batch: int = 100,
        drain_max_records: int = 500,
    ) -> None:
        self.database = database
        self.spool = spool
        self.breaker = breaker
        self.retry = retry or RetryPolicy()
        self.mirror = mirror  # DUAL_WRITE: the file mirror
        self.drain_batch = drain_batch
        # A run process drains at most this much; cron (replay_spool) drains the rest.
        self.drain_max_records = drain_max_records
        self.name = "database"
        self._guarded = _GuardedDatabase(self)
        self._closed_now = False
        self._drained_once = False
        self._draining = False

    # -- the database, guarded -------------------------------------------------------------

    def _retryable(self, exc: BaseException) -> bool:
        if not isinstance(exc, StoreUnavailable) or isinstance(exc, CircuitOpen):
            return False
        kind = timeout_kind(exc)
        if kind is not None:
            # It already cost its whole timeout; asking again would only cost it again.
            log.warning("store_not_retried", reason=kind, code=exc.code, error=str(exc))
            return False
        return True

    def call_database(self, label: str, call: Callable[[], T]) -> T:
        """One call on the database through the breaker, retried as a whole while transient."""
        first = self.breaker.acquire()
        if first is None:
            # Open (or another process probes): skip at once, without a retry controller.
            raise CircuitOpen(f"database circuit is {self.breaker.state()}: skipping the database for now")
        permits = iter([first])  # the first attempt uses it: one read of the breaker's state per call

        def attempt() -> T:
            with self.breaker.guard(next(permits, None)) as permit:
                result = call()
            if permit.probe and self.breaker.state() == CLOSED:
                self._closed_now = True  # this call closed the breaker: time to drain the spool
            return result

        return call_with_retry(self.retry, attempt, verb=label, transient=self._retryable)

    def _read(self, label: str, call: Callable[[], T]) -> tuple[T | None, bool]:
        try:
            return self.call_database(label, call), True
        except StoreError as exc:
            log.warning("store_read_fallback", verb=label, code=exc.code, reason=str(exc))
            return None, False

    # -- writes ------------------------------------------------------------------------------

    def apply(self, command: Command) -> bool:
        """Apply one write: the record first (database, or the spool), then the file mirror (DUAL_WRITE).

        The record goes first so the mirror can never be ahead of it: a process killed between
        the two leaves the mirror behind, and the next resume or replay heals it.
        """
        if isinstance(command, CreateRun):
            return self._create(command)
        recorded = self._record(command)
        if self.mirror is not None:
            self.mirror.apply(command)
        if isinstance(command, CancelRun | RetryRun):
            # Did it take? The database's answer; journalled (None): yes, the replay applies it in order.
            return bool(recorded) if recorded is not None else True
        return False

    def _create(self, command: CreateRun) -> bool:
        known: RunRequest | None = None
        if self.mirror is not None:
            # The mirror may know the id from an earlier delivery while the database is down.
            mirrored = self.mirror.read_run(command.run_id)
            known = mirrored.state.request if mirrored is not None and mirrored.state is not None else None
            if known is not None and known != command.request:
                raise Conflict(f"run {command.run_id} already exists with a different payload; "
                               "use a new run_id for a new run")
        pending = self._has_pending(command.run_id)  # looked at once: it costs a stat per webhook
        queued = self._queued_request(command.run_id) if pending else None
        if queued is not None:
            if queued != command.request:
                raise Conflict(f"run {command.run_id} already exists with a different payload; "
                               "use a new run_id for a new run")
            created = False  # already journalled: the replay creates it
        else:
            result = self._record(command, pending=pending)
            created = True if result is None else result
            if result is None and known is not None:
                created = False  # journalled now, but the mirror shows an earlier delivery of it
        if self.mirror is not None:
            self.mirror.apply(command)
        return created

    def apply_to_database(self, command: Command) -> bool:
        """The database itself or StoreError, never the spool (ports.DirectWrite); then the file mirror."""
        if isinstance(command, CreateRun):
            queued = self._queued_request(command.run_id)
            if queued is not None and queued != command.request:
                raise Conflict(f"run {command.run_id} already exists with a different payload; "
                               "use a new run_id for a new run")
        result = self.call_database(command.kind, lambda: self.database.apply(command))
        if self.mirror is not None:
            self.mirror.apply(command)  # the mirror follows the system of record, which has it
        return result

    def _record(self, command: Command, *, pending: bool | None = None) -> bool | None:
        """Write ``command`` to the database, or journal it; None when it was journalled.

        ``pending``: whether the run has spooled writes, when the caller has just looked.
        RunNotRecorded when neither could take it (the database failed and the spool is unwritable).
        """
        run_id = command.run_id
        if pending is None:
            pending = self._has_pending(run_id)
        if pending:
            # Queue behind the run's earlier spooled writes so replay applies them in order.
            self._journal(command, "run has spooled writes")
            if self.breaker.would_allow():
                # While open, draining would only be refused; the probe path and cron drain later.
                self._drain(run_id)
            return None
        try:
            result = self.call_database(command.kind, lambda: self.database.apply(command))
        except StoreError as exc:
            self._journal(command, exc.code, exc)
            return None
        if self._closed_now or not self._drained_once:
            self._closed_now = False
            self._drained_once = True
            if self.spool.any_pending():
                self._drain(None)
        return result

    def _has_pending(self, run_id: str) -> bool:
        try:
            return self.spool.has_pending(run_id)
        except OSError as exc:
            log.warning("spool_unreadable", run_id=run_id, error=type(exc).__name__, reason=str(exc))
            return False

    def _journal(self, command: Command, reason: str, cause: StoreError | None = None) -> None:
        try:
            self.spool.append(command)
        except OSError as exc:
            # The code only, never the driver's message: this one reaches HTTP answers.
            why = f"the database is unavailable ({cause.code})" if cause is not None else "the run has spooled writes"
            raise RunNotRecorded(
                f"run {command.run_id}: {command.kind} was not recorded: {why} and the spool at {self.spool.dir} "
                f"cannot be written ({type(exc).__name__}: {exc.strerror or exc}); nothing was recorded, retry later"
            ) from exc
        log.warning("store_write_spooled", kind=command.kind, run_id=command.run_id, reason=reason,
                    error=str(cause) if cause is not None else None)

    def _drain(self, run_id: str | None) -> ReplayReport | None:
        """Replay (part of) the spool from this process, bounded; never re-entered by its own calls."""
        if self._draining or self.drain_max_records <= 0:
            return None  # 0: this process never drains (a web worker must not replay inside a request)
        self._draining = True
        try:
            return self.spool.replay(self._guarded, self.drain_batch, run_id=run_id,
                                     max_records=self.drain_max_records)
        finally:
            self._draining = False

    def replay(self, batch_size: int = 100, max_records: int | None = None) -> ReplayReport:
        """Replay the spool (at most ``max_records``) into the database, then heal the file mirror."""
        report = self.spool.replay(self._guarded, batch_size, max_records=max_records)
        self.heal_mirrors()
        return report

    def heal_mirrors(self) -> int:
        """DUAL_WRITE: bring the files of every run the record changed since the last heal in line with it.

        Runs with writes still in the spool wait for their replay. Returns how many runs were checked.
        """
        mirror = self.mirror
        if mirror is None:
            return 0
        since = mirror.watermark()
        try:
            changed = self.call_database("updated_since", lambda: self.database.updated_since(since))
        except StoreError as exc:
            log.info("mirror_heal_deferred", reason=f"the database cannot be read: {exc.message}")
            return 0
        todo = dict(changed)
        for run_id in sorted(mirror.behind - set(todo)):
            todo[run_id] = since
        mark: datetime | None = None
        checked = 0
        for run_id, updated in sorted(todo.items(), key=lambda item: item[1]):
            if self._has_pending(run_id):
                mark = updated if mark is None else min(mark, updated)
                continue
            try:
                snapshot = self._snapshot(run_id)
            except StoreError as exc:
                log.info("mirror_heal_deferred", run_id=run_id, reason=exc.message)
                return checked
            checked += 1
            if snapshot is not None and not mirror.heal(snapshot):
                return checked  # the disk refused: the watermark stays, the next replay tries again
        target = mark if mark is not None else max(todo.values(), default=None)
        if target is not None:
            mirror.advance(target)
        return checked

    def _snapshot(self, run_id: str) -> RunSnapshot | None:
        return self.call_database("snapshot", lambda: self.database.snapshot(run_id))

    def _queued_request(self, run_id: str) -> RunRequest | None:
        if not self._has_pending(run_id):
            return None
        for record in self.spool.pending(run_id):
            if record.kind == CreateRun.kind:
                command = record.command()
                if isinstance(command, CreateRun):
                    return command.request
        return None

    # -- the queue (persistence.queue.RunQueue) ---------------------------------------------
    # Claims are never spooled: a claim is a question only the system of record can answer.
    # When the database cannot answer, DUAL_WRITE claims on the file mirror (one host, file
    # locks), but only runs whose creation still sits in the spool: the database has never seen
    # those, so it cannot have granted them an attempt the mirror missed (a process killed after
    # the database's claim and before the mirror's, or a full disk, leaves the files at QUEUED).
    # Every other run waits, as in DATABASE_ONLY, safely recorded, until the database is back,
    # when the lapsed leases and the spool bring every run home.

    def _queue(self, label: str, on_database: Callable[[QueuedStore], T], unavailable: T,
               on_files: Callable[[FileStore], T] | None = None) -> tuple[T, str]:
        try:
            return self.call_database(label, lambda: on_database(self.database)), "database"
        except StoreError as exc:
            if self.mirror is not None:
                log.warning("queue_on_files", verb=label, code=exc.code, reason=str(exc))
                try:
                    return (on_files or on_database)(self.mirror.files), "files"
                except OSError as disk:  # a full or broken disk: nobody can answer now
                    log.warning("queue_unavailable", verb=label, code=type(disk).__name__, reason=str(disk))
                    return unavailable, "none"
            log.warning("queue_unavailable", verb=label, code=exc.code, reason=str(exc))
            return unavailable, "none"

    def _mirror_claim(self, claim: Claim | None, where: str, owner: str, lease_seconds: int) -> Claim | None:
        if claim is None or self.mirror is None:
            return claim
        if where == "database":
            # Move the mirror to the database's attempt so a later file-side claim can never reuse it.
            self.mirror.apply(StartAttempt(claim.run_id, claim.attempt))
        elif where == "files":
            # The mirror granted it: journal the claim for the record, lease included, so a process
            # that dies with it is found by the reaper once the database is back.
            expires = utcnow() + timedelta(seconds=lease_seconds)
            try:
                self._journal(ClaimRun(claim.run_id, claim.attempt, owner, expires), "claimed on the file mirror")
            except RunNotRecorded as exc:
                log.error("claim_not_recorded", run_id=claim.run_id, attempt=claim.attempt, reason=exc.message)
        return claim

    def claim(self, run_id: str, owner: str, lease_seconds: int) -> Claim | None:
        """Claim one run; a run whose creation still sits in the spool is replayed first."""
        if self._has_pending(run_id) and self.breaker.would_allow():
            self._drain(run_id)
        claim, where = self._queue("claim", lambda s: s.claim(run_id, owner, lease_seconds), None,
                                   on_files=lambda files: self._claim_on_files(files, run_id, owner, lease_seconds))
        return self._mirror_claim(claim, where, owner, lease_seconds)

    def _claim_on_files(self, files: FileStore, run_id: str, owner: str, lease_seconds: int) -> Claim | None:
        """The mirror's claim, for a run the database has never seen (its creation is still spooled)."""
        if self._queued_request(run_id) is None:
            return None
        return files.claim(run_id, owner, lease_seconds)

    def claim_next(self, owner: str, lease_seconds: int, limit: int) -> list[Claim]:
        """Claim up to ``limit`` QUEUED runs, oldest first, after replaying what the spool holds.

        Replaying first matters after an outage: a run requeued from an attempt whose writes
        were spooled must find them in the database, or its next attempt would resume from
        stages that replay then refuses as superseded.
        """
        if self.breaker.state() == CLOSED and self.spool.count():
            self._drain(None)
        none: list[Claim] = []
        claims, where = self._queue(
            "claim_next", lambda s: s.claim_next(owner, lease_seconds, limit), none,
            on_files=lambda files: files.claim_next(owner, lease_seconds, limit,
                                                    only=lambda run_id: self._queued_request(run_id) is not None))
        return [c for c in (self._mirror_claim(c, where, owner, lease_seconds) for c in claims) if c is not None]

    def renew(self, run_id: str, attempt: int, owner: str, lease_seconds: int) -> bool:
        """Extend the lease; while the database cannot answer, keep running (fencing guards the writes).

        Never asked of the file mirror: a database-claimed run has no lease there, and a
        "no" would stop every running run for the length of an outage.
        """
        try:
            return self.call_database("renew", lambda: self.database.renew(run_id, attempt, owner, lease_seconds))
        except StoreError as exc:
            log.warning("lease_renew_deferred", run_id=run_id, attempt=attempt, code=exc.code, reason=str(exc))
            return True

    def requeue(self, run_id: str, attempt: int, reason: str) -> bool:
        """Put an interrupted run back to QUEUED (the reaper does it later if nothing can answer now)."""
        done, _ = self._queue("requeue", lambda s: s.requeue(run_id, attempt, reason), False)
        return done

    def leases(self) -> list[Lease]:
        """Every PROCESSING run with its lease."""
        none: list[Lease] = []
        found, _ = self._queue("leases", lambda s: s.leases(), none)
        return found

    # -- reads -------------------------------------------------------------------------------

    def read_run(self, run_id: str) -> SourcedRun:
        """The run's state with its source: the record (database plus spooled writes), else the mirror's."""
        pending = list(self.spool.pending(run_id))
        state, ok = self._read("get_run", lambda: self.database.read_run(run_id).state)
        if ok and (state is not None or pending or self.mirror is None):
            return SourcedRun(fold_run(state, pending), "files" if pending else "database")
        if self.mirror is None:
            return SourcedRun(fold_run(None, pending), "files")
        # The database cannot answer (or never saw the run): the mirror, with the spool laid over.
        mirrored = self.mirror.read_run(run_id)
        return SourcedRun(fold_run(mirrored.state if mirrored is not None else None, pending), "files")

    def load_stage_outputs(self, run_id: str) -> dict[int, Mapping[str, Any]]:
        """Outputs of the finished stages (for a resume); in DUAL_WRITE both sides are reconciled first.

        The record (database plus spool, or, while the database cannot be read, the mirror plus
        the spool) decides. Stages the mirror lacks are written to it; stages only the mirror has
        (a crash of an older release between its two writes) are recorded under the run's attempt.
        """
        pending = list(self.spool.pending(run_id))
        outputs, ok = self._read("load_stage_outputs", lambda: self.database.load_stage_outputs(run_id))
        if self.mirror is None:
            return fold_outputs(outputs or {}, pending)
        mirrored = self.mirror.outputs(run_id)
        record = fold_outputs(outputs if ok and outputs is not None else mirrored, pending)
        self._reconcile(run_id, record, mirrored)
        return record

    def _reconcile(self, run_id: str, record: dict[int, Mapping[str, Any]],
                   mirrored: Mapping[int, Mapping[str, Any]]) -> None:
        mirror = self.mirror
        if mirror is None:
            return
        only_mirrored = {n: output for n, output in mirrored.items() if n not in record}
        behind = any(mirrored.get(n) != output for n, output in record.items())
        if not only_mirrored and not behind:
            return
        state = self.read_run(run_id).state
        if state is None:
            return
        for number, output in sorted(only_mirrored.items()):
            stage = state.stages.get(number)
            files_state = mirror.read_run(run_id)
            if files_state is not None and files_state.state is not None:
                stage = files_state.state.stages.get(number, stage)
            log.warning("record_healed_from_mirror", run_id=run_id, stage=number, attempt=state.attempt)
            self._record(SaveStage(run_id, state.attempt, _result(number, output, stage)))
            record[number] = output
            state = replace(state, stages={**state.stages, number: stage or StageState("completed", utcnow(), 0)})
        mirror.heal(RunSnapshot(state, record, None))

    def close(self) -> None:
        """Release the database connections."""
        self.database.close()
        if self.mirror is not None:
            self.mirror.files.close()


def _result(number: int, output: Mapping[str, Any], stage: StageState | None) -> StageResult:
    """A StageResult for a healed stage, with the timing its source knew (else now, zero length)."""
    completed = stage.completed_at if stage is not None and stage.completed_at is not None else utcnow()
    duration = stage.duration_ms if stage is not None and stage.duration_ms is not None else 0
    return StageResult(number, output, completed - timedelta(milliseconds=duration), completed)


class _GuardedDatabase:
    """The database through breaker and retry, without spooling: what replay writes to."""

    def __init__(self, store: ResilientStore) -> None:
        self._store = store

    def apply_batch(self, commands: Sequence[Command]) -> list[BaseException | None]:
        """One batch through the breaker, retried as a whole while transient."""
        database = self._store.database
        return self._store.call_database("replay batch", lambda: database.apply_batch(commands))


__all__ = ["Database", "ResilientStore"]
