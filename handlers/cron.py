"""``python -m handlers.cron JOB``: the runner's operational jobs, each bounded, each ending in one JSON line.

Built for a Railway cron service, which starts a command on a schedule and expects it to exit:
every job runs in a forked child under a hard deadline (handlers.cron_runner), logs JSON lines
to stdout and prints ONE summary object as the last stdout line. The jobs themselves live in
handlers/cron_jobs/.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from config.errors import ConfigError, RunnerError
from config.log import configure_logging, get_logger
from config.settings import Settings
from handlers.cron_jobs import ALL_JOBS, ALL_TIMEOUT_S, JOBS, Job
from handlers.cron_jobs.checks import Checks, JobContext, Thresholds
from handlers.cron_runner import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Send, run_bounded

log = get_logger("handlers.cron")

_JOB_LINES = "\n".join(textwrap.fill(job.summary, 100, initial_indent=f"  {job.name:<14}", subsequent_indent=" " * 16)
                       for job in JOBS.values())
DESCRIPTION = f"""\
Operational checks and repairs for the runner, one job per command. Each job runs in a child
process with a hard time limit (killed with its whole process group when it passes), logs JSON
lines to stdout, prints ONE JSON summary as its LAST stdout line, and exits.

jobs:
{_JOB_LINES}
  all           validate, migrations, replay, reap and prune in turn, each in its own child
                (deploy-check too when --url is given); --timeout is the budget for the whole sequence
"""
EPILOG = f"""\
summary (last stdout line):
  {{"job": "validate", "status": "ok"|"failed"|"timeout"|"error", "message": "…" (timeout/error),
   "checks": [{{"name", "status": "ok"|"warning"|"failed", "message", "value", "threshold"}}],
   "duration_ms": 412}}                     `all` adds "jobs": [one such summary per job]

exit codes:
  0  no check failed (warnings allowed)
  1  a check failed, or the job timed out or crashed
  2  usage or configuration error (bad arguments, a variable that does not parse, mode INVALID)

default time limits: {", ".join(f"{j.name} {j.timeout_s:g} s" for j in JOBS.values())}, all {ALL_TIMEOUT_S} s

Railway: ONE cron service from the same repository and variables as the web service
  start command   python -m handlers.cron all
  cron schedule   */5 * * * *
  Railway runs the command on schedule and skips a tick while the previous one still runs, so the
  command must exit: every job has a hard time limit and `all` stays under the 5 minutes.

examples:
  python -m handlers.cron validate
  python -m handlers.cron migrations --timeout 30
  python -m handlers.cron deploy-check --url https://runner.up.railway.app --requests 50
  python -m handlers.cron all | tail -n 1 | python -m json.tool
See docs/runbook.md for what to do about each failed check.
"""


def build_parser() -> argparse.ArgumentParser:
    """The command line: a job name and its options."""
    parser = argparse.ArgumentParser(prog="python -m handlers.cron", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("job", choices=[*JOBS, "all"], metavar="JOB", help="one of: " + ", ".join([*JOBS, "all"]))
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="hard time limit (default: the job's own, see below); `all`: for the whole sequence")
    check = parser.add_argument_group("deploy-check options")
    check.add_argument("--url", metavar="URL", help="base URL of the web service (/health is appended)")
    check.add_argument("--requests", type=int, default=20, metavar="N", help="GET /health N times (default 20)")
    defaults = Thresholds()
    check.add_argument("--max-latency-ms", type=float, default=defaults.max_latency_ms, metavar="MS",
                       help=f"p50 and p95 latency limit (default {defaults.max_latency_ms:g})")
    check.add_argument("--max-connections", type=int, default=defaults.max_connections, metavar="N",
                       help=f"database connections limit (default {defaults.max_connections})")
    check.add_argument("--max-query-ms", type=float, default=defaults.max_query_ms, metavar="MS",
                       help=f"status query planning + execution limit (default {defaults.max_query_ms:g})")
    return parser


def _check_usage(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse option combinations that make no sense (argparse exits 2)."""
    if args.job == "deploy-check" and not args.url:
        parser.error("deploy-check needs --url URL (the web service, e.g. https://runner.up.railway.app)")
    if args.url and args.job not in ("deploy-check", "all"):
        parser.error(f"--url applies to deploy-check and all, not {args.job}")
    if args.url and (urlsplit(args.url).scheme not in ("http", "https") or not urlsplit(args.url).netloc):
        parser.error("--url must be an http:// or https:// URL")
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    if args.timeout is not None and args.timeout <= 0:
        parser.error("--timeout must be a positive number of seconds")


def _run_job(job: Job, args: argparse.Namespace, settings: Settings | None, error: ConfigError | None,
             timeout_s: float) -> dict[str, Any]:
    """One job in a bounded child; its summary (with a private ``exit_code`` the caller pops)."""
    limits = Thresholds(max_latency_ms=args.max_latency_ms, max_connections=args.max_connections,
                        max_query_ms=args.max_query_ms)

    def target(send: Send) -> dict[str, Any]:
        ctx = JobContext(settings, error, Checks(send), url=args.url, requests=args.requests, thresholds=limits)
        try:
            job.run(ctx)
        except ConfigError as exc:
            return {"status": "error", "message": exc.message, "checks": ctx.checks.as_list(), "exit_code": EXIT_USAGE}
        except RunnerError as exc:
            return {"status": "error", "message": f"{exc.code}: {exc.message}", "checks": ctx.checks.as_list(),
                    "exit_code": EXIT_FAILED}
        failed = ctx.checks.any_failed
        code = EXIT_USAGE if ctx.checks.config_invalid else EXIT_FAILED if failed else EXIT_OK
        return {"status": "failed" if failed else "ok", "checks": ctx.checks.as_list(), "exit_code": code}

    log.info("cron_job_started", job=job.name, timeout_s=timeout_s)
    started = time.perf_counter()
    result = run_bounded(job.name, target, timeout_s)
    summary: dict[str, Any] = {"job": job.name, "status": result["status"]}
    if result.get("message"):
        summary["message"] = result["message"]
    summary["checks"] = result.get("checks", [])
    summary["duration_ms"] = round((time.perf_counter() - started) * 1000)
    summary["exit_code"] = result["exit_code"]
    finished = log.info if summary["status"] == "ok" else log.error
    finished("cron_job_finished", job=job.name, status=summary["status"], duration_ms=summary["duration_ms"],
             failed=[c["name"] for c in summary["checks"] if c["status"] == "failed"],
             warnings=[c["name"] for c in summary["checks"] if c["status"] == "warning"])
    return summary


def _run_all(args: argparse.Namespace, settings: Settings | None, error: ConfigError | None) -> dict[str, Any]:
    """validate, migrations, replay, reap (and deploy-check with --url) within one time budget."""
    budget = args.timeout or ALL_TIMEOUT_S
    started = time.perf_counter()
    deadline = time.monotonic() + budget
    results = []
    for name in (*ALL_JOBS, *(("deploy-check",) if args.url else ())):
        remaining = deadline - time.monotonic()
        if error is not None and name != "validate":
            results.append({"job": name, "status": "error", "message": "not run: the configuration does not parse "
                            "(see validate)", "checks": [], "duration_ms": 0, "exit_code": EXIT_USAGE})
        elif remaining <= 0:
            results.append({"job": name, "status": "timeout", "message": f"not started: `all` used up its "
                            f"{budget:g} s budget", "checks": [], "duration_ms": 0, "exit_code": EXIT_FAILED})
        else:
            results.append(_run_job(JOBS[name], args, settings, error, min(JOBS[name].timeout_s, remaining)))
    exit_code = max(r.pop("exit_code") for r in results)
    checks = [_job_check(r) for r in results]
    return {"job": "all", "status": "ok" if all(r["status"] == "ok" for r in results) else "failed",
            "checks": checks, "jobs": results, "duration_ms": round((time.perf_counter() - started) * 1000),
            "exit_code": exit_code}


def _job_check(result: dict[str, Any]) -> dict[str, Any]:
    """One job's result as a check of ``all``."""
    failed = [c["name"] for c in result["checks"] if c["status"] == "failed"]
    warned = [c["name"] for c in result["checks"] if c["status"] == "warning"]
    if result["status"] == "ok":
        message = f"ok, {len(warned)} warning(s): {', '.join(warned)}" if warned else "ok"
        return {"name": result["job"], "status": "warning" if warned else "ok", "message": message}
    message = result.get("message") or f"failed checks: {', '.join(failed)}"
    return {"name": result["job"], "status": "failed", "message": message}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one job (or all); print the JSON summary as the last stdout line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_usage(parser, args)
    settings: Settings | None
    try:
        settings, error = Settings.from_env(), None
    except ConfigError as exc:
        settings, error = None, exc
    configure_logging(settings.log_level if settings else "INFO")
    if args.job == "all":
        summary = _run_all(args, settings, error)
    else:
        job = JOBS[args.job]
        summary = _run_job(job, args, settings, error, args.timeout or job.timeout_s)
    exit_code = summary.pop("exit_code")
    print(json.dumps(summary, default=str), flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
