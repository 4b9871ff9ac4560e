"""Honest answers without a durable volume: a webhook during a database outage (real gunicorn).

With OUTPUT_DIR ephemeral (a replicated web service without a volume), a run that PostgreSQL
cannot record is refused with 503 and Retry-After, so the Standard Webhooks sender retries,
instead of a 202 journalled to a disk the next restart erases. With a durable OUTPUT_DIR the same
webhook is journalled in the spool and accepted. The outage is our TCP fault proxy refusing
connections in front of the test database.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests

from tests.e2e.test_dispatch import wait_for
from tests.e2e.webserver import API_TOKEN, REPO, WEBHOOK_SECRET, WebServer, payload, post_run, start_gunicorn
from tests.faultproxy import FaultProxy


@pytest.fixture
def proxy(database_url: str) -> Iterator[FaultProxy]:
    fault = FaultProxy.in_front_of(database_url).start()
    yield fault
    fault.close()


def web(tmp_path: Path, proxy: FaultProxy, database_url: str, durability: str) -> WebServer:
    env = {"DATABASE_URL": proxy.url_for(database_url), "ENABLE_DATABASE_WRITES": "true",
           "ENABLE_FILE_FALLBACK": "false", "OUTPUT_DURABILITY": durability, "RUN_DISPATCH": "workers",
           "WEBHOOK_SECRET": WEBHOOK_SECRET, "API_TOKEN": API_TOKEN}
    return start_gunicorn(tmp_path, env)


def recorded(database_url: str, run_id: str) -> str | None:
    """The run's status straight from PostgreSQL (not through the proxy), or None."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute('SELECT status FROM "PipelineRun" WHERE id = %s', (run_id,)).fetchone()
    return None if row is None else str(row[0])


def spooled(server: WebServer) -> list[Path]:
    spool = Path(server.env["OUTPUT_DIR"]) / ".spool"
    return sorted(p for p in spool.glob("*.json")) if spool.exists() else []


def stranded_threads(server: WebServer) -> list[object]:
    """psycopg_pool's complaints about threads it could not stop: a worker left its pools open."""
    return [line["message"] for line in server.log_lines() if "couldn't stop thread" in str(line.get("message"))]


def test_an_ephemeral_web_answers_503_with_retry_after_until_postgres_records_the_run(
        tmp_path: Path, proxy: FaultProxy, database_url: str) -> None:
    server = web(tmp_path, proxy, database_url, "ephemeral")
    try:
        health = requests.get(server.url("/health"), timeout=10).json()
        assert (health["durability"], health["run_dispatch"]) == ("ephemeral", "workers")
        proxy.reset()  # PostgreSQL refuses every connection
        answer = post_run(server, payload("outage_run"))
        assert answer.status_code == 503, answer.text
        assert int(answer.headers["Retry-After"]) > 0
        body = answer.json()
        assert body["code"] == "NOT_DURABLE" and "Retry-After" not in body["error"] and "retry" in body["error"]
        assert spooled(server) == [] and recorded(database_url, "outage_run") is None  # nothing half-kept
        health = requests.get(server.url("/health"), timeout=10).json()
        assert health["status"] == "degraded" and health["durability"] == "ephemeral"

        proxy.passthrough()  # the database is back: the sender's retries land
        codes: list[int] = []

        def retried() -> bool:  # what the sender does after Retry-After
            codes.append(post_run(server, payload("outage_run")).status_code)
            return codes[-1] != 503

        wait_for(retried, "a retried delivery to be accepted", 120)
        assert codes[-1] == 202, codes
        assert recorded(database_url, "outage_run") == "QUEUED" and spooled(server) == []
        assert post_run(server, payload("outage_run")).status_code == 200  # a repeat, as always
    finally:
        assert server.stop() == 0
        assert stranded_threads(server) == []


def test_a_durable_web_journals_the_same_webhook_and_replays_it(tmp_path: Path, proxy: FaultProxy,
                                                               database_url: str) -> None:
    server = web(tmp_path, proxy, database_url, "durable")
    try:
        assert requests.get(server.url("/health"), timeout=10).json()["durability"] == "durable"
        proxy.reset()
        answer = post_run(server, payload("journalled_run"))
        assert answer.status_code == 202, answer.text
        assert len(spooled(server)) == 1 and recorded(database_url, "journalled_run") is None
        proxy.passthrough()
        replay = subprocess.run([sys.executable, "-m", "handlers.cron", "replay"], cwd=REPO,
                                env={**server.env, "DATABASE_URL": database_url},
                                capture_output=True, text=True, timeout=120)
        assert replay.returncode == 0, replay.stdout[-2000:] + replay.stderr[-2000:]
        assert json.loads(replay.stdout.strip().splitlines()[-1])["status"] == "ok"
        assert recorded(database_url, "journalled_run") == "QUEUED"
    finally:
        assert server.stop() == 0
        assert stranded_threads(server) == []
