"""Read-only database diagnostics for the cron jobs: reachability, connections, plans, columns.

One short-lived autocommit connection, bounded on every side (connect timeout, statement and
lock timeouts, TCP user timeout), named ``innovation-runner-cron`` in ``pg_stat_activity`` so
the connection count can tell the checker from the runner. Nothing here writes: EXPLAIN ANALYZE
runs only the status API's SELECT, for a random run id that matches no row. Driver errors leave
as StoreUnavailable, SchemaMismatch or StoreError (``wrap_exceptions``).
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg

from persistence.migrations.engine import migration_status
from persistence.migrations.types import MigrationStatus
from persistence.postgres import sql as q
from persistence.postgres.errors import wrap_exceptions
from persistence.schema_expectations import EXPECTED_COLUMNS, PIPELINE_RUN, compare_columns

APPLICATION_NAME = "innovation-runner-cron"

CONNECTION_COUNTS = """
SELECT count(*),
       count(*) FILTER (WHERE state = 'active'),
       count(*) FILTER (WHERE state = 'idle'),
       count(*) FILTER (WHERE state IN ('idle in transaction', 'idle in transaction (aborted)'))
FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend'
"""
LIVE_COLUMNS = """
SELECT table_name, column_name
FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name = ANY(%(tables)s)
"""
PRIMARY_KEY_INDEX = """
SELECT i.relname
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
WHERE x.indrelid = to_regclass(quote_ident(%(table)s)) AND x.indisprimary
"""
# The exact query GET /api/pipeline/<run_id>/status runs (PostgresStore.get_run).
EXPLAIN_STATUS_QUERY = "EXPLAIN (ANALYZE, FORMAT JSON) " + q.SELECT_RUN


@dataclass(frozen=True)
class ConnectionCounts:
    """Client connections to the current database, by state (this checker's own included)."""

    total: int
    active: int
    idle: int
    idle_in_transaction: int

    def as_dict(self) -> dict[str, int]:
        """JSON-ready form."""
        return {"total": self.total, "active": self.active, "idle": self.idle,
                "idle_in_transaction": self.idle_in_transaction}


@dataclass(frozen=True)
class StatusQueryPlan:
    """EXPLAIN ANALYZE of the status query: timings and the scans the planner chose."""

    planning_ms: float
    execution_ms: float
    scans: tuple[str, ...]  # e.g. "Index Scan using PipelineRun_pkey on PipelineRun"
    primary_key: str | None  # the table's primary key index, None if it has none
    used_primary_key: bool

    @property
    def total_ms(self) -> float:
        """Planning plus execution time, in milliseconds."""
        return self.planning_ms + self.execution_ms


@dataclass(frozen=True)
class ColumnReport:
    """Live columns against EXPECTED_COLUMNS: missing ones break runs, extra ones are harmless."""

    missing: dict[str, list[str]]
    extra: dict[str, list[str]]


class DatabaseDiagnostics:
    """Bounded, read-only questions to one database. Use as a context manager: it closes."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self._url = url
        self.timeout_s = timeout_s
        self._conn: psycopg.Connection[Any] | None = None

    def __repr__(self) -> str:
        return "DatabaseDiagnostics()"  # never the URL: it may hold a password

    def __enter__(self) -> DatabaseDiagnostics:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            millis = int(self.timeout_s * 1000)
            self._conn = psycopg.connect(
                self._url, autocommit=True, application_name=APPLICATION_NAME,
                connect_timeout=max(2, math.ceil(self.timeout_s)),  # libpq's floor is 2 s
                options=f"-c statement_timeout={millis} -c lock_timeout={millis} -c TimeZone=UTC",
                keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=2,
                tcp_user_timeout=millis, prepare_threshold=None,
            )
        return self._conn

    def _rows(self, action: str, query: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with wrap_exceptions(action, url=self._url):
            return self._connection().execute(query, params).fetchall()

    def ping(self) -> float:
        """Connect if needed and round-trip ``SELECT 1``; the time taken in milliseconds."""
        started = time.perf_counter()
        self._rows("ping", q.PING)
        return (time.perf_counter() - started) * 1000

    def connection_counts(self) -> ConnectionCounts:
        """Client connections to this database from pg_stat_activity."""
        total, active, idle, idle_tx = self._rows("connection count", CONNECTION_COUNTS)[0]
        return ConnectionCounts(int(total), int(active), int(idle), int(idle_tx))

    def explain_status_query(self, run_id: str | None = None) -> StatusQueryPlan:
        """EXPLAIN (ANALYZE, FORMAT JSON) of the status API's query for a random (absent) run id."""
        params = {"run_id": run_id or "diagnostics-" + secrets.token_hex(8)}
        document = self._rows("explain status query", EXPLAIN_STATUS_QUERY, params)[0][0]
        root = (document[0] if isinstance(document, list) else document)
        pk_rows = self._rows("primary key lookup", PRIMARY_KEY_INDEX, {"table": PIPELINE_RUN})
        primary_key = pk_rows[0][0] if pk_rows else None
        nodes = list(_walk(root["Plan"]))
        scans = tuple(_describe(node) for node in nodes if "Scan" in node.get("Node Type", ""))
        used = primary_key is not None and any(node.get("Index Name") == primary_key for node in nodes)
        return StatusQueryPlan(float(root.get("Planning Time", 0.0)), float(root.get("Execution Time", 0.0)),
                               scans, primary_key, used)

    def columns(self) -> ColumnReport:
        """Live columns of the runner's tables compared with EXPECTED_COLUMNS."""
        live: dict[str, set[str]] = {}
        for table, column in self._rows("column listing", LIVE_COLUMNS, {"tables": list(EXPECTED_COLUMNS)}):
            live.setdefault(table, set()).add(column)
        missing, extra = compare_columns(live)
        return ColumnReport(missing, extra)

    def migration_status(self, migrations_dir: Path | None = None) -> MigrationStatus:
        """Applied migrations against the files (see persistence.migrations.engine.migration_status)."""
        with wrap_exceptions("migration status", url=self._url):
            conn = self._connection()
        return migration_status(conn, migrations_dir)

    def close(self) -> None:
        """Close the connection (harmless when none was opened)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with wrap_exceptions("close", url=self._url):
                conn.close()


def _walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _walk(child)


def _describe(node: dict[str, Any]) -> str:
    text = node["Node Type"]
    if node.get("Index Name"):
        text += f" using {node['Index Name']}"
    if node.get("Relation Name"):
        text += f" on {node['Relation Name']}"
    return text
