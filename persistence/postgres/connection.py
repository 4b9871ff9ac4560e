"""Connection handling for PostgresStore: bounds, one connection per process (or thread), a watchdog.

Every call is bounded: server-side timeouts cover a slow server, and a watchdog cuts the socket
when the per-call deadline passes, which also covers a network that silently drops packets
(``tcp_user_timeout`` is the kernel's backstop). Rows come back as dicts (``dict_row``). Driver
errors leave only as StoreUnavailable, SchemaMismatch or StoreError (see ``errors``).

The watchdog's one thread is stopped before any ``fork()`` of its process (``os.register_at_fork``)
and restarts on the next call, so a forked child never inherits a thread or a lock held by one.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

from config.errors import StoreUnavailable
from persistence.postgres.errors import DeadlineExceeded, wrap_exceptions

APPLICATION_NAME = "innovation-runner"
Conn = psycopg.Connection[DictRow]


@dataclass(frozen=True)
class DbTimeouts:
    """Every bound on a database call, in seconds. Production defaults; tests shrink them.

    ``prepare``: use server-side prepared statements for the hot writes. Turn it off behind a
    transaction-mode pooler (PgBouncer, Supavisor :6543), which would hand them to another backend.
    """

    connect_s: float = 5.0  # libpq rounds below 2 s up to 2 s
    statement_s: float = 10.0
    lock_s: float = 3.0
    idle_in_transaction_s: float = 30.0
    deadline_s: float = 15.0  # whole call, enforced by the watchdog
    keepalives_idle_s: int = 10
    keepalives_interval_s: int = 5
    keepalives_count: int = 3
    tcp_user_timeout_s: float = 20.0
    prepare: bool = False

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for psycopg.connect (they override the same keys in the URL)."""
        options = " ".join((
            f"-c statement_timeout={int(self.statement_s * 1000)}",
            f"-c lock_timeout={int(self.lock_s * 1000)}",
            f"-c idle_in_transaction_session_timeout={int(self.idle_in_transaction_s * 1000)}",
            "-c TimeZone=UTC",
            # A prepared statement's plan is made for each execution, with the table as it is
            # then: a generic plan cached while "PipelineRun" was small (a new deployment, a
            # server without autovacuum) kept scanning it whole as it grew, one webhook repeat
            # costing 11 ms at 60,000 runs instead of 0.4. Parsing is still saved.
            "-c plan_cache_mode=force_custom_plan",
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
            # Prepared on first use when enabled (statements passed prepare=True prepare at once).
            "prepare_threshold": 0 if self.prepare else None,
        }


class _Arm:
    """One call's deadline: ``fired`` says whether the watchdog cut its connection."""

    __slots__ = ("conn", "deadline", "fired")

    def __init__(self, conn: Conn, deadline: float) -> None:
        self.conn = conn
        self.deadline = deadline
        self.fired = False


_WATCHDOGS: weakref.WeakSet[Watchdog] = weakref.WeakSet()


def _pause_all_watchdogs() -> None:
    for watchdog in list(_WATCHDOGS):
        watchdog.pause()


os.register_at_fork(before=_pause_all_watchdogs)


class Watchdog:
    """Shuts a connection's socket down when its call is still running at its deadline.

    One thread per store and process serves every call (a timer thread per call cost more than
    the call). Arming and firing happen under one lock, so a call that finishes in time is never
    cut. ``pause`` stops the thread while nothing is armed; the next ``arm`` starts it again.

    The thread sleeps until the earliest deadline it knows of and is woken only for an earlier
    one. Calls share one deadline, so a new call's is almost always later: a busy web worker
    arms thousands of calls a second without waking the thread, whose every wake-up costs a
    context switch and a turn of the GIL taken from the calls.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: set[_Arm] = set()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._stop = False
        self._wake_at = math.inf  # when the thread wakes next by itself (inf: only when notified)
        _WATCHDOGS.add(self)

    def arm(self, conn: Conn, seconds: float) -> _Arm:
        """Watch ``conn`` for ``seconds``; disarm() when the call is done."""
        arm = _Arm(conn, time.monotonic() + seconds)
        with self._cond:
            if self._pid != os.getpid() or self._thread is None or not self._thread.is_alive():
                # First use, after a pause, or a forked child (threads do not survive fork).
                self._pid, self._armed, self._stop = os.getpid(), set(), False
                self._wake_at = math.inf
                self._thread = threading.Thread(target=self._watch, name="db-watchdog", daemon=True)
                self._thread.start()
            self._armed.add(arm)
            if arm.deadline < self._wake_at:
                self._wake_at = arm.deadline  # so that calls armed before it wakes do not notify again
                self._cond.notify()
        return arm

    def disarm(self, arm: _Arm) -> None:
        """The call finished (or failed on its own): stop watching it."""
        with self._cond:
            self._armed.discard(arm)

    def pause(self) -> None:
        """Stop the thread if no call is being watched (before a fork); a busy watchdog keeps going."""
        with self._cond:
            thread = self._thread
            if thread is None or self._pid != os.getpid() or self._armed:
                return
            self._stop = True
            self._cond.notify()
        thread.join()

    def _watch(self) -> None:
        with self._cond:
            while not self._stop:
                now = time.monotonic()
                for arm in [a for a in self._armed if a.deadline <= now]:
                    self._armed.discard(arm)
                    arm.fired = True
                    _cut(arm.conn)
                self._wake_at = min((a.deadline for a in self._armed), default=math.inf)
                self._cond.wait(None if self._wake_at == math.inf else max(0.0, self._wake_at - now))


def _cut(conn: Conn) -> None:
    """Shut a connection's socket down so a read blocked on it returns at once."""
    try:
        # A dup'ed fd shares the socket: shutdown() wakes the blocked read at once,
        # while psycopg keeps ownership (and the close) of its own descriptor.
        with socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except (OSError, psycopg.Error):
        pass  # already closed: the call is failing on its own


class _Watched:
    """The watchdog cuts ``conn`` past ``deadline``; the error that causes becomes DeadlineExceeded.

    A class, not a generator: it wraps every database call, and a generator context manager
    costs several times as much.
    """

    __slots__ = ("_action", "_arm", "_watchdog")

    def __init__(self, watchdog: Watchdog, conn: Conn, action: str, deadline: float) -> None:
        self._watchdog = watchdog
        self._action = action
        self._arm = watchdog.arm(conn, deadline)

    def __enter__(self) -> _Arm:
        return self._arm

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self._watchdog.disarm(self._arm)
        if self._arm.fired and isinstance(exc, psycopg.Error | OSError):
            raise DeadlineExceeded(self._action) from exc


class _Slot:
    """One connection, the process that opened it, and the lock that keeps one call on it at a time."""

    def __init__(self) -> None:
        self.conn: Conn | None = None
        self.pid = os.getpid()
        self.lock = threading.RLock()
        self.owner = threading.current_thread()


class _Local(threading.local):
    slot: _Slot | None = None


class Connections:
    """Lazily opened connections: one per process, or a psycopg_pool pool (``pool_size``, web workers).

    A web worker's threads share at most ``pool_size`` connections instead of holding one each;
    the pool is opened at first use in the process that uses it (a forked child opens its own).
    """

    def __init__(self, url: str, timeouts: DbTimeouts, *, per_thread: bool = False, pool_size: int = 0) -> None:
        self.url = url
        self.timeouts = timeouts
        self._pool_size = pool_size
        self._pool: ConnectionPool[Conn] | None = None
        self._pool_pid: int | None = None
        self._local = _Local() if per_thread else None
        self._shared = _Slot()
        self._slots = [self._shared]
        self._slots_lock = threading.Lock()
        self._inherited: list[Conn] = []
        self._watchdog = Watchdog()

    def __repr__(self) -> str:
        return "Connections()"  # never the URL: it may hold a password

    def _slot(self) -> _Slot:
        if self._local is None:
            return self._shared
        slot = self._local.slot
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

    def _connection(self, slot: _Slot) -> Conn:
        if slot.conn is not None and os.getpid() != slot.pid:
            # Forked after connecting: the socket belongs to the parent. Keep a reference so
            # garbage collection never sends a Terminate on the parent's behalf.
            self._inherited.append(slot.conn)
            slot.conn = None
        if slot.conn is not None and (slot.conn.closed or slot.conn.broken):
            self._discard(slot)
        if slot.conn is None:
            slot.pid = os.getpid()
            slot.conn = psycopg.connect(self.url, autocommit=True, row_factory=dict_row,
                                        **self.timeouts.connect_kwargs())
        return slot.conn

    @staticmethod
    def _discard(slot: _Slot) -> None:
        conn, slot.conn = slot.conn, None
        if conn is not None:
            # Closing a connection that already broke: nothing left to release.
            with contextlib.suppress(psycopg.Error, OSError):
                conn.close()

    def _get_pool(self) -> ConnectionPool[Conn]:
        pool = self._pool
        if pool is not None and self._pool_pid == os.getpid():
            return pool  # the webhook's path: no lock once the pool is open
        with self._slots_lock:
            if self._pool is None or self._pool_pid != os.getpid():
                # A forked child never touches its parent's pool: its threads did not survive the fork.
                kwargs = {**self.timeouts.connect_kwargs(), "autocommit": True, "row_factory": dict_row}
                self._pool = ConnectionPool(self.url, connection_class=Conn, kwargs=kwargs,
                                            min_size=1, max_size=self._pool_size, open=False, name="web-store",
                                            reconnect_timeout=max(60.0, self.timeouts.deadline_s))
                self._pool.open(wait=False)
                self._pool_pid = os.getpid()
            return self._pool

    @contextmanager
    def session(self, action: str, deadline_s: float | None = None) -> Iterator[Conn]:
        """One bounded call on an autocommit connection, with errors translated.

        Each statement commits on its own unless the caller opens ``conn.transaction()``.
        """
        deadline = self.timeouts.deadline_s if deadline_s is None else deadline_s
        if self._pool_size:
            # One generator and no lock for the checkout and the return: the pool's own
            # connection() and nested generator context managers cost as much as the webhook's INSERT.
            with wrap_exceptions(action, url=self.url, deadline_s=deadline):
                pool = self._get_pool()
                # Waiting for a free connection is bounded like connecting: a database that is down
                # fails fast (and opens the breaker) instead of holding the request for the whole deadline.
                conn = pool.getconn(timeout=self.timeouts.connect_s)
                try:
                    with _Watched(self._watchdog, conn, action, deadline):
                        yield conn
                finally:
                    # The pool rolls back a connection left in a transaction and discards a broken
                    # one (a connection the watchdog cut is).
                    pool.putconn(conn)
            return
        slot = self._slot()
        with wrap_exceptions(action, url=self.url, deadline_s=deadline):
            if not slot.lock.acquire(timeout=deadline):
                raise StoreUnavailable(f"database {action}: the connection stayed busy for {deadline:g} s")
            try:
                conn = self._connection(slot)
                arm = None
                try:
                    with _Watched(self._watchdog, conn, action, deadline) as arm:
                        yield conn
                finally:
                    if (arm is not None and arm.fired) or conn.closed or conn.broken:
                        self._discard(slot)  # cut, or broken: the next call connects afresh
            finally:
                slot.lock.release()

    @contextmanager
    def transaction(self, action: str, deadline_s: float | None = None) -> Iterator[Conn]:
        """One bounded call as one transaction."""
        with self.session(action, deadline_s) as conn, conn.transaction():
            yield conn

    def close(self) -> None:
        """Close every connection opened here; the next call reopens one."""
        with self._slots_lock:
            slots = list(self._slots)
            pool, self._pool = (self._pool, None) if self._pool_pid == os.getpid() else (None, None)
        if pool is not None:
            pool.close()
        for slot in slots:
            with slot.lock:
                self._discard(slot)
