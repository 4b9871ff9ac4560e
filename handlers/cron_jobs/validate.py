"""``validate``: can this deployment run at all? Settings, mode, brands, database, disk, secrets.

The runner's version of the design document's Railway environment script, turned from asserts
into checks that say what is wrong and how to fix it. Run it after setting variables, as the
first job of ``all`` in the cron service, or by hand inside a service (``railway ssh``).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path

from config.errors import ConfigError, InvalidInput, StoreError
from config.modes import Mode
from config.settings import Settings
from handlers.cron_jobs import credentials
from handlers.cron_jobs.checks import MIB, Checks, JobContext, Thresholds
from handlers.cron_jobs.llm_checks import check_llm
from persistence.diagnostics import DatabaseDiagnostics
from pipeline.brands import load_all_brands

DATABASE_TIMEOUT_S = 5.0
MIN_DRAINING_S = 30


def run(ctx: JobContext) -> None:
    """Every validate check; a configuration that does not parse fails with one check per problem."""
    checks = ctx.checks
    checks.step("settings")
    if ctx.settings is None:
        _config_problems(ctx.config_error or ConfigError("settings were not loaded"), checks)
        return
    settings = ctx.settings
    checks.ok("settings", "every variable parsed", value=settings.railway_environment or "local")
    if not _mode(settings, checks):
        return
    checks.step("brand profiles")
    _brands(settings, checks)
    if settings.mode.uses_database:
        checks.step("database reachable")
        _database(settings, checks)
    checks.step("output dir")
    _output_dir(settings, checks, ctx.thresholds)
    checks.step("secrets")
    credentials.check_webhook_secret(settings, checks)
    credentials.check_api_token(settings, checks)
    credentials.check_openrouter(settings, checks)
    check_llm(settings, checks)
    _draining(settings, checks)


def _config_problems(error: ConfigError, checks: Checks) -> None:
    for problem in error.problems:
        match = re.match(r"[A-Z][A-Z0-9_]+", problem)
        checks.failed(f"variable {match.group(0)}" if match else "settings", problem, config=True)
    checks.failed("settings", f"{len(error.problems)} problem(s) above; the other checks need parsed settings "
                              "and were skipped: fix the variables and run validate again", config=True)


def _mode(settings: Settings, checks: Checks) -> bool:
    mode = settings.mode
    if mode is Mode.INVALID:
        try:
            settings.require_runnable()
        except ConfigError as exc:
            checks.failed("mode", exc.message, value=str(mode), config=True)
        return False
    if settings.enable_database_writes and not settings.database_url:
        checks.warning("mode", "ENABLE_DATABASE_WRITES=true but DATABASE_URL is unset: runs go to files only "
                               "(FILE_ONLY); set DATABASE_URL (Railway: a reference to the Postgres service's "
                               "DATABASE_URL) or ENABLE_DATABASE_WRITES=false to say so", value=str(mode))
    else:
        checks.ok("mode", f"{mode}: database writes {'on' if mode.uses_database else 'off'}, "
                          f"files {'on' if mode.writes_files else 'off'}", value=str(mode))
    return True


def _brands(settings: Settings, checks: Checks) -> None:
    try:
        profiles = load_all_brands(settings.brands_dir)
    except InvalidInput as exc:
        checks.failed("brand profiles", exc.message)
        return
    if not profiles:
        checks.failed("brand profiles", f"no *.yaml profiles in {settings.brands_dir}: every run would be refused; "
                                        "check DATA_DIR (the image ships data/brand-profiles)")
        return
    ids = [p.brand_id for p in profiles]
    checks.ok("brand profiles", f"{len(ids)} valid: {', '.join(ids)}", value=len(ids))


def _database(settings: Settings, checks: Checks) -> None:
    try:
        with DatabaseDiagnostics(settings.database_url or "", DATABASE_TIMEOUT_S) as diag:
            millis = diag.ping()
            checks.ok("database", f"reachable, SELECT 1 in {millis:.1f} ms", value=round(millis, 1))
            checks.step("database schema")
            status = diag.migration_status()
    except StoreError as exc:
        checks.failed("database", f"{exc.message}. Check DATABASE_URL, that the database service runs and accepts "
                                  f"connections within {DATABASE_TIMEOUT_S:g} s; meanwhile runs go to the spool "
                                  "(and files in DUAL_WRITE)", threshold=f"{DATABASE_TIMEOUT_S:g} s")
        return
    fix = "run `python -m persistence.migrate up` (Railway: the pre-deploy command does it on every deploy)"
    if status.state == "ok":
        checks.ok("schema", f"current: version {status.version}", value=status.version)
    elif status.state == "unknown":
        labels = ", ".join(m.label for m in status.unknown)
        checks.warning("schema", f"the database has migrations this code does not know ({labels}): a newer deploy "
                                 "applied them; run the `migrations` job to see whether the columns still match",
                       value=status.version)
    elif status.state == "behind":
        labels = ", ".join(m.label for m in status.pending)
        checks.failed("schema", f"behind: pending {labels}; {fix}", value=status.version)
    else:
        labels = ", ".join(m.label for m in status.drifted)
        checks.failed("schema", f"drift: {labels} changed after being applied; run the `migrations` job and see "
                                "docs/runbook.md (schema drift)", value=status.version)


def _output_dir(settings: Settings, checks: Checks, limits: Thresholds) -> None:
    out = settings.output_dir
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".cron-probe-{os.getpid()}-{secrets.token_hex(4)}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"probe\n")
            os.fsync(fd)  # a volume that accepts writes but cannot persist them fails here
        finally:
            os.close(fd)
        probe.unlink()
    except OSError as exc:
        checks.failed("output dir", f"OUTPUT_DIR {out} is not writable ({exc.strerror or exc}): stage files and the "
                                    "spool cannot be written. A Railway volume is mounted as root: start the service "
                                    "through the image's entrypoint (/app/docker/entrypoint.sh gives it to the "
                                    "app user; a custom start command replaces it), or point OUTPUT_DIR somewhere "
                                    "writable")
    else:
        checks.ok("output dir", f"{out} writable (write, fsync, delete)", value=str(out))
    _survives_redeploy(settings, checks)
    _free_disk(settings, checks, limits)


def _survives_redeploy(settings: Settings, checks: Checks) -> None:
    """The durability of OUTPUT_DIR, and what this deployment therefore does during an outage."""
    out = settings.output_dir
    if settings.output_durable:
        checks.ok("volume", f"OUTPUT_DIR is {settings.durability}: it survives a redeploy, and webhooks received "
                            "during a database outage are journalled there (202) and replayed", value=True)
        return
    lost = {
        Mode.FILE_ONLY: "every run's files and reports (the only copy in FILE_ONLY)",
        Mode.DUAL_WRITE: "the file mirror of every run and any spooled writes not yet replayed into PostgreSQL",
        Mode.DATABASE_ONLY: "any spooled writes not yet replayed into PostgreSQL (outputs of runs during an outage)",
    }[settings.mode]
    outage = ("" if settings.mode is Mode.FILE_ONLY else
              " So a webhook received while PostgreSQL is unreachable answers 503 with Retry-After (the sender "
              "retries) instead of a 202 journalled to this disk, and a run lost with its container resumes from "
              "what PostgreSQL holds: right for replicated web or worker services.")
    checks.warning("volume", f"OUTPUT_DIR {out} is {settings.durability}: a redeploy erases {lost}, and the "
                             f"breaker state.{outage} For one replica that should ride out outages, mount a volume "
                             "on this service (e.g. at /data) and leave OUTPUT_DIR unset: it defaults to "
                             "$RAILWAY_VOLUME_MOUNT_PATH/outputs", value=False)


def _free_disk(settings: Settings, checks: Checks, limits: Thresholds) -> None:
    target = next((p for p in (settings.output_dir, *settings.output_dir.parents) if p.exists()), Path("/"))
    free = shutil.disk_usage(target).free
    free_mib = round(free / MIB)
    warn_mib, fail_mib = limits.warn_free_bytes // MIB, limits.fail_free_bytes // MIB
    message = f"{free_mib} MiB free on {target}"
    if free < limits.fail_free_bytes:
        checks.failed("free disk", f"{message}: under {fail_mib} MiB, stage files and spool writes will fail soon; "
                                   "grow the volume or delete old run folders", value=free_mib, threshold=fail_mib)
    elif free < limits.warn_free_bytes:
        checks.warning("free disk", f"{message}: under {warn_mib} MiB; grow the volume or delete old run folders",
                       value=free_mib, threshold=warn_mib)
    else:
        checks.ok("free disk", message, value=free_mib, threshold=warn_mib)


def _draining(settings: Settings, checks: Checks) -> None:
    if settings.railway_environment is None:
        return  # local runs have no redeploys to drain
    seconds = settings.draining_seconds
    if seconds < MIN_DRAINING_S:
        checks.warning("draining", f"RAILWAY_DEPLOYMENT_DRAINING_SECONDS={seconds}: a redeploy SIGKILLs running "
                                   f"stages after {seconds} s and their work is redone by the next attempt; set "
                                   "30-60 on the web service so runs stop cleanly after their current stage",
                       value=seconds, threshold=MIN_DRAINING_S)
    else:
        checks.ok("draining", f"{seconds} s between SIGTERM and SIGKILL", value=seconds, threshold=MIN_DRAINING_S)
