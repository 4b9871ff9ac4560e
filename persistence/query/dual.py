"""DualRunQuery: DUAL_WRITE reads the database and falls back to the file mirror when it cannot."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from config.errors import StoreError
from config.log import get_logger
from persistence.query.ports import RunFilter, RunPage, RunQuery, RunStats, RunSummary

log = get_logger(__name__)
T = TypeVar("T")


class DualRunQuery:
    """The database's answer, or the files' when the database fails or does not know the run yet.

    ``name`` says where the last answer came from ('database' or 'files'), as the status API does.
    """

    def __init__(self, database: RunQuery, files: RunQuery) -> None:
        self.database = database
        self.files = files
        self.name = "database"

    def _ask(self, action: str, read: Callable[[RunQuery], T], *, missing: Callable[[T], bool]) -> T:
        try:
            found = read(self.database)
        except StoreError as exc:
            log.warning("query_read_fallback", action=action, code=exc.code, reason=str(exc))
        else:
            if not missing(found):
                self.name = "database"
                return found
        # The database is down, or behind the mirror (writes waiting in the spool).
        self.name = "files"
        return read(self.files)

    def list_runs(self, wanted: RunFilter) -> RunPage:
        """The database's page; the files' while the database is unavailable."""
        return self._ask("list_runs", lambda q: q.list_runs(wanted), missing=lambda _: False)

    def show_run(self, run_id: str) -> RunSummary | None:
        """The run from the database, else from its mirror."""
        return self._ask("show_run", lambda q: q.show_run(run_id), missing=lambda r: r is None)

    def read_report(self, run_id: str) -> str | None:
        """The report from the database, else report.md."""
        return self._ask("read_report", lambda q: q.read_report(run_id), missing=lambda r: r is None)

    def read_stage(self, run_id: str, stage: int) -> Mapping[str, Any] | None:
        """The stage output from the database, else its file."""
        return self._ask("read_stage", lambda q: q.read_stage(run_id, stage), missing=lambda r: r is None)

    def stats(self) -> RunStats:
        """The database's aggregates; the files' while it is unavailable."""
        return self._ask("stats", lambda q: q.stats(), missing=lambda _: False)

    def close(self) -> None:
        """Close both readers."""
        self.database.close()
        self.files.close()
