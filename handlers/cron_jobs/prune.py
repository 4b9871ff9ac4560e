"""``prune``: delete finished runs that ended more than RUN_RETENTION_DAYS ago.

Unset RUN_RETENTION_DAYS keeps every run (an ok check saying so). In DUAL_WRITE the cron
service deletes the database rows; each web host's run folders are pruned by the same job
run there, or by ``python -m handlers.runs prune`` (its OUTPUT_DIR is on the web volume).
"""

from __future__ import annotations

from config.errors import StoreError
from handlers.cron_jobs.checks import JobContext
from handlers.runs.admin import prune_runs


def run(ctx: JobContext) -> None:
    """One prune pass."""
    settings = ctx.require_settings()
    checks = ctx.checks
    if settings.run_retention_days is None:
        checks.ok("retention", "RUN_RETENTION_DAYS is not set: every run is kept", value=None)
        return
    checks.step("prune")
    try:
        result = prune_runs(settings, asked_by="cron:prune")
    except StoreError as exc:
        checks.failed("prune", f"pruning failed: {exc.message}")
        return
    for where, ids in result["pruned"].items():
        checks.ok(f"pruned {where}", f"{len(ids)} finished run(s) older than {result['days']} day(s) deleted",
                  value=len(ids))
