"""``python -m handlers.runs COMMAND``: run management from a shell, without SQL.

    list | show                      reads, through the mode's RunQuery
    retry | cancel RUN_ID            actions on one run (handlers.runs.actions)
    prune | reset-breaker | requeue-dead-letters   host actions (handlers.runs.admin)

Logs go to stdout as JSON lines; the LAST stdout line is the JSON summary. Exit 0 success,
1 the work failed (an unknown run, the store unavailable), 2 usage or configuration error.
Every action is logged with who asked (``cli:$USER``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from config.errors import ConfigError, InvalidInput, RunnerError
from config.log import configure_logging, get_logger
from config.settings import Settings
from handlers import dispatch_socket
from handlers.runs import actions, admin, results
from persistence.factory import build_store
from persistence.query.factory import build_query

log = get_logger("handlers.runs")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

EPILOG = """\
summary (last stdout line):
  retry/cancel {"command", "status": "ok", "run_id", "run_status": "QUEUED" | "CANCELLED"}; a run whose
         status does not allow it fails (exit 1) with code RUN_NOT_RETRYABLE / RUN_NOT_CANCELLABLE
  list  {"command": "list", "status": "ok", "runs": [{"run_id", "status", "current_stage", "progress", …}],
         "next_cursor": "…" | null, "source": "database" | "files"}
  show  {"command": "show", "status": "ok", "run": {… "attempt", "stages": [{"stage", "started_at",
         "completed_at", "duration_ms"}], "error", "usage"}}
  on failure {"command", "status": "failed" | "error", "code", "message"}

exit codes: 0 success · 1 the work failed (unknown run, store unavailable) · 2 usage or configuration error

examples:
  python -m handlers.runs list --status FAILED --company-id decathlon --limit 10
  python -m handlers.runs list --since 2026-12-01T00:00:00Z | tail -n 1 | python -m json.tool
  python -m handlers.runs show run_123
  python -m handlers.runs prune --days 30 --dry-run
  python -m handlers.runs reset-breaker
  python -m handlers.runs cancel run_123
  python -m handlers.runs retry run_123
  python -m handlers.runs requeue-dead-letters --run-id run_123
"""


def build_parser() -> argparse.ArgumentParser:
    """The command line: a command and its options."""
    parser = argparse.ArgumentParser(prog="python -m handlers.runs", epilog=EPILOG,
                                     description="List, inspect and steer pipeline runs (retry, cancel, prune) "
                                                 "in every persistence mode.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = commands.add_parser("list", help="runs, newest first, filtered and paginated")
    listing.add_argument("--status", help="QUEUED, PROCESSING, COMPLETED, FAILED or CANCELLED")
    listing.add_argument("--company-id", help="brand id")
    listing.add_argument("--user-id")
    listing.add_argument("--since", help="created at or after (ISO 8601 with timezone)")
    listing.add_argument("--until", help="created before (ISO 8601 with timezone)")
    listing.add_argument("--limit", help="page size, 1-100 (default 20)")
    listing.add_argument("--cursor", help="next_cursor of the previous page")
    show = commands.add_parser("show", help="one run: attempts, stage timings, error, LLM usage")
    show.add_argument("run_id")
    prune = commands.add_parser("prune", help="delete finished runs older than N days (default RUN_RETENTION_DAYS)")
    prune.add_argument("--days", type=int, help="keep runs that ended within this many days (>= 1)")
    prune.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    commands.add_parser("reset-breaker", help="close this host's database breaker now")
    retry = commands.add_parser("retry", help="queue a FAILED run again; it resumes after its last finished stage")
    retry.add_argument("run_id")
    cancel = commands.add_parser("cancel", help="cancel a QUEUED or PROCESSING run (its process is stopped)")
    cancel.add_argument("run_id")
    dead = commands.add_parser("requeue-dead-letters", help="move the spool's dead letters back to be replayed")
    dead.add_argument("--run-id", help="only this run's letters")
    return parser


def _filter_args(ns: argparse.Namespace) -> dict[str, str]:
    pairs = {"status": ns.status, "company_id": ns.company_id, "user_id": ns.user_id,
             "created_after": ns.since, "created_before": ns.until, "limit": ns.limit, "cursor": ns.cursor}
    return {key: value for key, value in pairs.items() if value}


def execute(ns: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """Run one read command; the summary body without command/status."""
    if ns.command == "prune":
        return admin.prune_runs(settings, asked_by=asked_by(), days=ns.days, dry_run=ns.dry_run)
    if ns.command == "reset-breaker":
        return admin.reset_breaker(settings, asked_by=asked_by())
    if ns.command == "requeue-dead-letters":
        return admin.requeue_dead_letters(settings, asked_by=asked_by(), run_id=ns.run_id)
    if ns.command in ("retry", "cancel"):
        store = build_store(settings)
        try:
            # Only a wake-up: every dispatcher also polls the queue, so a QUEUED run is picked up by the
            # web service's dispatcher even when this shell's host has none (a cron or ssh shell).
            woken: list[bool] = []

            def wake(run_id: str) -> None:
                woken.append(dispatch_socket.notify(settings, run_id))

            act = actions.retry_run if ns.command == "retry" else actions.cancel_run
            done = act(store, wake, ns.run_id, asked_by=asked_by())
            return {"run_id": done["run_id"], "run_status": done["status"], "dispatcher_notified": any(woken)}
        finally:
            store.close()
    query = build_query(settings)
    try:
        if ns.command == "list":
            return results.list_runs(query, results.parse_filter(_filter_args(ns)))
        return {"run": results.show_run(query, ns.run_id)}
    finally:
        query.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, run, print the JSON summary last; the exit code of the module docstring."""
    ns = build_parser().parse_args(argv)
    summary: dict[str, Any] = {"command": ns.command}
    try:
        settings = Settings.from_env()
        configure_logging(settings.log_level)
        summary.update(status="ok", **execute(ns, settings))
        code = EXIT_OK
    except (ConfigError, InvalidInput) as exc:
        summary.update(status="error", code=exc.code, message=exc.message)
        code = EXIT_USAGE
    except RunnerError as exc:
        summary.update(status="failed", code=exc.code, message=exc.message)
        code = EXIT_FAILED
    log.info("runs_command", command=ns.command, status=summary["status"], asked_by=asked_by())
    sys.stdout.flush()
    print(json.dumps(summary, default=str), flush=True)
    return code


def asked_by() -> str:
    """Who ran the command: the shell's user (logged with every action)."""
    return f"cli:{os.environ.get('USER') or os.environ.get('LOGNAME') or os.getuid()}"
