"""Cancel and retry through the CLI and over HTTP in every persistence mode, on real servers and runs.

Covers: cancel of a QUEUED run (and a repeated webhook that must not revive it), cancel of a run
whose LLM stage is in flight (told, then killed; finished stages kept), retry of a FAILED run
that then completes from where it stopped, 409 for statuses that do not allow an action, and
completion callbacks delivered for each outcome.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from config.settings import Settings
from handlers.webhook_signature import verify
from persistence.factory import build_store
from persistence.records import RunRequest
from tests.blobserver import BlobServer
from tests.callback_receiver import CallbackReceiver, start_callback_receiver
from tests.e2e.run_modes import MODES, SAMPLES, last_json, mode_env, pipeline_run, run_module
from tests.e2e.webserver import API_TOKEN, WEBHOOK_SECRET, ServerFactory, WebServer, post_run
from tests.fake_openrouter import held, valid

pytest_plugins = ["tests.e2e.web_fixtures"]
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
SAMPLE = (SAMPLES / "convenience-reinvented.md").read_bytes()


def wait_for(predicate: Callable[[], bool], what: str, seconds: float = 120) -> None:
    """Poll until ``predicate`` holds (a hang guard, not a timing check)."""
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


@pytest.fixture(params=MODES)
def mode(request) -> str:
    return str(request.param)


class Runner:
    """One server in a mode, with helpers to send runs and read them back."""

    def __init__(self, server: WebServer, blob: BlobServer) -> None:
        self.server, self.blob = server, blob

    def submit(self, run_id: str, path: str) -> requests.Response:
        body: dict[str, object] = {"run_id": run_id, "blob_url": self.blob.url(path), "company_id": "decathlon",
                                   "user_id": "ann"}
        return post_run(self.server, body, msg_id=f"msg_{run_id}")

    def status(self, run_id: str) -> dict:
        answer = requests.get(self.server.url(f"/api/pipeline/{run_id}/status"), headers=AUTH, timeout=10)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def act(self, run_id: str, action: str) -> requests.Response:
        return requests.post(self.server.url(f"/api/pipeline/{run_id}/{action}"),
                             headers={**AUTH, "X-Operator": "ann"}, timeout=10)

    def wait_status(self, run_id: str, wanted: str) -> dict:
        wait_for(lambda: self.status(run_id)["status"] == wanted, f"{run_id} to be {wanted}")
        return self.status(run_id)


def start(factory: ServerFactory, mode: str, database_url: str, tmp_path: Path, blob: BlobServer,
          **extra: str) -> Runner:
    env = {**mode_env(mode, database_url, tmp_path / "outputs"), "WEBHOOK_SECRET": WEBHOOK_SECRET,
           "API_TOKEN": API_TOKEN, "BLOB_ALLOWED_HOSTS": blob.host, "BLOB_ALLOW_HTTP": "true", **extra}
    return Runner(factory(env), blob)


def test_a_queued_run_is_cancelled_over_http_and_a_repeated_webhook_never_revives_it(
        mode, database_url, tmp_path, blob, gunicorn_factory):
    runner = start(gunicorn_factory, mode, database_url, tmp_path, blob, MAX_CONCURRENT_RUNS="1")
    assert runner.submit("blocker", "/gated/report.md").status_code == 202  # holds the only slot
    wait_for(lambda: runner.status("blocker")["status"] == "PROCESSING", "the blocker to start")
    assert runner.submit("waiting", "/files/report.md").status_code == 202
    assert runner.status("waiting")["status"] == "QUEUED"
    cancelled = runner.act("waiting", "cancel")
    assert (cancelled.status_code, cancelled.json()) == (202, {"run_id": "waiting", "status": "CANCELLED"})
    assert runner.act("waiting", "cancel").status_code == 409
    assert runner.submit("waiting", "/files/report.md").status_code == 200  # the sender retries: no revival
    runner.blob.gate.set()
    runner.wait_status("blocker", "COMPLETED")
    # The dispatcher went on to poll the queue after the blocker: the cancelled run was never claimed.
    status = runner.status("waiting")
    assert status["status"] == "CANCELLED" and status["error"]["code"] == "CANCELLED"
    assert "api:ann" in status["error"]["message"]
    assert not any(seen.path.startswith("/files/") for seen in runner.blob.seen)  # never fetched
    assert runner.act("blocker", "cancel").json()["code"] == "RUN_NOT_CANCELLABLE"
    assert runner.act("blocker", "retry").json()["code"] == "RUN_NOT_RETRYABLE"
    actions = [line for line in runner.server.log_lines() if line.get("message") == "operator_action"]
    assert [(a["action"], a["run_id"], a["asked_by"]) for a in actions] == [("cancel", "waiting", "api:ann")]


def test_cancelling_a_run_in_its_llm_stage_stops_its_process_and_keeps_finished_stages(
        mode, database_url, tmp_path, blob, llm, gunicorn_factory):
    gate = threading.Event()
    llm.script(valid(), valid(), held(gate))  # stages 1 and 2 answer; stage 3 never does
    runner = start(gunicorn_factory, mode, database_url, tmp_path, blob, PIPELINE_ENGINE="openrouter",
                   OPENROUTER_API_KEY=llm.api_key, OPENROUTER_BASE_URL=llm.base_url)
    try:
        assert runner.submit("thinking", "/files/report.md").status_code == 202
        wait_for(lambda: sum(1 for r in llm.completions if r.stage == 3) == 1, "stage 3 to be in flight")
        assert runner.act("thinking", "cancel").status_code == 202

        def stopped() -> list[dict]:
            return [line for line in runner.server.log_lines()
                    if line.get("message") == "run_process_exited" and line.get("run_id") == "thinking"]
        wait_for(lambda: bool(stopped()), "the run's process to be stopped")
        assert stopped()[0]["stopped_because"] and stopped()[0]["exit_code"] == -signal.SIGKILL  # told, then killed
        status = runner.status("thinking")
        assert status["status"] == "CANCELLED" and status["error"]["stage"] == 3
        assert [status["stages"][n]["status"] for n in "12345"] == ["completed", "completed", "pending", "pending",
                                                                    "pending"]
        stage = requests.get(runner.server.url("/api/pipeline/thinking/stages/2"), headers=AUTH, timeout=10)
        assert stage.status_code == 200 and stage.json()["output"]["signals"]
    finally:
        gate.set()


def test_a_failed_run_is_retried_over_http_and_completes_from_where_it_stopped(
        mode, database_url, tmp_path, blob, gunicorn_factory):
    runner = start(gunicorn_factory, mode, database_url, tmp_path, blob)
    assert runner.submit("late", "/files/late.md").status_code == 202  # not uploaded yet: 404
    failed = runner.wait_status("late", "FAILED")
    assert failed["error"]["code"] == "BLOB_FETCH_FAILED"
    runner.blob.add_file("late.md", SAMPLE, "text/markdown")
    answer = runner.act("late", "retry")
    assert (answer.status_code, answer.json()) == (202, {"run_id": "late", "status": "QUEUED"})
    done = runner.wait_status("late", "COMPLETED")
    assert done["error"] is None and done["progress"] == 1.0
    shown = requests.get(runner.server.url("/api/runs/late"), headers=AUTH, timeout=10).json()
    assert shown["attempt"] == 2
    assert runner.act("late", "retry").status_code == 409


def test_the_cli_cancels_and_retries_in_every_mode(mode, database_url, tmp_path, gunicorn_factory):
    output_dir = tmp_path / "outputs"
    env = mode_env(mode, database_url, output_dir)
    store = build_store(Settings.from_env(env))
    try:
        store.create_run(RunRequest("queued", "decathlon", "u1", "https://a.public.blob.vercel-storage.com/x.md"))
    finally:
        store.close()
    cancelled = run_module("handlers.runs", "cancel", "queued", env=env)
    assert cancelled.returncode == 0, cancelled.stdout[-2000:]
    assert last_json(cancelled)["run_status"] == "CANCELLED"
    again = run_module("handlers.runs", "cancel", "queued", env=env)
    assert again.returncode == 1 and last_json(again)["code"] == "RUN_NOT_CANCELLABLE"
    assert last_json(run_module("handlers.runs", "show", "queued", env=env))["run"]["status"] == "CANCELLED"
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert pipeline_run(env, empty, "decathlon", "broken").returncode == 1
    retried = run_module("handlers.runs", "retry", "broken", env=env)
    assert retried.returncode == 0 and last_json(retried)["run_status"] == "QUEUED"
    assert last_json(retried)["dispatcher_notified"] is False  # no web service on this "host" yet
    logged = [json.loads(line) for line in retried.stdout.splitlines() if '"operator_action"' in line]
    assert logged[0]["action"] == "retry" and logged[0]["asked_by"].startswith("cli:")
    assert last_json(run_module("handlers.runs", "retry", "broken", env=env))["code"] == "RUN_NOT_RETRYABLE"

    def attempt_two_failed() -> bool:
        run = last_json(run_module("handlers.runs", "show", "broken", env=env))["run"]
        return bool(run["status"] == "FAILED" and run["attempt"] == 2)
    # The web service's dispatcher picks the queued run up by itself (an empty document fails again).
    gunicorn_factory(env)
    wait_for(attempt_two_failed, "the retried run's second attempt")


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    server = start_callback_receiver(["ok"])
    yield server
    server.close()


def test_each_outcome_is_called_back_once_signed(mode, database_url, tmp_path, blob, receiver, gunicorn_factory):
    runner = start(gunicorn_factory, mode, database_url, tmp_path, blob, CALLBACK_URL=receiver.url,
                   BLOB_ALLOWED_HOSTS=f"{blob.host},{receiver.host}", MAX_CONCURRENT_RUNS="1")
    assert runner.submit("good", "/files/report.md").status_code == 202
    runner.wait_status("good", "COMPLETED")
    assert runner.submit("missing", "/files/nothing.md").status_code == 202
    runner.wait_status("missing", "FAILED")
    assert runner.submit("held", "/gated/report.md").status_code == 202
    wait_for(lambda: runner.status("held")["status"] == "PROCESSING", "the held run to start")
    assert runner.act("held", "cancel").status_code == 202
    wait_for(lambda: len(receiver.received) >= 3, "three callbacks")
    events = {}
    for seen in receiver.received:
        assert verify(WEBHOOK_SECRET, seen.headers, seen.body) == seen.headers["webhook-id"]
        event = json.loads(seen.body)
        events[event["data"]["run_id"]] = (event["type"], seen.headers["webhook-id"])
    assert {run: kind for run, (kind, _) in events.items()} == {
        "good": "run.completed", "missing": "run.failed", "held": "run.cancelled"}
    assert len(receiver.received) == 3  # one per outcome
    assert events["good"][1] == "msg_good_completed_1"
