"""The cron jobs, by name: what each runs, its default time limit and its line in ``--help``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from handlers.cron_jobs import deploy_check, migrations, prune, reap, replay, validate
from handlers.cron_jobs.checks import JobContext


@dataclass(frozen=True)
class Job:
    """One job: ``run`` records checks on the context it is given."""

    name: str
    run: Callable[[JobContext], None]
    timeout_s: float
    summary: str
    needs_url: bool = False


JOBS: dict[str, Job] = {job.name: job for job in (
    Job("validate", validate.run, 60,
        "every variable parsed, mode, brand profiles, database reachable and migrated, OUTPUT_DIR writable, "
        "on a volume and with free disk, WEBHOOK_SECRET/API_TOKEN strong enough, OpenRouter settings"),
    Job("migrations", migrations.run, 60,
        "applied migrations vs sql/migrations (pending, unknown, checksum drift) and live columns vs the "
        "columns the code uses; trips the breaker on drift or missing columns"),
    Job("replay", replay.run, 120,
        "replays the spool (OUTPUT_DIR/.spool) into PostgreSQL; fails on new dead letters or on records "
        "left while the database answers"),
    Job("reap", reap.run, 60,
        "requeues PROCESSING runs whose lease lapsed (resumed after their last stage); a run out of "
        "attempts is FAILED (a warning)"),
    Job("prune", prune.run, 60,
        "deletes COMPLETED, FAILED and CANCELLED runs (rows, files, callbacks) that ended more than "
        "RUN_RETENTION_DAYS ago; unset keeps every run"),
    Job("deploy-check", deploy_check.run, 120,
        "GET /health N times: p50/p95 latency, error rate, health body; database connections, migration "
        "status and EXPLAIN ANALYZE of the status query, each against its threshold", needs_url=True),
)}
# What `all` runs, in this order: the jobs that need no URL (deploy-check joins when --url is given).
ALL_JOBS = ("validate", "migrations", "replay", "reap", "prune")
ALL_TIMEOUT_S = 240  # under the 5-minute schedule: Railway skips a tick while the last one still runs
