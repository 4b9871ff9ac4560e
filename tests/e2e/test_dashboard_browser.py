"""The dashboard in a real headless Chromium: log in, watch a run complete, cancel one, retry one."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.blobserver import BlobServer
from tests.e2e.browser import Shots, chromium
from tests.e2e.webserver import API_TOKEN, WEBHOOK_SECRET, WebServer, post_run, start_gunicorn

WAIT_MS = 120_000  # a hang guard for a busy machine, not a timing check
SAMPLE = (Path(__file__).resolve().parents[2] / "data" / "samples" / "convenience-reinvented.md").read_bytes()


@pytest.fixture
def server(tmp_path: Path, blob: BlobServer) -> Iterator[WebServer]:
    web = start_gunicorn(tmp_path, {
        "WEBHOOK_SECRET": WEBHOOK_SECRET, "API_TOKEN": API_TOKEN, "ENABLE_DATABASE_WRITES": "false",
        "PIPELINE_ENGINE": "offline", "BLOB_ALLOWED_HOSTS": blob.host, "BLOB_ALLOW_HTTP": "true",
        "MAX_CONCURRENT_RUNS": "3"})
    yield web
    web.stop()
    pid_file = tmp_path / "outputs" / ".state" / "dispatcher.pid"
    if pid_file.exists():  # a failed test may leave the host's dispatcher behind
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


@pytest.fixture
def page(request: pytest.FixtureRequest) -> Iterator[Page]:
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        yield context.new_page()
        context.close()


def submit(server: WebServer, blob: BlobServer, run_id: str, route: str) -> None:
    body: dict[str, object] = {"run_id": run_id, "blob_url": blob.url(route), "company_id": "decathlon",
                               "user_id": "ann"}
    assert post_run(server, body, msg_id=f"msg_{run_id}").status_code == 202


def log_in(page: Page, server: WebServer, shots: Shots) -> None:
    page.goto(server.url("/dashboard"))
    expect(page).to_have_url(server.url("/dashboard/login?next=/dashboard"))
    page.fill("input[name=token]", "not-the-token")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("not the API_TOKEN")
    shots.take(page, "login-refused")
    page.fill("input[name=name]", "Ann Operator")
    page.fill("input[name=token]", API_TOKEN)
    page.click("button[type=submit]")
    expect(page).to_have_url(server.url("/dashboard"))
    expect(page.locator("header")).to_contain_text("signed in as Ann Operator")
    cookie = next(c for c in page.context.cookies() if c["name"] == "runner_dashboard")
    assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"


def test_an_operator_logs_in_and_watches_a_run_complete(page: Page, server: WebServer, blob: BlobServer,
                                                        request: pytest.FixtureRequest):
    shots = Shots(request.node.name)
    log_in(page, server, shots)
    expect(page.locator("#panel-mode")).to_have_text("FILE_ONLY")
    expect(page.locator("#panel-breaker")).to_have_text("closed")
    submit(server, blob, "watched", "/gated/report.md")  # held at the download until the gate opens
    row = page.locator("tr[data-run=watched]")
    expect(row.locator(".status")).to_have_text("PROCESSING", timeout=WAIT_MS)  # live refresh, no reload
    shots.take(page, "run-processing")
    blob.gate.set()
    expect(row.locator(".status")).to_have_text("COMPLETED", timeout=WAIT_MS)
    expect(row).to_contain_text("100 %")
    shots.take(page, "run-completed")
    row.locator("a").click()
    expect(page.locator("#run-status")).to_have_text("COMPLETED")
    expect(page.locator("#timeline tr.stage-completed")).to_have_count(5)
    shots.take(page, "run-timeline")
    page.goto(server.url("/dashboard?status=FAILED"))
    expect(page.locator("#runs")).to_contain_text("No runs match")


def test_an_operator_cancels_a_running_run_and_retries_a_failed_one(page: Page, server: WebServer, blob: BlobServer,
                                                                   request: pytest.FixtureRequest):
    shots = Shots(request.node.name)
    log_in(page, server, shots)
    submit(server, blob, "slow", "/drip?every=1&size=600")  # a download that takes ten minutes
    submit(server, blob, "early", "/files/late.md")  # not uploaded yet: fails at its download
    page.goto(server.url("/dashboard/runs/slow"))
    expect(page.locator("#run-status")).to_have_text("PROCESSING", timeout=WAIT_MS)
    shots.take(page, "slow-processing")
    page.click("#cancel")
    expect(page.get_by_role("status")).to_have_text("Run cancelled.")
    expect(page.locator("#run-status")).to_have_text("CANCELLED")
    expect(page.locator("#run-error")).to_contain_text("cancelled by dashboard:Ann Operator")
    expect(page.locator("#cancel")).to_have_count(0)
    shots.take(page, "slow-cancelled")

    page.goto(server.url("/dashboard/runs/early"))
    expect(page.locator("#run-status")).to_have_text("FAILED", timeout=WAIT_MS)
    expect(page.locator("#run-error")).to_contain_text("BLOB_FETCH_FAILED")
    shots.take(page, "early-failed")
    blob.add_file("late.md", SAMPLE, "text/markdown")
    page.click("#retry")
    expect(page.get_by_role("status")).to_have_text("Retry queued.")
    expect(page.locator("#run-status")).to_have_text("COMPLETED", timeout=WAIT_MS)  # live refresh
    expect(page.locator("#timeline tr.stage-completed")).to_have_count(5)
    shots.take(page, "early-retried-completed")
    page.goto(server.url("/dashboard?status=CANCELLED"))
    expect(page.locator("#runs tbody tr")).to_have_count(1)
    expect(page.locator("tr[data-run=slow] .status")).to_have_text("CANCELLED")
    actions = [line for line in server.log_lines() if line.get("message") == "operator_action"]
    assert [(a["action"], a["asked_by"]) for a in actions] == [("cancel", "dashboard:Ann Operator"),
                                                               ("retry", "dashboard:Ann Operator")]


def test_a_form_without_the_session_csrf_token_is_refused(page: Page, server: WebServer, blob: BlobServer,
                                                         request: pytest.FixtureRequest):
    log_in(page, server, Shots(request.node.name))
    submit(server, blob, "target", "/gated/report.md")
    answer = page.request.post(server.url("/dashboard/runs/target/cancel"), form={"csrf_token": "forged"})
    assert answer.status == 403
    answer = page.request.post(server.url("/dashboard/runs/target/cancel"), form={"csrf_token": "forged"},
                               headers={"Origin": "https://evil.example"})
    assert answer.status == 403
    assert requests_status(server, "target") != "CANCELLED"


def requests_status(server: WebServer, run_id: str) -> str:
    answer = requests.get(server.url(f"/api/pipeline/{run_id}/status"),
                          headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10)
    return str(answer.json()["status"])
