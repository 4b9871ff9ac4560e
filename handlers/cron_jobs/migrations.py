"""``migrations``: is the live schema the one this code reads and writes?

Two views of the same question. The bookkeeping view: applied migrations against
``sql/migrations`` (pending, unknown to this code, checksum drift). The ground-truth view: the
live columns of the runner's tables against ``EXPECTED_COLUMNS``, which catches what bookkeeping
cannot (a column dropped by hand, a frontend ``prisma migrate`` that rewrote a table) before a
run fails with "column does not exist".

On drift or missing columns the job trips this host's breaker, so its runs write to the spool
(and files) at once instead of failing their first write; the breaker probes the database after
each break and closes by itself once the schema is fixed.
"""

from __future__ import annotations

from config.errors import StoreError
from config.settings import Settings
from handlers.cron_jobs.checks import Checks, JobContext
from persistence.diagnostics import ColumnReport, DatabaseDiagnostics
from persistence.factory import build_breaker
from persistence.migrations.types import MigrationStatus

DATABASE_TIMEOUT_S = 5.0
UP = "`python -m persistence.migrate up`"


def run(ctx: JobContext) -> None:
    """Compare applied migrations and live columns with the code; trip the breaker on drift or gaps."""
    settings = ctx.require_settings()
    checks = ctx.checks
    url = settings.migrations_url
    if not url:
        checks.warning("database", "DATABASE_URL is unset (FILE_ONLY): there is no schema to check")
        return
    checks.step("migration status")
    try:
        with DatabaseDiagnostics(url, DATABASE_TIMEOUT_S) as diag:
            status = diag.migration_status()
            checks.step("live columns")
            columns = diag.columns()
    except StoreError as exc:
        checks.failed("database", f"{exc.message}; the schema could not be checked (is the database up? see the "
                                  "`validate` job)")
        return
    reasons = _migration_checks(status, checks)
    reasons += _column_checks(columns, checks)
    if reasons:
        checks.step("trip breaker")
        _trip(settings, "; ".join(reasons), checks)


def _migration_checks(status: MigrationStatus, checks: Checks) -> list[str]:
    """Checks of the bookkeeping; returns the reasons to trip the breaker (drift only)."""
    checks.ok("applied", f"{len(status.applied)} migration(s) applied, version {status.version}",
              value=status.version)
    if status.pending:
        labels = ", ".join(m.label for m in status.pending)
        checks.failed("pending", f"{labels} not applied: run {UP} (the Railway pre-deploy command; `plan` first "
                                 "shows the locks it takes)", value=len(status.pending), threshold=0)
    else:
        checks.ok("pending", "none", value=0, threshold=0)
    if status.unknown:
        labels = ", ".join(m.label for m in status.unknown)
        checks.warning("unknown", f"the database has {labels}, which this code does not know: newer code migrated "
                                  "it (a rolled-back deploy?). Harmless while the columns below match; otherwise "
                                  "redeploy the newer code, or run its `migrate down --to` before rolling back",
                       value=len(status.unknown), threshold=0)
    else:
        checks.ok("unknown", "none", value=0, threshold=0)
    if not status.drifted:
        checks.ok("checksums", "every applied migration matches its file", value=0, threshold=0)
        return []
    labels = ", ".join(m.label for m in status.drifted)
    checks.failed("checksums", f"{labels} changed after being applied (sha256 differs from "
                               "runner_schema_migrations): the database may not have what the file now says. "
                               "Restore the file from git and put the change in a new migration",
                  value=len(status.drifted), threshold=0)
    return [f"migration drift: {labels}"]


def _column_checks(columns: ColumnReport, checks: Checks) -> list[str]:
    """Checks of the live columns; returns the reasons to trip the breaker (missing columns)."""
    if columns.missing:
        listed = "; ".join(f'"{table}": {", ".join(names)}' for table, names in sorted(columns.missing.items()))
        count = sum(len(names) for names in columns.missing.values())
        checks.failed("columns", f"missing {listed}: writes of those columns fail with 'column does not exist'. "
                                 f"Run {UP} if migrations are pending; if a column was dropped by hand, restore it "
                                 "with a new migration", value=count, threshold=0)
        reason = [f"missing columns: {listed}"]
    else:
        checks.ok("columns", "every column the code reads and writes exists", value=0, threshold=0)
        reason = []
    if columns.extra:
        listed = "; ".join(f'"{table}": {", ".join(names)}' for table, names in sorted(columns.extra.items()))
        checks.ok("extra columns", f"{listed} (not used by the runner; harmless if nullable or defaulted)")
    return reason


def _trip(settings: Settings, reason: str, checks: Checks) -> None:
    if not settings.mode.uses_database:
        checks.ok("breaker", f"not tripped: mode {settings.mode} does not write to the database")
        return
    try:
        build_breaker(settings).trip(f"cron migrations: {reason}")
    except OSError as exc:
        checks.failed("breaker", f"could not trip the breaker in {settings.state_dir} ({exc}): runs will fail "
                                 "their database writes and spool them one by one")
        return
    checks.warning("breaker", f"tripped (state in {settings.state_dir}): this host's runs write to the spool"
                              f"{' and files' if settings.mode.writes_files else ''} until the schema is fixed; the "
                              "breaker then probes the database after its break and closes by itself, and the spool "
                              "is replayed", value="open")
