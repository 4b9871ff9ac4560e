"""LazyPool: a psycopg_pool pool opened on first use, with each call's errors translated.

For the readers and the callback outbox: short autocommit statements from many threads (web
workers) or one loop (the callback deliverer). Never opened at import or before a fork; the
write path (PostgresStore) keeps its own fenced connections.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from psycopg_pool import ConnectionPool

from persistence.postgres import DbTimeouts, wrap_exceptions


class LazyPool:
    """At most ``max_size`` connections to ``url``, opened as needed."""

    def __init__(self, url: str, *, name: str, timeouts: DbTimeouts | None = None, max_size: int = 4) -> None:
        self._url = url
        self._name = name
        self.timeouts = timeouts or DbTimeouts()
        self._max = max_size
        self._pool: ConnectionPool | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LazyPool(name={self._name!r})"  # never the URL: it may hold a password

    def _get(self) -> ConnectionPool:
        with self._lock:
            if self._pool is None:
                kwargs = {**self.timeouts.connect_kwargs(), "autocommit": True}
                self._pool = ConnectionPool(self._url, min_size=0, max_size=self._max, kwargs=kwargs,
                                            open=False, name=self._name)
                self._pool.open(wait=False)
            return self._pool

    def rows(self, action: str, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run one statement in autocommit; its rows (empty when it returns none)."""
        with (wrap_exceptions(action, url=self._url, deadline_s=self.timeouts.deadline_s),
              self._get().connection(timeout=self.timeouts.connect_s) as conn):
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def close(self) -> None:
        """Close the pool; the next call opens a new one."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
