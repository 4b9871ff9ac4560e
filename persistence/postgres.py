"""PostgresStore: the RunStore over PostgreSQL (tables of contract §6, schema of sql/migrations).

One lazily opened connection per process, no pool: the runner writes a handful of rows per stage.
Every verb is one transaction and a bounded call: server-side timeouts cover a slow server, and
a watchdog cuts the socket when the per-call deadline passes, which also covers a network that
silently drops packets (``tcp_user_timeout`` is the kernel's backstop). Driver errors leave this
module only as StoreUnavailable, SchemaMismatch or StoreError (see ``pg_errors``).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from config.errors import Conflict, StoreUnavailable, Superseded
from config.log import get_logger
from persistence import postgres_queue
from persistence import postgres_sql as q
from persistence.migrator import migration_status
from persistence.pg_errors import DeadlineExceeded, is_transient, wrap_exceptions
from persistence.queue import Claim, Lease
from persistence.records import (
    FinalReport,
    RunErrorInfo,
    RunRequest,
    RunState,
    RunStatus,
    StageResult,
    StageState,
)

__all__ = ["DbTimeouts", "PostgresStore", "is_transient", "wrap_exceptions"]

log = get_logger(__name__)

APPLICATION_NAME = "innovation-runner"


@dataclass(frozen=True)
class DbTimeouts:
    """Every bound on a database call, in seconds. Production defaults; tests shrink them."""

    connect_s: float = 5.0  # libpq rounds below 2 s up to 2 s
    statement_s: float = 10.0
    lock_s: float = 3.0
    idle_in_transaction_s: float = 30.0
    deadline_s: float = 15.0  # whole verb, enforced by our watchdog
    keepalives_idle_s: int = 10
    keepalives_interval_s: int = 5
    keepalives_count: int = 3
    tcp_user_timeout_s: float = 20.0

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for psycopg.connect (they override the same keys in the URL)."""
        options = " ".join((
            f"-c statement_timeout={int(self.statement_s * 1000)}",
            f"-c lock_timeout={int(self.lock_s * 1000)}",
            f"-c idle_in_transaction_session_timeout={int(self.idle_in_transaction_s * 1000)}",
            "-c TimeZone=UTC",
        ))
        return {
            "connect_timeout": max(1, round(self.connect_s)),
            "options": options,
            "keepalives": 1,
            "keepalives_idle": self.keepalives_idle_s,
            "keepalives_interval": self.keepalives_interval_s,
            "keepalives_count": self.keepalives_count,
            "tcp_user_timeout": int(self.tcp_user_timeout_s * 1000),
            "application_name": APPLICATION_NAME,
            # No server-side prepared statements: a transaction-mode pooler in front of
            # DATABASE_URL would hand them to the wrong backend.
            "prepare_threshold": None,
        }


class _Arm:
    """One verb's deadline: ``fired`` says whether the watchdog cut its connection."""

    __slots__ = ("conn", "deadline", "fired")

    def __init__(self, conn: psycopg.Connection[Any], deadline: float) -> None:
        self.conn = conn
        self.deadline = deadline
        self.fired = False


class _Watchdog:
    """Shuts a connection's socket down when its verb is still running at its deadline.

    One long-lived thread per store and process serves every verb: starting a timer thread
    per database call cost more than the call's own Python. Arming and firing happen under
    one lock, so a verb that finishes just in time is never cut.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: set[_Arm] = set()
        self._pid: int | None = None

    def arm(self, conn: psycopg.Connection[Any], seconds: float) -> _Arm:
        """Watch ``conn`` for ``seconds``; disarm() when the verb is done."""
        arm = _Arm(conn, time.monotonic() + seconds)
        with self._cond:
            if self._pid != os.getpid():  # first use, or a forked child: threads do not survive fork
                self._pid, self._armed = os.getpid(), set()
                threading.Thread(target=self._watch, name="db-watchdog", daemon=True).start()
            self._armed.add(arm)
            self._cond.notify()
        return arm

    def disarm(self, arm: _Arm) -> None:
        """The verb finished (or failed on its own): stop watching it."""
        with self._cond:
            self._armed.discard(arm)

    def _watch(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for arm in [a for a in self._armed if a.deadline <= now]:
                    self._armed.discard(arm)
                    arm.fired = True
                    _cut(arm.conn)
                upcoming = min((a.deadline for a in self._armed), default=None)
                self._cond.wait(None if upcoming is None else max(0.0, upcoming - now))


def _cut(conn: psycopg.Connection[Any]) -> None:
    """Shut a connection's socket down so a read blocked on it returns at once."""
    try:
        # A dup'ed fd shares the socket: shutdown() wakes the blocked read at once,
        # while psycopg keeps ownership (and the close) of its own descriptor.
        with socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except (OSError, psycopg.Error):
        pass  # already closed: the call is failing on its own


class _Slot:
    """One connection, the process that opened it, and the lock that keeps one verb on it at a time."""

    def __init__(self) -> None:
        self.conn: psycopg.Connection[Any] | None = None
        self.pid = os.getpid()
        self.lock = threading.RLock()
        self.batch = False  # inside PostgresStore.batch(): never reconnect
        self.owner = threading.current_thread()


class PostgresStore:
    """A RunStore over PostgreSQL; knows nothing of files, breakers or spools."""

    name = "database"
    is_transient = staticmethod(is_transient)  # the retry layer's predicate, found on the store

    def __init__(self, url: str, timeouts: DbTimeouts = DbTimeouts(), *, per_thread: bool = False) -> None:
        self._url = url
        self.timeouts = timeouts
        # A run subprocess keeps one connection (per_thread=False). A web worker's threads each
        # get their own, so one slow request never queues the others behind a shared socket.
        self._local = threading.local() if per_thread else None
        self._shared = _Slot()
        self._slots = [self._shared]
        self._slots_lock = threading.Lock()
        self._inherited: list[psycopg.Connection[Any]] = []
        self._watchdog = _Watchdog()

    def __repr__(self) -> str:
        return f"PostgresStore(name={self.name!r})"  # never the URL: it may hold a password

    # -- connection and transaction ----------------------------------------------------------

    def _slot(self) -> _Slot:
        if self._local is None:
            return self._shared
        slot = getattr(self._local, "slot", None)
        if slot is None:
            slot = self._local.slot = _Slot()
            with self._slots_lock:
                # Threads come and go (a health probe runs in a short-lived one): close what the
                # dead ones opened, or every new thread would leave a connection behind.
                dead = [s for s in self._slots if s is not self._shared and not s.owner.is_alive()]
                self._slots = [s for s in self._slots if s not in dead] + [slot]
            for stale in dead:
                with stale.lock:
                    self._discard(stale)
        return slot

    def _connection(self, slot: _Slot) -> psycopg.Connection[Any]:
        if slot.batch and (slot.conn is None or slot.conn.closed or slot.conn.broken):
            # A new connection would commit this verb outside the batch's transaction.
            raise StoreUnavailable("database batch: the connection was lost mid-batch")
        if slot.conn is not None and os.getpid() != slot.pid:
            # Forked after connecting: the socket belongs to the parent. Keep a reference so
            # garbage collection never sends a Terminate on the parent's behalf.
            self._inherited.append(slot.conn)
            slot.conn = None
        if slot.conn is not None and (slot.conn.closed or slot.conn.broken):
            self._discard(slot)
        if slot.conn is None:
            slot.pid = os.getpid()
            slot.conn = psycopg.connect(self._url, autocommit=False, **self.timeouts.connect_kwargs())
        return slot.conn

    @staticmethod
    def _discard(slot: _Slot) -> None:
        conn, slot.conn = slot.conn, None
        if conn is not None:
            try:
                conn.close()
            except (psycopg.Error, OSError):
                pass  # closing a connection that already broke: nothing left to release

    @contextmanager
    def _transaction(self, action: str, deadline_s: float | None = None) -> Iterator[psycopg.Connection[Any]]:
        """One verb: a whole transaction, bounded by the deadline, with errors translated."""
        deadline = self.timeouts.deadline_s if deadline_s is None else deadline_s
        slot = self._slot()
        with wrap_exceptions(action, url=self._url, deadline_s=deadline):
            if not slot.lock.acquire(timeout=deadline):
                raise StoreUnavailable(f"database {action}: the connection stayed busy for {deadline:g} s")
            try:
                conn = self._connection(slot)
                arm = self._watchdog.arm(conn, deadline)
                try:
                    with conn.transaction():
                        yield conn
                except (psycopg.Error, OSError) as exc:
                    if arm.fired:
                        raise DeadlineExceeded(action) from exc
                    raise
                finally:
                    self._watchdog.disarm(arm)
                    if arm.fired or conn.closed or conn.broken:
                        self._discard(slot)
            finally:
                slot.lock.release()

    @contextmanager
    def batch(self, action: str = "batch") -> Iterator[None]:
        """Run the verbs called inside in one transaction (each verb a savepoint), one commit at the end.

        For replay: a batch costs one commit instead of one per record. While it is open the
        connection is never replaced: a lost connection fails every later verb of the batch.
        """
        slot = self._slot()
        with wrap_exceptions(action, url=self._url, deadline_s=self.timeouts.deadline_s):
            if not slot.lock.acquire(timeout=self.timeouts.deadline_s):
                raise StoreUnavailable(f"database {action}: the connection stayed busy")
            try:
                conn = self._connection(slot)
                slot.batch = True
                try:
                    with conn.transaction():
                        yield
                finally:
                    slot.batch = False
                    if conn.closed or conn.broken:
                        self._discard(slot)
            finally:
                slot.lock.release()

    @staticmethod
    def _fence(conn: psycopg.Connection[Any], run_id: str, attempt: int) -> None:
        """Lock the run row; refuse the write if the run is unknown or owned by a newer attempt."""
        row = conn.execute(q.LOCK_RUN, {"run_id": run_id}).fetchone()
        if row is None:
            raise Superseded(f"run {run_id} is not in the database: it was never created there")
        if row[0] > attempt:
            raise Superseded(f"run {run_id}: attempt {attempt} was superseded by attempt {row[0]}; write refused")

    # -- RunStore verbs ------------------------------------------------------------------------

    def create_run(self, request: RunRequest) -> bool:
        """Record the run as QUEUED; False if this same request exists, Conflict for another."""
        params = request.as_dict()
        with self._transaction("create_run") as conn:
            if conn.execute(q.INSERT_RUN, params).fetchone() is not None:
                return True
            row = conn.execute(q.SELECT_REQUEST, params).fetchone()
        if row is not None and tuple(row) != (request.user_id, request.company_id, request.document_url):
            raise Conflict(f"run {request.run_id} already exists with a different payload; "
                           "use a new run_id for a new run")
        return False

    def get_run(self, run_id: str) -> RunState | None:
        """The run's state, or None when the database has never seen it."""
        with self._transaction("get_run") as conn:
            row = conn.execute(q.SELECT_RUN, {"run_id": run_id}).fetchone()
        return None if row is None else _state(row)

    def start_attempt(self, run_id: str, attempt: int) -> None:
        """Mark PROCESSING under ``attempt``; an older attempt is refused."""
        with self._transaction("start_attempt") as conn:
            self._fence(conn, run_id, attempt)
            conn.execute(q.START_ATTEMPT, {"run_id": run_id, "attempt": attempt,
                                           "seq": q.write_seq(attempt, q.SEQ_START)})

    def save_stage(self, run_id: str, attempt: int, result: StageResult) -> None:
        """Upsert the stage's row, its "stageNOutput" column, timings and current stage."""
        output = Jsonb(dict(result.output))
        timing = {"started_at": result.started_at.isoformat(), "completed_at": result.completed_at.isoformat(),
                  "duration_ms": result.duration_ms}
        params = {"run_id": run_id, "attempt": attempt, "stage": result.stage, "output": output,
                  "started_at": result.started_at, "completed_at": result.completed_at,
                  "duration_ms": result.duration_ms, "timing": Jsonb(timing),
                  "seq": q.write_seq(attempt, q.SEQ_PER_STAGE * result.stage)}
        with self._transaction("save_stage") as conn:
            self._fence(conn, run_id, attempt)
            conn.execute(q.UPSERT_STAGE_OUTPUT, params)
            conn.execute(q.SAVE_STAGE_ON_RUN, params)

    def load_stage_outputs(self, run_id: str) -> dict[int, Mapping[str, Any]]:
        """Outputs of the stages already saved, by stage number."""
        with self._transaction("load_stage_outputs") as conn:
            rows = conn.execute(q.SELECT_STAGE_OUTPUTS, {"run_id": run_id}).fetchall()
        return {number: output for number, output in rows}

    def complete_run(self, run_id: str, attempt: int, report: FinalReport) -> None:
        """Store the report and its cards and mark the run COMPLETED, in one transaction."""
        cards = [{"run_id": run_id, "attempt": attempt, "number": c.number, "title": c.title,
                  "content": c.content} for c in report.cards]
        with self._transaction("complete_run") as conn:
            self._fence(conn, run_id, attempt)
            if cards:
                with conn.cursor() as cur:
                    cur.executemany(q.UPSERT_CARD, cards)
            conn.execute(q.COMPLETE_RUN, {"run_id": run_id, "markdown": report.markdown,
                                          "seq": q.write_seq(attempt, q.SEQ_COMPLETE)})

    def fail_run(self, run_id: str, attempt: int, error: RunErrorInfo) -> None:
        """Mark the run FAILED with its stage, code and message."""
        with self._transaction("fail_run") as conn:
            self._fence(conn, run_id, attempt)
            conn.execute(q.FAIL_RUN, {"run_id": run_id, "stage": error.stage, "code": error.code,
                                      "message": error.message, "seq": q.write_seq(attempt, q.SEQ_FAIL)})

    # -- the queue (persistence.queue.RunQueue; SQL in postgres_queue) --------------------------

    def claim(self, run_id: str, owner: str, lease_seconds: int) -> Claim | None:
        """Claim one run if it is QUEUED or its lease lapsed."""
        return postgres_queue.claim(self, run_id, owner, lease_seconds)

    def claim_next(self, owner: str, lease_seconds: int, limit: int) -> list[Claim]:
        """Claim up to ``limit`` QUEUED runs with FOR UPDATE SKIP LOCKED."""
        return postgres_queue.claim_next(self, owner, lease_seconds, limit)

    def renew(self, run_id: str, attempt: int, owner: str, lease_seconds: int) -> bool:
        """Extend the lease of a run we hold."""
        return postgres_queue.renew(self, run_id, attempt, owner, lease_seconds)

    def requeue(self, run_id: str, attempt: int, reason: str) -> bool:
        """Put an interrupted run back to QUEUED."""
        return postgres_queue.requeue(self, run_id, attempt, reason)

    def leases(self) -> list[Lease]:
        """Every PROCESSING run with its lease."""
        return postgres_queue.leases(self)

    # -- health --------------------------------------------------------------------------------

    def ping(self, timeout_s: float) -> None:
        """Round-trip ``SELECT 1`` within ``timeout_s``, or raise StoreUnavailable."""
        with self._transaction("ping", deadline_s=timeout_s) as conn:
            conn.execute(q.PING)

    def schema_state(self) -> str:
        """'ok', 'behind', 'drift' or 'unknown' (see migrator.MigrationStatus.state).

        Raises StoreUnavailable when the database cannot be asked.
        """
        with self._transaction("schema check") as conn:
            return migration_status(conn).state

    def close(self) -> None:
        """Close every connection this store opened; the next verb reopens one."""
        with self._slots_lock:
            slots = list(self._slots)
        for slot in slots:
            with slot.lock:
                self._discard(slot)


def _state(row: tuple[Any, ...]) -> RunState:
    (run_id, user_id, company_id, document_url, status, attempt, current_stage, timings,
     error_stage, error_code, error_message, created_at, updated_at, completed_at, lease_owner, lease_expires_at, interruption) = row
    lease = None if lease_owner is None else {
        "owner": lease_owner, "expires_at": lease_expires_at.isoformat() if lease_expires_at else None}
    has_error = error_code is not None or error_message is not None
    return RunState(
        request=RunRequest(run_id=run_id, company_id=company_id, user_id=user_id, document_url=document_url),
        status=RunStatus(status),
        attempt=attempt,
        current_stage=current_stage,
        stages={
            int(n): StageState("completed", _parse(t.get("completed_at")), t.get("duration_ms"))
            for n, t in sorted((timings or {}).items(), key=lambda item: int(item[0]))
        },
        error=RunErrorInfo(error_stage, error_code or "", error_message or "") if has_error else None,
        created_at=created_at,
        updated_at=updated_at,
        completed_at=completed_at,
        extra={"lease": lease, "last_interruption": interruption},  # the same keys FileStore reports
    )


def _parse(moment: str | None) -> datetime | None:
    return datetime.fromisoformat(moment) if moment else None
