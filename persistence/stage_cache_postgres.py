"""The stage cache in PostgreSQL: the ``"StageCache"`` table (migration 0005), first entry wins.

Used in DATABASE_ONLY and DUAL_WRITE. The cache is an optimisation, so it never waits long and
never fails a run: a short connect and statement timeout, and any database error is raised to
the runner, which logs it and carries on as a miss. One connection per process, opened lazily.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from pipeline.stage_cache import CachedStage

CONNECT_TIMEOUT_S = 3
STATEMENT_TIMEOUT_MS = 3_000


class PostgresStageCache:
    """Implements ``pipeline.stage_cache.StageCache`` over the ``"StageCache"`` table."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                                         # plan_cache_mode: as persistence.postgres.connection says why.
                                         options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS} "
                                                 "-c plan_cache_mode=force_custom_plan",
                                         application_name="runner-stage-cache")
        return self._conn

    def _reset(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def get(self, key: str) -> CachedStage | None:
        """The entry for ``key``, or None."""
        with self._lock:
            try:
                row = self._connection().execute(
                    'SELECT stage, output, usage, model FROM "StageCache" WHERE key = %s', (key,)).fetchone()
            except psycopg.Error:
                self._reset()  # a broken connection is not reused
                raise
        if row is None:
            return None
        return CachedStage(stage=int(row[0]), output=dict(row[1]), usage=dict(row[2] or {}), model=str(row[3]))

    def put(self, key: str, entry: CachedStage) -> None:
        """Keep ``entry`` unless ``key`` has one already."""
        with self._lock:
            try:
                self._connection().execute(
                    'INSERT INTO "StageCache" (key, stage, model, output, usage) VALUES (%s, %s, %s, %s, %s) '
                    "ON CONFLICT (key) DO NOTHING",
                    (key, entry.stage, entry.model, Jsonb(dict(entry.output)), Jsonb(dict(entry.usage))))
            except psycopg.Error:
                self._reset()
                raise

    def close(self) -> None:
        """Close the connection, if one was opened."""
        with self._lock:
            self._reset()
