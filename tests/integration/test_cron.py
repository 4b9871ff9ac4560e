"""``python -m handlers.cron`` as a real subprocess, against real PostgreSQL, files and HTTP servers.

Every test reads the JSON summary on the last stdout line and the exit code; none times anything.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
from psycopg_pool import PoolTimeout

from config.errors import StoreUnavailable
from config.settings import Settings
from handlers.cron_jobs import ALL_JOBS
from persistence.breaker import BreakerPolicy
from persistence.factory import breaker_state, build_breaker, build_store, spool_backlog
from persistence.postgres import PostgresStore
from persistence.postgres.errors import DeadlineExceeded
from persistence.records import RunRequest, StageResult, utcnow
from persistence.retry import RetryPolicy
from tests.conftest import REPO
from tests.e2e.webserver import SCRUBBED_PREFIXES, start_gunicorn

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
API_TOKEN = "cron-test-api-token-0123456789abcdef"
SECRETS = {"WEBHOOK_SECRET": WEBHOOK_SECRET, "API_TOKEN": API_TOKEN}


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def closed_database_url() -> str:
    return f"postgresql://postgres@127.0.0.1:{free_port()}/runner"


def cron(*args: str, output_dir: Path, env: dict[str, str] | None = None) -> tuple[int, dict, str]:
    """Run the cron CLI in a scrubbed environment; (exit code, summary, stdout)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
    full.update({"OUTPUT_DIR": str(output_dir), "LOG_LEVEL": "INFO", **(env or {})})
    done = subprocess.run([sys.executable, "-m", "handlers.cron", *args], cwd=REPO, env=full,
                          capture_output=True, text=True, timeout=300)
    lines = done.stdout.strip().splitlines()
    assert lines, f"no stdout; stderr:\n{done.stderr}"
    for line in lines:  # structured logs and the summary: every stdout line is one JSON object
        json.loads(line)
    return done.returncode, json.loads(lines[-1]), done.stdout + done.stderr


def checks_by_name(summary: dict) -> dict[str, dict]:
    return {check["name"]: check for check in summary["checks"]}


def run_request(run_id: str) -> RunRequest:
    return RunRequest(run_id=run_id, company_id="decathlon", user_id="u1", document_url="https://b.example/x.pdf")


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "outputs"


@pytest.fixture
def silent_database_port() -> Iterator[int]:
    """A port that accepts TCP connections and never answers: a database hung mid-handshake."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


@pytest.fixture
def failing_health_server() -> Iterator[str]:
    """An HTTP server whose /health answers 500, as a broken deploy would."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            body = b'{"status": "unhealthy", "mode": "INVALID"}'
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass  # keep the test output clean

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# -- validate -----------------------------------------------------------------------------------

def test_validate_passes_with_secrets_set_and_the_database_migrated(database_url, out):
    code, summary, output = cron("validate", output_dir=out, env={"DATABASE_URL": database_url, **SECRETS})
    assert (code, summary["job"], summary["status"]) == (0, "validate", "ok"), summary
    checks = checks_by_name(summary)
    for name in ("settings", "mode", "brand profiles", "database", "schema", "output dir", "volume", "free disk",
                 "WEBHOOK_SECRET", "API_TOKEN", "engine"):
        assert checks[name]["status"] == "ok", checks[name]
    assert checks["mode"]["value"] == "DUAL_WRITE"
    assert checks["WEBHOOK_SECRET"] == {**checks["WEBHOOK_SECRET"], "value": 32, "threshold": 24}
    assert isinstance(summary["duration_ms"], int)
    assert WEBHOOK_SECRET not in output and API_TOKEN not in output and database_url not in output


def test_validate_fails_on_a_malformed_boolean_with_exit_2(out):
    code, summary, _ = cron("validate", output_dir=out, env={"ENABLE_FILE_FALLBACK": "ture", **SECRETS})
    assert (code, summary["status"]) == (2, "failed")
    check = checks_by_name(summary)["variable ENABLE_FILE_FALLBACK"]
    assert check["status"] == "failed" and "true/false" in check["message"]


@pytest.mark.parametrize(("variable", "value", "threshold"), [
    ("WEBHOOK_SECRET", base64.b64encode(b"bare-short-secret").decode().rstrip("="), 24),
    ("WEBHOOK_SECRET", "whsec_" + base64.b64encode(b"s" * 16).decode(), 24),
    ("API_TOKEN", "short-api-token-value-7", 32),
])
def test_validate_fails_on_a_short_secret_without_printing_it(variable, value, threshold, out):
    code, summary, output = cron("validate", output_dir=out, env={**SECRETS, variable: value})
    assert (code, summary["status"]) == (1, "failed")
    check = checks_by_name(summary)[variable]
    assert (check["status"], check["threshold"]) == ("failed", threshold)
    assert value not in output


def test_validate_fails_on_a_webhook_secret_that_is_not_base64_without_printing_it(out):
    value = "a-passphrase-that-is-long-enough-but-not-base64!"
    code, summary, output = cron("validate", output_dir=out, env={**SECRETS, "WEBHOOK_SECRET": value})
    assert (code, summary["status"]) == (1, "failed")
    check = checks_by_name(summary)["WEBHOOK_SECRET"]
    assert check["status"] == "failed" and "not base64" in check["message"] and "whsec_" in check["message"]
    assert value not in output


def test_validate_fails_when_the_secrets_are_unset_and_says_what_answers_503(out):
    code, summary, _ = cron("validate", output_dir=out)
    checks = checks_by_name(summary)
    assert code == 1
    assert checks["WEBHOOK_SECRET"]["status"] == "failed" and "POST /run" in checks["WEBHOOK_SECRET"]["message"]
    assert checks["API_TOKEN"]["status"] == "failed" and "503" in checks["API_TOKEN"]["message"]


def test_validate_fails_when_the_database_is_unreachable(out):
    code, summary, _ = cron("validate", output_dir=out, env={"DATABASE_URL": closed_database_url(), **SECRETS})
    assert (code, summary["status"]) == (1, "failed")
    check = checks_by_name(summary)["database"]
    assert check["status"] == "failed" and "unavailable" in check["message"]


def test_validate_fails_when_the_schema_is_behind(empty_database_url, out):
    code, summary, _ = cron("validate", output_dir=out, env={"DATABASE_URL": empty_database_url, **SECRETS})
    check = checks_by_name(summary)["schema"]
    assert code == 1
    assert check["status"] == "failed" and "behind" in check["message"] and "persistence.migrate up" in check["message"]


def test_validate_warns_when_outputs_are_not_on_a_volume_on_railway(out):
    env = {"RAILWAY_ENVIRONMENT_NAME": "production", "ENABLE_DATABASE_WRITES": "false", **SECRETS}
    code, summary, _ = cron("validate", output_dir=out, env=env)
    assert (code, summary["status"]) == (0, "ok")  # warnings never fail the job
    checks = checks_by_name(summary)
    assert checks["volume"]["status"] == "warning" and "mount a volume" in checks["volume"]["message"]
    assert "ephemeral (on Railway without a volume)" in checks["volume"]["message"]
    assert checks["draining"]["status"] == "warning"


def test_validate_says_a_replicated_service_without_a_volume_answers_503_during_an_outage(out, database_url):
    env = {"RAILWAY_ENVIRONMENT_NAME": "production", "DATABASE_URL": database_url, **SECRETS}
    code, summary, _ = cron("validate", output_dir=out, env=env)
    volume = checks_by_name(summary)["volume"]
    assert volume["status"] == "warning" and "503 with Retry-After" in volume["message"]
    code, summary, _ = cron("validate", output_dir=out, env={**env, "OUTPUT_DURABILITY": "durable"})
    volume = checks_by_name(summary)["volume"]
    assert volume["status"] == "ok" and "durable (declared by OUTPUT_DURABILITY)" in volume["message"]


# -- migrations -----------------------------------------------------------------------------------

def test_migrations_pass_on_a_current_schema(database_url, out):
    code, summary, _ = cron("migrations", output_dir=out, env={"DATABASE_URL": database_url})
    assert (code, summary["status"]) == (0, "ok"), summary
    assert {c["name"]: c["status"] for c in summary["checks"]} == {
        "applied": "ok", "pending": "ok", "unknown": "ok", "checksums": "ok", "columns": "ok"}
    assert breaker_state(Settings(output_dir=out)) == "closed"


@pytest.mark.parametrize(("sabotage", "failed_check", "named"), [
    ("UPDATE runner_schema_migrations SET checksum = 'edited-by-hand' WHERE version = 2", "checksums",
     "0002_add_stage_outputs_and_report"),
    ('ALTER TABLE "PipelineRun" DROP COLUMN "lastInterruption"', "columns", "lastInterruption"),
])
def test_migrations_fail_on_drift_or_a_dropped_column_and_trip_the_breaker(sabotage, failed_check, named,
                                                                            database_url, out):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sabotage)
    code, summary, _ = cron("migrations", output_dir=out, env={"DATABASE_URL": database_url})
    checks = checks_by_name(summary)
    assert (code, summary["status"]) == (1, "failed")
    assert checks[failed_check]["status"] == "failed" and named in checks[failed_check]["message"]
    assert checks["breaker"]["value"] == "open" and "spool" in checks["breaker"]["message"]
    assert breaker_state(Settings(output_dir=out)) == "open"


# -- replay ----------------------------------------------------------------------------------------

def spool_while_down(out: Path, write, *, file_fallback: bool = True) -> Settings:
    """Write through build_store while DATABASE_URL points at a closed port: the write lands in the spool."""
    settings = Settings(database_url=closed_database_url(), output_dir=out, enable_file_fallback=file_fallback)
    store = build_store(settings, retry_policy=RetryPolicy(attempts=1))
    try:
        write(store)
    finally:
        store.close()
    assert spool_backlog(settings) == 1
    build_breaker(settings).reset("test: the database is back")  # the outage opened it; end the break now
    return settings


def test_replay_moves_a_spooled_write_into_the_database(database_url, out):
    spool_while_down(out, lambda store: store.create_run(run_request("spooled-1")))
    code, summary, _ = cron("replay", output_dir=out, env={"DATABASE_URL": database_url})
    checks = checks_by_name(summary)
    assert (code, summary["status"]) == (0, "ok"), summary
    assert (checks["applied"]["value"], checks["dead letters"]["value"], checks["remaining"]["value"]) == (1, 0, 0)
    store = PostgresStore(database_url)
    try:
        spooled = store.get_run("spooled-1")
        assert spooled is not None and spooled.status == "QUEUED"
    finally:
        store.close()


@pytest.mark.parametrize("cause", [PoolTimeout("couldn't get a connection after 5.00 sec"),
                                   DeadlineExceeded("create_run"), OSError("connection reset")],
                         ids=["connect_timeout", "deadline", "consecutive_failures"])
def test_replay_closes_a_breaker_an_outage_opened_once_the_database_answers(cause, database_url, out):
    settings = spool_while_down(out, lambda store: store.create_run(run_request("spooled-3")))
    breaker = build_breaker(settings, BreakerPolicy(consecutive_failures=1, break_seconds=3600, break_jitter=0.0))
    permit = breaker.acquire()
    assert permit is not None
    error = StoreUnavailable("database create_run failed, database unavailable")
    error.__cause__ = cause
    breaker.record(permit, error, 5.0)  # what the outage left: open, for an hour
    assert breaker_state(settings) == "open"
    code, summary, _ = cron("replay", output_dir=out, env={"DATABASE_URL": database_url})
    checks = checks_by_name(summary)
    assert (code, summary["status"]) == (0, "ok"), summary
    assert checks["breaker"]["value"] == "closed" and checks["applied"]["value"] == 1
    assert breaker_state(settings) == "closed"


def test_replay_fails_when_the_database_refuses_a_record_for_good(database_url, out):
    now = utcnow()
    # A stage of a run the database never saw: replay can never apply it, so it becomes a dead letter.
    spool_while_down(out, lambda store: store.save_stage("ghost-run", 1, StageResult(1, {"x": 1}, now, now)),
                     file_fallback=False)
    code, summary, _ = cron("replay", output_dir=out, env={"DATABASE_URL": database_url,
                                                           "ENABLE_FILE_FALLBACK": "false"})
    check = checks_by_name(summary)["dead letters"]
    assert (code, summary["status"]) == (1, "failed")
    assert check["value"] == 1 and "reason.json" in check["message"]
    assert len(list((out / ".spool" / "dead").glob("*.reason.json"))) == 1


def test_replay_keeps_records_and_warns_while_the_database_is_down(out):
    spool_while_down(out, lambda store: store.create_run(run_request("spooled-2")))
    code, summary, _ = cron("replay", output_dir=out, env={"DATABASE_URL": closed_database_url()})
    check = checks_by_name(summary)["remaining"]
    assert (code, summary["status"]) == (0, "ok")
    assert (check["status"], check["value"]) == ("warning", 1)


# -- reap ------------------------------------------------------------------------------------------

def test_reap_requeues_a_lapsed_lease_and_fails_a_run_out_of_attempts(database_url, out):
    store = PostgresStore(database_url)
    try:
        store.create_run(run_request("lapsed"))
        store.claim("lapsed", "host-gone/1", 0)  # a lease that lapses at once: its process "died"
        store.create_run(run_request("doomed"))
        store.claim("doomed", "host-gone/1", 0)
        store.claim("doomed", "host-gone/2", 0)  # its second attempt died too
        code, summary, _ = cron("reap", output_dir=out, env={"DATABASE_URL": database_url, "MAX_RUN_ATTEMPTS": "2"})
        checks = checks_by_name(summary)
        assert (code, summary["status"]) == (0, "ok"), summary  # a run failed for good is only a warning
        assert checks["requeued"]["value"] == 1 and "lapsed" in checks["requeued"]["message"]
        assert checks["failed runs"]["status"] == "warning" and "doomed" in checks["failed runs"]["message"]
        lapsed, doomed = store.get_run("lapsed"), store.get_run("doomed")
        assert lapsed is not None and doomed is not None
        assert (lapsed.status, doomed.status) == ("QUEUED", "FAILED")
    finally:
        store.close()


# -- deploy-check ----------------------------------------------------------------------------------

def test_deploy_check_passes_against_the_real_web_service(database_url, tmp_path, out):
    server = start_gunicorn(tmp_path / "web", {"DATABASE_URL": database_url, **SECRETS})
    try:
        # A generous latency limit: the test proves the measuring, not this machine's speed.
        code, summary, _ = cron("deploy-check", "--url", server.base, "--requests", "10", "--max-latency-ms", "5000",
                                output_dir=out, env={"DATABASE_URL": database_url})
    finally:
        server.stop()
    checks = checks_by_name(summary)
    assert (code, summary["status"]) == (0, "ok"), summary
    for name, threshold in (("health p50", 5000), ("health p95", 5000), ("error rate", 0), ("database connections", 20),
                            ("status query", 50)):
        assert checks[name]["status"] == "ok" and checks[name]["threshold"] == threshold, checks[name]
        assert isinstance(checks[name]["value"], (int, float))
    assert checks["health body"]["value"] == "healthy"
    assert checks["migrations"]["value"] == "ok"
    assert checks["status query index"]["value"] == "PipelineRun_pkey"


def test_deploy_check_fails_when_health_answers_500(failing_health_server, out):
    code, summary, _ = cron("deploy-check", "--url", failing_health_server, "--requests", "5", output_dir=out)
    checks = checks_by_name(summary)
    assert (code, summary["status"]) == (1, "failed")
    assert (checks["error rate"]["status"], checks["error rate"]["value"]) == ("failed", 1.0)
    assert "500 x5" in checks["error rate"]["message"]
    assert checks["database"]["status"] == "warning"  # no DATABASE_URL: database checks skipped


def test_deploy_check_without_a_url_is_a_usage_error(out):
    done = subprocess.run([sys.executable, "-m", "handlers.cron", "deploy-check"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "--url" in done.stderr


# -- timeouts, all, help ---------------------------------------------------------------------------

def test_a_hung_job_is_killed_at_its_timeout_with_a_clear_message(silent_database_port, out):
    url = f"postgresql://postgres@127.0.0.1:{silent_database_port}/runner"
    code, summary, _ = cron("migrations", "--timeout", "1", output_dir=out, env={"DATABASE_URL": url})
    assert (code, summary["job"], summary["status"]) == (1, "migrations", "timeout")
    assert summary["message"].startswith("migrations did not finish within 1 s: stuck at step 'migration status'")


def test_all_runs_every_job_without_a_url(database_url, out):
    code, summary, _ = cron("all", output_dir=out, env={"DATABASE_URL": database_url, **SECRETS})
    assert (code, summary["job"], summary["status"]) == (0, "all", "ok"), summary
    assert [job["job"] for job in summary["jobs"]] == ["validate", "migrations", "replay", "reap", "prune"]
    assert all(job["status"] == "ok" for job in summary["jobs"])
    assert [check["name"] for check in summary["checks"]] == ["validate", "migrations", "replay", "reap", "prune"]


def test_all_fails_when_one_job_fails(database_url, out):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute('ALTER TABLE "StageOutput" DROP COLUMN "durationMs"')
    code, summary, _ = cron("all", output_dir=out, env={"DATABASE_URL": database_url, **SECRETS})
    statuses = {job["job"]: job["status"] for job in summary["jobs"]}
    assert (code, summary["status"]) == (1, "failed")
    assert statuses["migrations"] == "failed" and statuses["reap"] == "ok"


def test_all_with_a_broken_configuration_exits_2_and_runs_only_validate(out):
    code, summary, _ = cron("all", output_dir=out, env={"ENABLE_DATABASE_WRITES": "maybe"})
    statuses = {job["job"]: job["status"] for job in summary["jobs"]}
    assert code == 2
    assert statuses == {"validate": "failed", "migrations": "error", "replay": "error", "reap": "error",
                        "prune": "error"}


def test_help_teaches_the_jobs_exit_codes_and_the_railway_setup():
    done = subprocess.run([sys.executable, "-m", "handlers.cron", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0
    for text in ("validate", "migrations", "replay", "reap", "deploy-check", "exit codes", "*/5 * * * *",
                 "python -m handlers.cron all"):
        assert text in done.stdout
    all_line = " ".join(done.stdout.split("\n  all ", 1)[1].split("\n\n", 1)[0].split())
    assert all(job in all_line for job in ALL_JOBS), all_line  # what `all` runs, said as it is
