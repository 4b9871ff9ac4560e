"""``replay``: move the spool (writes the database missed) into PostgreSQL, and say what is left.

Replay honours the breaker and never duplicates (every write is an idempotent, fenced upsert).
Records left behind are judged by why: the database is down (a warning: they wait, safely, for
the next tick), the breaker is still in its break after an outage (a warning: it probes and
closes by itself), or the database answers and they still do not go in (a failure: a person
must look). Records the database refuses for good move to ``OUTPUT_DIR/.spool/dead/`` with a
``.reason.json`` beside each; new ones fail the job, old ones stay a warning until handled.
"""

from __future__ import annotations

from config.errors import StoreError
from config.settings import Settings
from handlers.cron_jobs.checks import Checks, JobContext
from persistence.breaker import opened_by_outage
from persistence.diagnostics import DatabaseDiagnostics
from persistence.factory import build_breaker, replay_spool
from persistence.spool import ReplayReport, Spool

DATABASE_TIMEOUT_S = 5.0


def run(ctx: JobContext) -> None:
    """Replay the spool once; check dead letters and what remains."""
    settings = ctx.require_settings()
    checks = ctx.checks
    spool = Spool(settings.spool_dir)
    dead_before = sum(1 for _ in spool.dead())
    _close_breaker_if_database_answers(settings, checks)
    checks.step("replay")
    try:
        report = replay_spool(settings)
    except (StoreError, OSError) as exc:
        checks.failed("replay", f"replay could not run: {exc}")
        return
    checks.ok("applied", f"{report.applied} record(s) applied in {report.seconds:.2f} s", value=report.applied)
    _dead_letters(settings, report, dead_before, checks)
    checks.step("remaining")
    _remaining(settings, report, checks)


def _close_breaker_if_database_answers(settings: Settings, checks: Checks) -> None:
    """An explicit replay is a probe: a breaker still in its break after an outage is closed once the database answers.

    Never for a schema mismatch or an operator's trip: those need a fix first.
    """
    if not settings.mode.uses_database:
        return
    breaker = build_breaker(settings)
    snapshot = breaker.snapshot()
    reason = str(snapshot.get("reason") or "")
    if snapshot["state"] == "closed" or not opened_by_outage(reason):
        return
    checks.step("probe")
    try:
        with DatabaseDiagnostics(settings.database_url or "", DATABASE_TIMEOUT_S) as diag:
            diag.ping()
    except StoreError:
        return  # still down: the breaker stays open and the remaining check says so
    breaker.reset("replay job: the database answers again")
    checks.ok("breaker", f"closed: it was {snapshot['state']} after an outage ({reason}) and the database "
                         "answers again", value="closed")


def _dead_letters(settings: Settings, report: ReplayReport, dead_before: int, checks: Checks) -> None:
    where = settings.spool_dir / "dead"
    if report.dead:
        checks.failed("dead letters", f"{report.dead} record(s) refused by the database for good, moved to {where}: "
                                      "read each *.reason.json, fix the cause, then move the record back into "
                                      f"{settings.spool_dir} (docs/runbook.md, dead letters)",
                      value=report.dead, threshold=0)
    elif dead_before:
        checks.warning("dead letters", f"{dead_before} older record(s) wait in {where} for a person "
                                       "(docs/runbook.md, dead letters)", value=dead_before, threshold=0)
    else:
        checks.ok("dead letters", "none", value=0, threshold=0)


def _remaining(settings: Settings, report: ReplayReport, checks: Checks) -> None:
    left = report.remaining
    if not left:
        checks.ok("remaining", "spool empty", value=0, threshold=0)
        return
    if report.stopped == "no_database":
        checks.warning("remaining", f"{left} record(s) in the spool but mode {settings.mode} has no database to "
                                    "replay into: set DATABASE_URL and ENABLE_DATABASE_WRITES=true to replay them",
                       value=left, threshold=0)
        return
    if report.busy:
        checks.warning("remaining", f"{left} record(s): another process is replaying right now", value=left,
                       threshold=0)
        return
    try:
        with DatabaseDiagnostics(settings.database_url or "", DATABASE_TIMEOUT_S) as diag:
            diag.ping()
    except StoreError as exc:
        checks.warning("remaining", f"{left} record(s) kept: the database is unreachable ({exc.message}); the next "
                                    "tick replays them once it is back", value=left, threshold=0)
        return
    breaker = build_breaker(settings).snapshot()
    reason = str(breaker.get("reason") or "")
    if breaker["state"] != "closed" and opened_by_outage(reason):
        checks.warning("remaining", f"{left} record(s) kept: the database answers again but the breaker is "
                                    f"{breaker['state']} after an outage ({reason}); it probes after its break and "
                                    "the next tick replays them", value=left, threshold=0)
        return
    if report.stopped is None:
        checks.warning("remaining", f"{left} record(s) were spooled while this replay ran (a run queues its writes "
                                    "behind its earlier spooled ones); the next tick replays them", value=left,
                       threshold=0)
        return
    checks.failed("remaining", f"{left} record(s) remain although the database answers (stopped by "
                               f"{report.stopped}; breaker {breaker['state']}: {reason}). If the schema is the "
                               "cause run the `migrations` job; see docs/runbook.md (spool backlog growing)",
                  value=left, threshold=0)
