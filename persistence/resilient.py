"""ResilientStore: PostgreSQL behind a breaker and retries, with the spool (and files) as safety net.

    write  ─► [DUAL_WRITE: FileStore, always]
           ─► run has spooled records?  yes ─► spool (keeps the run's order), drain if healthy
           ─► breaker ─► retry(whole verb) ─► PostgresStore
                  └─ skipped / unavailable / schema mismatch / other store error ─► spool
    read   ─► database (through the breaker) with the run's spooled writes laid on top;
              DUAL_WRITE reads the files instead whenever the database is skipped or behind

The database never fails a run: no StoreError reaches the caller of a write. Conflict and
Superseded do, because they are answers about the run, not failures of the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from config.errors import Conflict, StoreError
from config.log import get_logger
from persistence.breaker import CLOSED, CircuitBreaker, CircuitOpen
from persistence.files import FileStore
from persistence.ports import RunStore
from persistence.queue import Claim, Lease
from persistence.records import FinalReport, RunErrorInfo, RunRequest, RunState, StageResult
from persistence.retry import RetryPolicy, call_with_retry, is_transient, timeout_kind
from persistence.spool import ReplayReport, Spool
from persistence.spool_codec import run_id_of
from persistence.spool_view import fold_outputs, fold_run

log = get_logger(__name__)


class ResilientStore:
    """A RunStore that keeps every write: database when healthy, spool (and files) otherwise."""

    def __init__(
        self,
        database: RunStore,
        spool: Spool,
        breaker: CircuitBreaker,
        retry: RetryPolicy = RetryPolicy(),
        *,
        files: FileStore | None = None,
        drain_batch: int = 100,
        drain_max_records: int = 500,
    ) -> None:
        self.database = database
        self.spool = spool
        self.breaker = breaker
        self.retry = retry
        self.files = files
        self.drain_batch = drain_batch
        # A run process drains at most this much; cron (replay_spool) drains the rest.
        self.drain_max_records = drain_max_records
        self.transient = getattr(database, "is_transient", is_transient)
        self.name = "database"  # where the last read came from: "database" or "files"
        self._guarded = _GuardedDatabase(self)
        self._closed_now = False
        self._drained_once = False
        self._draining = False

    # -- the database, guarded -------------------------------------------------------------

    def _retryable(self, exc: BaseException) -> bool:
        if not self.transient(exc) or isinstance(exc, CircuitOpen):
            return False
        kind = timeout_kind(exc)
        if kind is not None:
            # It already cost its whole timeout; asking again would only cost it again.
            log.warning("store_not_retried", reason=kind, code=getattr(exc, "code", None), error=str(exc))
            return False
        return True

    def call_database(self, verb: str, **kwargs: Any) -> Any:
        """One verb on the database through the breaker, retried as a whole while transient."""
        if not self.breaker.would_allow():
            # Open (or another process probes): skip at once, without a retry controller.
            raise CircuitOpen(f"database circuit is {self.breaker.state()}: skipping the database for now")

        def attempt() -> Any:
            with self.breaker.guard() as permit:
                result = getattr(self.database, verb)(**kwargs)
            if permit.probe and self.breaker.state() == CLOSED:
                self._closed_now = True  # this call closed the breaker: time to drain the spool
            return result

        return call_with_retry(self.retry, attempt, verb=verb, transient=self._retryable)

    def _read(self, verb: str, run_id: str) -> tuple[Any, bool]:
        try:
            return self.call_database(verb, run_id=run_id), True
        except StoreError as exc:
            log.warning("store_read_fallback", verb=verb, run_id=run_id, code=exc.code, reason=str(exc))
            return None, False

    # -- writes ------------------------------------------------------------------------------

    def _write(self, verb: str, **kwargs: Any) -> Any:
        run_id = run_id_of(verb, kwargs)
        if self.spool.has_pending(run_id):
            # Queue behind the run's earlier spooled writes so replay applies them in order.
            self.spool.append(verb, kwargs)
            log.info("store_write_spooled", verb=verb, run_id=run_id, reason="run has spooled writes")
            if self.breaker.would_allow():
                # While open, draining would only be refused; the probe path and cron drain later.
                self._drain(run_id)
            return None
        try:
            result = self.call_database(verb, **kwargs)
        except StoreError as exc:
            self.spool.append(verb, kwargs)
            log.warning("store_write_spooled", verb=verb, run_id=run_id, reason=exc.code, error=str(exc))
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
            if record.verb == "create_run":
                return record.args()["request"]
        return None

    def create_run(self, request: RunRequest) -> bool:
        """Record the run as QUEUED (files first in DUAL_WRITE); Conflict for another payload."""
        created = self.files.create_run(request) if self.files is not None else None
        queued = self._queued_request(request.run_id)
        if queued is not None:
            if queued != request:
                raise Conflict(f"run {request.run_id} already exists with a different payload; "
                               "use a new run_id for a new run")
            return bool(created)  # already journalled: the replay creates it
        result = self._write("create_run", request=request)
        if created is not None:
            return created
        return True if result is None else bool(result)

    def start_attempt(self, run_id: str, attempt: int) -> None:
        """Mark the run PROCESSING under ``attempt``."""
        if self.files is not None:
            self.files.start_attempt(run_id, attempt)
        self._write("start_attempt", run_id=run_id, attempt=attempt)

    def save_stage(self, run_id: str, attempt: int, result: StageResult) -> None:
        """Persist one finished stage's output."""
        if self.files is not None:
            self.files.save_stage(run_id, attempt, result)
        self._write("save_stage", run_id=run_id, attempt=attempt, result=result)

    def complete_run(self, run_id: str, attempt: int, report: FinalReport) -> None:
        """Store the report and cards and mark the run COMPLETED."""
        if self.files is not None:
            self.files.complete_run(run_id, attempt, report)
        self._write("complete_run", run_id=run_id, attempt=attempt, report=report)

    def fail_run(self, run_id: str, attempt: int, error: RunErrorInfo) -> None:
        """Mark the run FAILED."""
        if self.files is not None:
            self.files.fail_run(run_id, attempt, error)
        self._write("fail_run", run_id=run_id, attempt=attempt, error=error)

    # -- the queue (persistence.queue.RunQueue) ---------------------------------------------
    # Claims are never spooled: a claim is a question only the system of record can answer.
    # When the database cannot answer, DUAL_WRITE claims on the file mirror (one host, file
    # locks); DATABASE_ONLY claims nothing and accepted runs wait, safely recorded, until it
    # is back, when the lapsed leases and the spool bring every run home.

    def _queue(self, verb: str, unavailable: Any, **kwargs: Any) -> tuple[Any, str]:
        try:
            return self.call_database(verb, **kwargs), "database"
        except StoreError as exc:
            if self.files is not None:
                log.warning("queue_on_files", verb=verb, code=exc.code, reason=str(exc))
                return getattr(self.files, verb)(**kwargs), "files"
            log.warning("queue_unavailable", verb=verb, code=exc.code, reason=str(exc))
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
        claim, where = self._queue("claim", None, run_id=run_id, owner=owner, lease_seconds=lease_seconds)
        return self._mirror_claim(claim, where)

    def claim_next(self, owner: str, lease_seconds: int, limit: int) -> list[Claim]:
        """Claim up to ``limit`` QUEUED runs, oldest first, after replaying what the spool holds.

        Replaying first matters after an outage: a run requeued from an attempt whose writes
        were spooled must find them in the database, or its next attempt would resume from
        stages that replay then refuses as superseded.
        """
        if self.breaker.state() == CLOSED and self.spool.count():
            self._drain(None)
        claims, where = self._queue("claim_next", [], owner=owner, lease_seconds=lease_seconds, limit=limit)
        return [self._mirror_claim(c, where) for c in claims]

    def renew(self, run_id: str, attempt: int, owner: str, lease_seconds: int) -> bool:
        """Extend the lease; while the database cannot answer, keep running (fencing guards the writes).

        Never asked of the file mirror: a database-claimed run has no lease there, and a
        "no" would stop every running run for the length of an outage.
        """
        try:
            return self.call_database("renew", run_id=run_id, attempt=attempt, owner=owner,
                                      lease_seconds=lease_seconds)
        except StoreError as exc:
            log.warning("lease_renew_deferred", run_id=run_id, attempt=attempt, code=exc.code, reason=str(exc))
            return True

    def requeue(self, run_id: str, attempt: int, reason: str) -> bool:
        """Put an interrupted run back to QUEUED (the reaper does it later if nothing can answer now)."""
        done, _ = self._queue("requeue", False, run_id=run_id, attempt=attempt, reason=reason)
        return done

    def leases(self) -> list[Lease]:
        """Every PROCESSING run with its lease."""
        found, _ = self._queue("leases", [])
        return found

    # -- reads -------------------------------------------------------------------------------

    def get_run(self, run_id: str) -> RunState | None:
        """The run's state: the database's plus its spooled writes, or the files' mirror."""
        pending = list(self.spool.pending(run_id))
        if self.files is not None and pending:
            return self._from_files(self.files.get_run(run_id))
        state, ok = self._read("get_run", run_id)
        if self.files is not None and (not ok or state is None):
            mirrored = self.files.get_run(run_id)
            if mirrored is not None or not ok:
                return self._from_files(mirrored)
        self.name = "database" if ok and not pending else "files"
        return fold_run(state, pending)

    def load_stage_outputs(self, run_id: str) -> dict[int, Mapping[str, Any]]:
        """Outputs of the finished stages, including those still in the spool."""
        pending = list(self.spool.pending(run_id))
        if self.files is not None and pending:
            return self._from_files(self.files.load_stage_outputs(run_id))
        outputs, ok = self._read("load_stage_outputs", run_id)
        if self.files is not None and not ok:
            return self._from_files(self.files.load_stage_outputs(run_id))
        self.name = "database" if ok and not pending else "files"
        return fold_outputs(outputs or {}, pending)

    def _from_files(self, value: Any) -> Any:
        self.name = "files"
        return value

    @property
    def source(self) -> str:
        """Where the last read came from: 'database' or 'files' (the spool is files too)."""
        return self.name

    def close(self) -> None:
        """Release the database connections."""
        self.database.close()
        if self.files is not None:
            self.files.close()


class _GuardedDatabase:
    """The database verbs through breaker and retry, without spooling: what replay writes to."""

    name = "database"

    def __init__(self, store: ResilientStore) -> None:
        self._store = store
        # Replay applies a batch of records in one transaction when the database can.
        self.batch = getattr(store.database, "batch", None)

    def create_run(self, request: RunRequest) -> bool:
        return self._store.call_database("create_run", request=request)

    def start_attempt(self, run_id: str, attempt: int) -> None:
        self._store.call_database("start_attempt", run_id=run_id, attempt=attempt)

    def save_stage(self, run_id: str, attempt: int, result: StageResult) -> None:
        self._store.call_database("save_stage", run_id=run_id, attempt=attempt, result=result)

    def complete_run(self, run_id: str, attempt: int, report: FinalReport) -> None:
        self._store.call_database("complete_run", run_id=run_id, attempt=attempt, report=report)

    def fail_run(self, run_id: str, attempt: int, error: RunErrorInfo) -> None:
        self._store.call_database("fail_run", run_id=run_id, attempt=attempt, error=error)
