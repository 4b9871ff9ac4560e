"""ResilientStore: PostgreSQL behind a breaker and retries, with the spool (and files) as safety net.

    write  ─► [DUAL_WRITE: FileStore, always]
           ─► run has spooled records?  yes ─► spool (keeps the run's order), drain if healthy
           ─► breaker ─► retry(whole command) ─► PostgresStore
                  └─ skipped / unavailable / schema mismatch / other store error ─► spool
    read   ─► database (through the breaker) with the run's spooled writes laid on top;
              DUAL_WRITE reads the files instead whenever the database is skipped or behind

The database never fails a run: no StoreError reaches the caller of a write. Conflict and
Superseded do, because they are answers about the run, not failures of the database.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from config.errors import Conflict, StoreError, StoreUnavailable
from config.log import get_logger
from persistence.breaker import CLOSED, CircuitBreaker, CircuitOpen
from persistence.commands import Command, CreateRun
from persistence.files import FileStore
from persistence.ports import CommandVerbs, Pingable, QueuedStore, ReplayTarget, SourcedRun
from persistence.queue import Claim, Lease
from persistence.records import RunRequest
from persistence.retry import RetryPolicy, call_with_retry, timeout_kind
from persistence.spool import ReplayReport, Spool
from persistence.spool.view import fold_outputs, fold_run

log = get_logger(__name__)

T = TypeVar("T")


class Database(QueuedStore, ReplayTarget, Pingable, Protocol):
    """What ResilientStore needs of its database: a store and queue that replays and pings."""


class ResilientStore(CommandVerbs):
    """A RunStore that keeps every write: database when healthy, spool (and files) otherwise."""

    def __init__(
        self,
        database: Database,
        spool: Spool,
        breaker: CircuitBreaker,
        retry: RetryPolicy | None = None,
        *,
        files: FileStore | None = None,
        drain_batch: int = 100,
        drain_max_records: int = 500,
    ) -> None:
        self.database = database
        self.spool = spool
        self.breaker = breaker
        self.retry = retry or RetryPolicy()
        self.files = files
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
        if not self.breaker.would_allow():
            # Open (or another process probes): skip at once, without a retry controller.
            raise CircuitOpen(f"database circuit is {self.breaker.state()}: skipping the database for now")

        def attempt() -> T:
            with self.breaker.guard() as permit:
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
        """Apply one write: the file mirror (DUAL_WRITE), then the database or the spool."""
        if isinstance(command, CreateRun):
            return self._create(command)
        if self.files is not None:
            self.files.apply(command)
        self._record(command)
        return False

    def _create(self, command: CreateRun) -> bool:
        created = self.files.apply(command) if self.files is not None else None
        queued = self._queued_request(command.run_id)
        if queued is not None:
            if queued != command.request:
                raise Conflict(f"run {command.run_id} already exists with a different payload; "
                               "use a new run_id for a new run")
            return bool(created)  # already journalled: the replay creates it
        result = self._record(command)
        if created is not None:
            return created
        return True if result is None else result

    def apply_to_database(self, command: Command) -> bool:
        """The database itself or StoreError, never the spool (ports.DirectWrite); then the file mirror."""
        if isinstance(command, CreateRun):
            queued = self._queued_request(command.run_id)
            if queued is not None and queued != command.request:
                raise Conflict(f"run {command.run_id} already exists with a different payload; "
                               "use a new run_id for a new run")
        result = self.call_database(command.kind, lambda: self.database.apply(command))
        if self.files is not None:
            try:
                self.files.apply(command)  # the mirror follows the system of record, which has it
            except (OSError, StoreError) as exc:
                log.warning("file_mirror_failed", kind=command.kind, run_id=command.run_id, error=str(exc))
        return result

    def _record(self, command: Command) -> bool | None:
        """Write ``command`` to the database, or journal it; None when it was journalled."""
        run_id = command.run_id
        if self.spool.has_pending(run_id):
            # Queue behind the run's earlier spooled writes so replay applies them in order.
            self.spool.append(command)
            log.info("store_write_spooled", kind=command.kind, run_id=run_id, reason="run has spooled writes")
            if self.breaker.would_allow():
                # While open, draining would only be refused; the probe path and cron drain later.
                self._drain(run_id)
            return None
        try:
            result = self.call_database(command.kind, lambda: self.database.apply(command))
        except StoreError as exc:
            self.spool.append(command)
            log.warning("store_write_spooled", kind=command.kind, run_id=run_id, reason=exc.code, error=str(exc))
            return None
        if self._closed_now or not self._drained_once:
            self._closed_now = False
            self._drained_once = True
            if self.spool.any_pending():
                self._drain(None)
        return result

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
        """Replay the spool (at most ``max_records``) into the database; stops early if it fails."""
        return self.spool.replay(self._guarded, batch_size, max_records=max_records)

    def _queued_request(self, run_id: str) -> RunRequest | None:
        if not self.spool.has_pending(run_id):
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
    # locks); DATABASE_ONLY claims nothing and accepted runs wait, safely recorded, until it
    # is back, when the lapsed leases and the spool bring every run home.

    def _queue(self, label: str, on_database: Callable[[QueuedStore], T], unavailable: T) -> tuple[T, str]:
        try:
            return self.call_database(label, lambda: on_database(self.database)), "database"
        except StoreError as exc:
            if self.files is not None:
                log.warning("queue_on_files", verb=label, code=exc.code, reason=str(exc))
                return on_database(self.files), "files"
            log.warning("queue_unavailable", verb=label, code=exc.code, reason=str(exc))
            return unavailable, "none"

    def _mirror_claim(self, claim: Claim | None, where: str) -> Claim | None:
        if claim is not None and where == "database" and self.files is not None:
            # Move the mirror to the database's attempt so a later file-side claim can never reuse it.
            self.files.start_attempt(claim.run_id, claim.attempt)
        return claim

    def claim(self, run_id: str, owner: str, lease_seconds: int) -> Claim | None:
        """Claim one run; a run whose creation still sits in the spool is replayed first."""
        if self.spool.has_pending(run_id) and self.breaker.would_allow():
            self._drain(run_id)
        claim, where = self._queue("claim", lambda s: s.claim(run_id, owner, lease_seconds), None)
        return self._mirror_claim(claim, where)

    def claim_next(self, owner: str, lease_seconds: int, limit: int) -> list[Claim]:
        """Claim up to ``limit`` QUEUED runs, oldest first, after replaying what the spool holds.

        Replaying first matters after an outage: a run requeued from an attempt whose writes
        were spooled must find them in the database, or its next attempt would resume from
        stages that replay then refuses as superseded.
        """
        if self.breaker.state() == CLOSED and self.spool.count():
            self._drain(None)
        none: list[Claim] = []
        claims, where = self._queue("claim_next", lambda s: s.claim_next(owner, lease_seconds, limit), none)
        return [c for c in (self._mirror_claim(c, where) for c in claims) if c is not None]

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
        """The run's state with its source: the database's plus its spooled writes, or the files' mirror."""
        pending = list(self.spool.pending(run_id))
        if self.files is not None and pending:
            return self.files.read_run(run_id)
        state, ok = self._read("get_run", lambda: self.database.read_run(run_id).state)
        if self.files is not None and (not ok or state is None):
            mirrored = self.files.read_run(run_id)
            if mirrored.state is not None or not ok:
                return mirrored
        return SourcedRun(fold_run(state, pending), "database" if ok and not pending else "files")

    def load_stage_outputs(self, run_id: str) -> dict[int, Mapping[str, Any]]:
        """Outputs of the finished stages, including those still in the spool."""
        pending = list(self.spool.pending(run_id))
        if self.files is not None and pending:
            return self.files.load_stage_outputs(run_id)
        outputs, ok = self._read("load_stage_outputs", lambda: self.database.load_stage_outputs(run_id))
        if self.files is not None and not ok:
            return self.files.load_stage_outputs(run_id)
        return fold_outputs(outputs or {}, pending)

    def close(self) -> None:
        """Release the database connections."""
        self.database.close()
        if self.files is not None:
            self.files.close()


class _GuardedDatabase:
    """The database through breaker and retry, without spooling: what replay writes to."""

    def __init__(self, store: ResilientStore) -> None:
        self._store = store

    def apply_batch(self, commands: Sequence[Command]) -> list[BaseException | None]:
        """One batch through the breaker, retried as a whole while transient."""
        database = self._store.database
        return self._store.call_database("replay batch", lambda: database.apply_batch(commands))


__all__ = ["Database", "ResilientStore"]
