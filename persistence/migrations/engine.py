"""Applies and rolls back the migrations of ``sql/migrations/`` safely on a live database.

- One deploy at a time: a session advisory lock, polled for a bounded time, serialises every
  migrating process; the second one waits, then finds nothing pending.
- One transaction per migration, recorded in ``runner_schema_migrations`` with the sha256 of
  its up file; an applied migration whose file changed is drift and stops ``upgrade``.
- DDL never queues behind live traffic for long: ``lock_timeout`` makes a blocked ALTER give up
  quickly, and the whole migration transaction is retried with a jittered backoff.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors as pgerr
from psycopg.rows import tuple_row
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from config.log import get_logger
from persistence.migrations.files import Migration, MigrationFileError, load_migrations
from persistence.migrations.types import (
    AppliedMigration,
    MigrationDrift,
    MigrationError,
    MigrationOptions,
    MigrationStatus,
    MigrationUsageError,
    StepResult,
)
from persistence.postgres.errors import wrap_exceptions

log = get_logger(__name__)

# Arbitrary constant: the advisory lock every migrating process of this app takes.
ADVISORY_LOCK_KEY = 7_146_032_411

CREATE_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS runner_schema_migrations (
    version     integer     PRIMARY KEY,
    name        text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    duration_ms integer     NOT NULL
)
"""
BOOKKEEPING_EXISTS = "SELECT to_regclass('runner_schema_migrations') IS NOT NULL"
SELECT_APPLIED = """
SELECT version, name, checksum, applied_at, duration_ms
FROM runner_schema_migrations ORDER BY version
"""
RECORD_APPLIED = """
INSERT INTO runner_schema_migrations (version, name, checksum, duration_ms)
VALUES (%(version)s, %(name)s, %(checksum)s, %(duration_ms)s)
"""
FORGET_APPLIED = "DELETE FROM runner_schema_migrations WHERE version = %(version)s"
TRY_ADVISORY_LOCK = "SELECT pg_try_advisory_lock(%(key)s)"
ADVISORY_UNLOCK = "SELECT pg_advisory_unlock(%(key)s)"
SET_DDL_TIMEOUTS = """
SELECT set_config('lock_timeout', %(lock_timeout)s, true),
       set_config('statement_timeout', %(statement_timeout)s, true)
"""
# Relation locks held by this backend, outside the system catalogs. A relation dropped in the
# transaction no longer has a pg_class row, hence the LEFT JOIN and the oid fallback.
HELD_LOCKS = """
SELECT coalesce(c.relname, 'oid ' || l.relation::text) AS relation, l.mode
FROM pg_locks l
LEFT JOIN pg_class c ON c.oid = l.relation
LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
  AND coalesce(n.nspname, '') NOT IN ('pg_catalog', 'information_schema')
  AND coalesce(n.nspname, '') NOT LIKE 'pg_toast%%'
ORDER BY 1, 2
"""


DEFAULT_OPTIONS = MigrationOptions()  # frozen: one shared default is safe

def migration_status(conn_or_url: psycopg.Connection[Any] | str, migrations_dir: Path | None = None) -> MigrationStatus:
    """Compare the database's applied migrations with the files; never changes anything."""
    migrations = _load(migrations_dir)
    if isinstance(conn_or_url, str):
        with wrap_exceptions("migration status", url=conn_or_url), _connect(conn_or_url, MigrationOptions()) as conn:
            return _status(conn, migrations)
    with wrap_exceptions("migration status"):
        return _status(conn_or_url, migrations)


def upgrade(url: str, to: int | None = None, *, options: MigrationOptions = DEFAULT_OPTIONS) -> tuple[StepResult, ...]:
    """Apply pending migrations (up to version ``to``), each in its own transaction."""
    migrations = _load(options.migrations_dir)
    with wrap_exceptions("migrate up", url=url), _locked_session(url, options) as conn:
        status = _status(conn, migrations)
        todo = _upgrade_steps(status, to)
        if not todo:
            log.info("no pending migrations", version=status.version)
        with _ddl_retry(options, "up") as retry:
            return tuple(retry(_run_step, conn, m, "up", options) for m in todo)


def downgrade(url: str, to: int | None = None, *,
              options: MigrationOptions = DEFAULT_OPTIONS) -> tuple[StepResult, ...]:
    """Roll back applied migrations down to version ``to`` (default: the last one only)."""
    migrations = {m.version: m for m in _load(options.migrations_dir)}
    with wrap_exceptions("migrate down", url=url), _locked_session(url, options) as conn:
        status = _status(conn, tuple(migrations.values()))
        if status.drifted:
            raise MigrationDrift(f"refusing to roll back over drift: {_labels(status.drifted)} changed after "
                                 "being applied; restore the original files first")
        applied = [m.version for m in status.applied]
        if to is None:
            to = applied[-2] if len(applied) > 1 else 0
        if to > status.version:
            raise MigrationUsageError(f"down --to {to}: the database is at version {status.version}; use `up`")
        todo = [v for v in reversed(applied) if v > to]
        missing = [v for v in todo if v not in migrations]
        if missing:
            raise MigrationDrift(f"cannot roll back version(s) {missing}: this code has no file for them; "
                                 "roll back with the code that added them")
        with _ddl_retry(options, "down") as retry:
            return tuple(retry(_run_step, conn, migrations[v], "down", options) for v in todo)


def plan(url: str, to: int | None = None, *, options: MigrationOptions = DEFAULT_OPTIONS) -> tuple[StepResult, ...]:
    """Apply pending migrations in one transaction that is rolled back; report durations and locks."""
    migrations = _load(options.migrations_dir)
    with wrap_exceptions("migrate plan", url=url), _locked_session(url, options) as conn:
        todo = _upgrade_steps(_status(conn, migrations), to)
        with _ddl_retry(options, "plan") as retry:
            return retry(_dry_run, conn, todo, options)


def _load(migrations_dir: Path | None) -> tuple[Migration, ...]:
    try:
        return load_migrations(migrations_dir)
    except MigrationFileError as exc:
        raise MigrationError(str(exc)) from exc


def _try_advisory_lock(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(TRY_ADVISORY_LOCK, {"key": ADVISORY_LOCK_KEY}).fetchone()
    return bool(row and row[0])


def _connect(url: str, options: MigrationOptions) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True, connect_timeout=max(2, int(options.connect_timeout_s)),
                           application_name="innovation-runner-migrate")


def _status(conn: psycopg.Connection[Any], migrations: tuple[Migration, ...]) -> MigrationStatus:
    # Tuple rows whatever the connection's default: the store's connections hand out dicts.
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        exists = cur.execute(BOOKKEEPING_EXISTS).fetchone()
        rows = cur.execute(SELECT_APPLIED).fetchall() if exists and exists[0] else []
    applied = tuple(AppliedMigration(*row) for row in rows)
    files = {m.version: m for m in migrations}
    done = {m.version for m in applied}
    return MigrationStatus(
        applied=applied,
        pending=tuple(m for m in migrations if m.version not in done),
        drifted=tuple(m for m in applied if m.version in files and files[m.version].checksum != m.checksum),
        unknown=tuple(m for m in applied if m.version not in files),
    )


def _upgrade_steps(status: MigrationStatus, to: int | None) -> tuple[Migration, ...]:
    """The migrations ``up`` would apply, or an error saying why it must not."""
    if status.drifted:
        raise MigrationDrift(
            f"refusing to migrate: {_labels(status.drifted)} changed after being applied (checksum "
            "differs). Migrations are append-only: restore the file and add a new migration instead"
        )
    if to is not None and to < status.version:
        raise MigrationUsageError(f"up --to {to}: the database is already at version {status.version}; "
                                  f"use `down --to {to}`")
    todo = tuple(m for m in status.pending if to is None or m.version <= to)
    if todo and status.unknown:
        raise MigrationDrift(f"refusing to migrate: the database has {_labels(status.unknown)}, which this "
                             "code does not know; deploy the newer code or roll those back with it")
    early = [m for m in todo if m.version < status.version]
    if early:
        raise MigrationDrift(f"refusing to migrate: {_labels(early)} is numbered below the applied version "
                             f"{status.version}; renumber it after the last applied migration")
    if status.unknown:
        log.warning("database has migrations this code does not know", unknown=_labels(status.unknown))
    return todo


@contextmanager
def _locked_session(url: str, options: MigrationOptions) -> Iterator[psycopg.Connection[Any]]:
    """A connection holding the migration advisory lock (waiting at most ``lock_wait_s``)."""
    with _connect(url, options) as conn:
        deadline = time.monotonic() + options.lock_wait_s
        waited = False
        while not _try_advisory_lock(conn):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise MigrationError(
                    f"another process has held the migration lock for over {options.lock_wait_s:g} s; "
                    "wait for that deploy to finish (see pg_locks, locktype 'advisory') and retry"
                )
            if not waited:
                log.info("waiting for the migration lock held by another process", max_wait_s=options.lock_wait_s)
                waited = True
            time.sleep(min(0.25, remaining))
        try:
            yield conn
        finally:
            if not conn.broken and not conn.closed:
                conn.execute(ADVISORY_UNLOCK, {"key": ADVISORY_LOCK_KEY})


def _run_step(conn: psycopg.Connection[Any], migration: Migration, direction: str,
              options: MigrationOptions) -> StepResult:
    """One migration in one transaction, together with its bookkeeping row."""
    with conn.transaction():
        conn.execute(CREATE_BOOKKEEPING)
        _set_timeouts(conn, options)
        started = time.perf_counter()
        conn.execute(migration.up_sql if direction == "up" else migration.down_sql)
        duration_ms = (time.perf_counter() - started) * 1000
        if direction == "up":
            conn.execute(RECORD_APPLIED, {"version": migration.version, "name": migration.name,
                                          "checksum": migration.checksum, "duration_ms": round(duration_ms)})
        else:
            conn.execute(FORGET_APPLIED, {"version": migration.version})
    event = "migration applied" if direction == "up" else "migration rolled back"
    log.info(event, migration=migration.label, duration_ms=round(duration_ms, 1))
    return StepResult(migration.version, migration.name, direction, duration_ms)


def _dry_run(conn: psycopg.Connection[Any], todo: tuple[Migration, ...],
             options: MigrationOptions) -> tuple[StepResult, ...]:
    """Run ``todo`` in one transaction, note each step's time and new locks, then roll back."""
    steps = []
    with conn.transaction(force_rollback=True):
        _set_timeouts(conn, options)
        held = set(_held_locks(conn))
        for migration in todo:
            started = time.perf_counter()
            conn.execute(migration.up_sql)
            duration_ms = (time.perf_counter() - started) * 1000
            now_held = _held_locks(conn)
            steps.append(StepResult(migration.version, migration.name, "up", duration_ms,
                                    tuple(lock for lock in now_held if lock not in held)))
            held.update(now_held)
    return tuple(steps)


def _held_locks(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    return [(row[0], row[1]) for row in conn.execute(HELD_LOCKS).fetchall()]


def _set_timeouts(conn: psycopg.Connection[Any], options: MigrationOptions) -> None:
    conn.execute(SET_DDL_TIMEOUTS, {"lock_timeout": f"{int(options.lock_timeout_s * 1000)}ms",
                                    "statement_timeout": f"{int(options.statement_timeout_s * 1000)}ms"})


@contextmanager
def _ddl_retry(options: MigrationOptions, command: str) -> Iterator[Any]:
    """A caller that retries a whole transaction while its table locks are not granted."""

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("table lock not granted within lock_timeout; retrying the migration",
                    command=command, attempt=state.attempt_number, max_attempts=options.lock_retries,
                    retry_in_s=round(state.upcoming_sleep, 2), error=str(exc).splitlines()[0] if exc else None)

    retrying = Retrying(
        stop=stop_after_attempt(max(1, options.lock_retries)),
        wait=wait_exponential_jitter(multiplier=0.5, max=10, jitter=0.5),
        retry=retry_if_exception_type(pgerr.LockNotAvailable),
        reraise=True,
        before_sleep=before_sleep,
    )
    yield retrying


def _labels(items: tuple[Any, ...] | list[Any]) -> str:
    return ", ".join(m.label for m in items)
