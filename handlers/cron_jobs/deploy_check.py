"""``deploy-check --url URL``: the design document's post-deployment validation, measured.

    /health p50, p95 latency   over N requests          threshold 100 ms
    /health error rate         share of non-200 answers threshold 0
    /health body               healthy / degraded / unhealthy, and why
    database connections       pg_stat_activity          threshold 20
    migration status           applied vs sql/migrations
    status query plan          EXPLAIN ANALYZE, ms       threshold 50 ms, and the primary key used

Run it right after a deploy against the public URL (or, from the cron service, the web
service's private one). The database checks need DATABASE_URL; without it they are skipped.
"""

from __future__ import annotations

import math
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from config.errors import StoreError
from config.settings import Settings
from handlers.cron_jobs.checks import Checks, JobContext, Thresholds
from persistence.diagnostics import DatabaseDiagnostics

DATABASE_TIMEOUT_S = 5.0
REQUEST_TIMEOUT = (3.0, 5.0)  # connect, read (seconds)
HEALTH_PATHS = ("/health", "/api/health")


def health_url(url: str) -> str:
    """``url`` with ``/health`` appended unless it already names a health path."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if not path.endswith(HEALTH_PATHS):
        path += "/health"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in 0..1) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def run(ctx: JobContext) -> None:
    """Measure /health over HTTP, then the database, each against its threshold."""
    settings = ctx.require_settings()
    checks = ctx.checks
    target = health_url(ctx.url or "")
    checks.step(f"GET {target} x{ctx.requests}")
    latencies, statuses, last_body = _measure(target, ctx.requests)
    _http_checks(target, latencies, statuses, last_body, ctx.thresholds, checks)
    checks.step("database")
    _database_checks(settings, ctx.thresholds, checks)


def _measure(target: str, count: int) -> tuple[list[float], list[str], dict[str, Any] | None]:
    """Latency (ms) and status (code or error name) of each request; the last JSON body seen."""
    latencies: list[float] = []
    statuses: list[str] = []
    body = None
    with requests.Session() as session:
        for _ in range(count):
            started = time.perf_counter()
            try:
                answer = session.get(target, timeout=REQUEST_TIMEOUT, allow_redirects=False)
            except requests.RequestException as exc:
                latencies.append((time.perf_counter() - started) * 1000)
                statuses.append(type(exc).__name__)
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            statuses.append(str(answer.status_code))
            try:
                body = answer.json()
            except ValueError:
                body = None  # not JSON: the status code alone is judged
    return latencies, statuses, body


def _http_checks(target: str, latencies: list[float], statuses: list[str], body: dict[str, Any] | None,
                 limits: Thresholds, checks: Checks) -> None:
    for name, share in (("health p50", 0.5), ("health p95", 0.95)):
        value = round(percentile(latencies, share), 1)
        status = checks.ok if value <= limits.max_latency_ms else checks.failed
        verdict = "within" if value <= limits.max_latency_ms else "over"
        status(name, f"{value} ms over {len(latencies)} request(s), {verdict} {limits.max_latency_ms:g} ms",
               value=value, threshold=limits.max_latency_ms)
    errors = [s for s in statuses if s != "200"]
    rate = round(len(errors) / len(statuses), 4)
    seen = ", ".join(f"{s} x{errors.count(s)}" for s in sorted(set(errors)))
    if rate > limits.max_error_rate:
        checks.failed("error rate", f"{len(errors)}/{len(statuses)} answers were not 200 ({seen}) from {target}",
                      value=rate, threshold=limits.max_error_rate)
    else:
        checks.ok("error rate", f"{len(statuses) - len(errors)}/{len(statuses)} answered 200", value=rate,
                  threshold=limits.max_error_rate)
    _health_body(body, checks)


def _health_body(body: dict[str, Any] | None, checks: Checks) -> None:
    if not isinstance(body, dict) or "status" not in body:
        checks.failed("health body", "no JSON /health answer to read (is the URL the runner's web service?)")
        return
    state = body["status"]
    facts = {k: body.get(k) for k in ("mode", "database_connection", "circuit", "spool_backlog", "schema", "version")}
    described = ", ".join(f"{k}={v}" for k, v in facts.items())
    if state == "healthy":
        checks.ok("health body", f"healthy: {described}", value=state)
    elif state == "degraded":
        checks.warning("health body", f"degraded, runs are still recorded: {described} (docs/runbook.md, rollback "
                                      "decision matrix)", value=state)
    else:
        checks.failed("health body", f"{state}: nothing can be written ({described}); roll back the deploy in "
                                     "Railway or fix the mode (docs/runbook.md)", value=state)


def _database_checks(settings: Settings, limits: Thresholds, checks: Checks) -> None:
    if not settings.database_url:
        checks.warning("database", "skipped: DATABASE_URL is unset here, so connections, migrations and the "
                                   "status query plan were not checked")
        return
    try:
        with DatabaseDiagnostics(settings.database_url, DATABASE_TIMEOUT_S) as diag:
            counts = diag.connection_counts()
            status = diag.migration_status()
            plan = diag.explain_status_query()
    except StoreError as exc:
        checks.failed("database", f"{exc.message}; connections, migrations and the query plan were not checked")
        return
    detail = (f"{counts.active} active, {counts.idle} idle, {counts.idle_in_transaction} idle in transaction "
              "(this check's own connection included)")
    if counts.total > limits.max_connections:
        checks.failed("database connections", f"{counts.total} connections to the runner's database: {detail}; "
                                              "look for a leak (WEB_CONCURRENCY x MAX_CONCURRENT_RUNS bounds ours)",
                      value=counts.total, threshold=limits.max_connections)
    else:
        checks.ok("database connections", f"{counts.total}: {detail}", value=counts.total,
                  threshold=limits.max_connections)
    if status.state == "ok":
        checks.ok("migrations", f"ok: version {status.version}", value=status.state)
    elif status.state == "unknown":
        checks.warning("migrations", f"the database is ahead of this code (version {status.version}): run the "
                                     "`migrations` job to see whether the columns still match", value=status.state)
    else:
        checks.failed("migrations", f"{status.state}: run the `migrations` job for details", value=status.state)
    total = round(plan.total_ms, 2)
    scans = "; ".join(plan.scans) or "no scan"
    verdict = checks.ok if total <= limits.max_query_ms else checks.failed
    verdict("status query", f"EXPLAIN ANALYZE of the status API's query: planning {plan.planning_ms:.2f} ms + "
                            f"execution {plan.execution_ms:.2f} ms ({scans})",
            value=total, threshold=limits.max_query_ms)
    if plan.used_primary_key:
        checks.ok("status query index", f"uses the primary key index {plan.primary_key}", value=plan.primary_key)
    elif plan.primary_key is None:
        checks.failed("status query index", '"PipelineRun" has no primary key: every status request scans the '
                                            "whole table; restore it with a migration")
    else:
        checks.warning("status query index", f"the planner did not use {plan.primary_key} ({scans}): fine while the "
                                             "table is tiny, a full scan per status request once it grows; run ANALYZE "
                                             '"PipelineRun"', value=scans)
