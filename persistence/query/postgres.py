"""PostgresRunQuery: the RunQuery over the tables of contract §6, through a connection pool.

Reads go through a LazyPool (psycopg_pool, opened on first use, never before a fork): web
threads share a few connections instead of one each; each read is autocommit, bounded by the
writer's timeouts, and driver errors leave only as the runner's StoreError tree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from persistence.pgpool import LazyPool
from persistence.postgres import DbTimeouts
from persistence.query import postgres_sql as q
from persistence.query.ports import (
    DURATION_BUCKETS,
    USAGE_KEYS,
    Histogram,
    RunFilter,
    RunPage,
    RunStats,
    RunSummary,
    StageTiming,
    encode_cursor,
    normalise_usage,
)
from persistence.records import STAGE_NUMBERS, RunStatus


class PostgresRunQuery:
    """Reads runs from PostgreSQL; ``max_connections`` bounds the pool per process."""

    name = "database"

    def __init__(self, url: str, timeouts: DbTimeouts | None = None, *, max_connections: int = 4) -> None:
        self._pool = LazyPool(url, name="run-query", timeouts=timeouts, max_size=max_connections)

    def __repr__(self) -> str:
        return "PostgresRunQuery()"  # never the URL: it may hold a password

    def _rows(self, action: str, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        return self._pool.rows(action, sql, params)

    def list_runs(self, wanted: RunFilter) -> RunPage:
        """Runs matching ``wanted``, newest first."""
        after = wanted.after()
        rows = self._rows("list_runs", q.LIST_RUNS, {
            "status": str(wanted.status) if wanted.status else None, "company_id": wanted.company_id,
            "user_id": wanted.user_id, "created_after": wanted.created_after,
            "created_before": wanted.created_before, "after_at": after[0] if after else None,
            "after_id": after[1] if after else None, "limit": wanted.limit + 1})
        page = tuple(_summary(row) for row in rows[:wanted.limit])
        more = len(rows) > wanted.limit
        return RunPage(page, encode_cursor(page[-1].created_at, page[-1].run_id) if more else None)

    def show_run(self, run_id: str) -> RunSummary | None:
        """The run with its stage timings from "StageOutput", or None."""
        rows = self._rows("show_run", q.SHOW_RUN, {"run_id": run_id})
        if not rows:
            return None
        timings = tuple(StageTiming(*row) for row in self._rows("show_run", q.STAGE_TIMINGS, {"run_id": run_id}))
        return _summary(rows[0], timings, detail=True)

    def read_report(self, run_id: str) -> str | None:
        """"fullReportMarkdown" of a COMPLETED run, or None."""
        rows = self._rows("read_report", q.READ_REPORT, {"run_id": run_id})
        return rows[0][0] if rows else None

    def read_stage(self, run_id: str, stage: int) -> Mapping[str, Any] | None:
        """The stage's "StageOutput" row, or None."""
        rows = self._rows("read_stage", q.READ_STAGE, {"run_id": run_id, "stage": stage})
        return rows[0][0] if rows else None

    def stats(self) -> RunStats:
        """Aggregates computed by PostgreSQL: counts, oldest QUEUED, stage histograms, usage."""
        by_status = {str(s): 0 for s in RunStatus}
        attempts, oldest = 0, None
        for status, count, attempt_sum, queued_at in self._rows("stats", q.COUNT_BY_STATUS, {}):
            by_status[status] = count
            attempts += int(attempt_sum or 0)
            oldest = queued_at if queued_at is not None else oldest
        cumulative: dict[int, dict[float, int]] = {n: {} for n in STAGE_NUMBERS}
        for stage, bound, count in self._rows("stats", q.STAGE_BUCKETS, {"bounds": list(DURATION_BUCKETS)}):
            cumulative[stage][float(bound)] = count
        durations = {n: Histogram((0,) * (len(DURATION_BUCKETS) + 1), 0.0, 0) for n in STAGE_NUMBERS}
        for stage, count, total in self._rows("stats", q.STAGE_TOTALS, {}):
            buckets = tuple(cumulative[stage].get(b, 0) for b in DURATION_BUCKETS) + (count,)
            durations[stage] = Histogram(buckets, float(total), count)
        usage = dict.fromkeys(USAGE_KEYS, 0.0)
        for (raw,) in self._rows("stats", q.USAGE_TOTALS, {}):
            for key, value in (normalise_usage(raw) or {}).items():
                usage[key] += float(value or 0)
        return RunStats(by_status, oldest, durations, attempts, usage)

    def close(self) -> None:
        """Close the pool; the next read opens a new one."""
        self._pool.close()

def _summary(row: tuple[Any, ...], timings: tuple[StageTiming, ...] = (), *, detail: bool = False) -> RunSummary:
    (run_id, status, company_id, user_id, document_url, attempt, stage_timings, error_stage, error_code,
     error_message, created_at, updated_at, completed_at, usage, interruption) = row
    done = tuple(n for n in STAGE_NUMBERS if str(n) in (stage_timings or {}))
    has_error = error_code is not None or error_message is not None
    return RunSummary(
        run_id=run_id, status=RunStatus(status), company_id=company_id, user_id=user_id,
        document_url=document_url, attempt=attempt, completed_stages=done,
        error={"stage": error_stage, "code": error_code or "", "message": error_message or ""} if has_error else None,
        created_at=created_at, updated_at=updated_at, completed_at=completed_at,
        usage=normalise_usage(usage), stages=timings,
        extra={"last_interruption": interruption} if detail else {},
    )

