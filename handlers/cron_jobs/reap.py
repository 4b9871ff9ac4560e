"""``reap``: recover runs stuck in PROCESSING whose lease lapsed (their process died).

Each one goes back to QUEUED and its next attempt resumes after its last finished stage; a run
that used up MAX_RUN_ATTEMPTS is FAILED with the cause and its last log lines. Both are the
runner doing its job: a run failed for good is a warning for a person to read, not a failure
of this job. The dispatcher does the same at start-up and whenever a child dies; this job
catches runs whose whole host vanished. In DATABASE modes it works across services (the leases
live in PostgreSQL), so the cron service reaps for the web service.

In DUAL_WRITE the pass goes through the database side only: the cron service's own OUTPUT_DIR
does not hold the web service's runs, and failing a run there would be refused by the file
mirror ("never created here"). The web host's mirror catches up when the run is next claimed.
"""

from __future__ import annotations

from dataclasses import replace

from config.errors import StoreError
from handlers.cron_jobs.checks import JobContext
from handlers.recovery import reap
from persistence.diagnostics import DatabaseDiagnostics
from persistence.factory import build_store

DATABASE_TIMEOUT_S = 5.0


def run(ctx: JobContext) -> None:
    """One recovery pass over every PROCESSING run."""
    settings = ctx.require_settings()
    checks = ctx.checks
    if settings.mode.uses_database:
        checks.step("database reachable")
        try:
            with DatabaseDiagnostics(settings.database_url or "", DATABASE_TIMEOUT_S) as diag:
                diag.ping()
        except StoreError as exc:
            # The store would quietly find no leases (or only the file mirror's): say why instead.
            checks.warning("database", f"unreachable ({exc.message}): leases kept in PostgreSQL cannot be read; "
                                       "runs stay PROCESSING until a tick finds the database back")
        settings = replace(settings, enable_file_fallback=False)
    checks.step("reap")
    store = build_store(settings)
    try:
        report = reap(store, settings)
    except StoreError as exc:
        checks.failed("reap", f"recovery pass failed: {exc.message}")
        return
    finally:
        store.close()
    if report.requeued:
        checks.ok("requeued", f"{len(report.requeued)} run(s) whose lease lapsed went back to QUEUED and resume "
                              f"after their last finished stage: {', '.join(report.requeued)}",
                  value=len(report.requeued))
    else:
        checks.ok("requeued", "no lapsed leases", value=0)
    if report.failed:
        checks.warning("failed runs", f"{len(report.failed)} run(s) died on every one of their MAX_RUN_ATTEMPTS="
                                      f"{settings.max_run_attempts} attempts and are now FAILED (code PROCESS_DIED; "
                                      f"the error message quotes their last log lines): {', '.join(report.failed)}",
                       value=len(report.failed), threshold=0)
    else:
        checks.ok("failed runs", "none", value=0, threshold=0)
    if report.skipped:
        checks.ok("skipped", f"{len(report.skipped)} run(s) moved on while being examined (finished, or claimed "
                             "by another process)", value=len(report.skipped))
