"""What a failed run tells the user, through the real gunicorn and dispatcher.

A PDF bomb fails once, at once, with DOCUMENT_TOO_COMPLEX; a stage that hangs is killed by the
dispatcher's watchdog (STAGE_TIMEOUT_SECONDS) and retried or failed with STAGE_TIMEOUT; a run
process that dies is reported by cause, and the status API never shows internal log lines.
"""

from __future__ import annotations

import os
import signal
import threading

from tests.e2e import test_dispatch as dispatch
from tests.e2e.test_dispatch import (
    FINISHED,
    calls_per_stage,
    env_for,
    fetches,
    llm_env,
    logged,
    run_doc,
    status,
    wait_for,
)
from tests.e2e.webserver import post_run
from tests.fake_openrouter import held, valid
from tests.poison_pdfs import BOMBS

# The dispatch tests' gunicorn servers (blob and llm come from tests/e2e/conftest.py).
servers = dispatch.servers


def _no_log_lines(message: str) -> bool:
    return '{"' not in message and "timestamp" not in message and "Traceback" not in message


def run_body(run_id: str, url: str) -> dict[str, object]:
    return {"run_id": run_id, "blob_url": url, "company_id": "decathlon", "user_id": "user_1"}


def test_a_pdf_bomb_fails_once_at_once_as_too_complex(servers, blob, tmp_path):
    url = blob.add_file("bomb.pdf", BOMBS["text_operators"](), "application/pdf")
    server = servers(env_for(blob, MAX_RUN_ATTEMPTS="3"))
    assert post_run(server, run_body("bomb", url)).status_code == 202
    wait_for(lambda: status(server, "bomb")["status"] in FINISHED, "the bomb run to finish")
    answer = status(server, "bomb")
    assert answer["status"] == "FAILED" and answer["error"]["code"] == "DOCUMENT_TOO_COMPLEX"
    assert "too complex" in answer["error"]["message"] and _no_log_lines(answer["error"]["message"])
    assert run_doc(tmp_path / "outputs", "bomb")["attempt"] == 1  # never retried on the same bytes
    assert fetches(blob, "/files/bomb.pdf") == 1
    assert not logged(server, "run_requeued")


def test_a_hung_stage_is_killed_and_the_run_fails_with_stage_timeout(servers, blob, llm, tmp_path):
    gate = threading.Event()
    llm.script(valid(), valid(), held(gate))  # stage 3 never answers while the test runs
    server = servers(llm_env(blob, llm, STAGE_TIMEOUT_SECONDS="2", MAX_RUN_ATTEMPTS="1"))
    try:
        assert post_run(server, run_body("hung", blob.url("/files/report.txt"))).status_code == 202
        wait_for(lambda: status(server, "hung")["status"] in FINISHED, "the watchdog to fail the run", 90)
    finally:
        gate.set()
    answer = status(server, "hung")
    assert answer["status"] == "FAILED" and answer["error"]["code"] == "STAGE_TIMEOUT"
    assert answer["error"]["stage"] == 3
    assert "STAGE_TIMEOUT_SECONDS=2" in answer["error"]["message"] and "stage 3" in answer["error"]["message"]
    assert _no_log_lines(answer["error"]["message"])
    assert logged(server, "stage_timeout")[0]["stage"] == 3


def test_a_hung_stage_is_retried_when_attempts_remain(servers, blob, llm, tmp_path):
    gate = threading.Event()
    llm.script(valid(), valid(), held(gate))  # only the first attempt's stage 3 hangs
    server = servers(llm_env(blob, llm, STAGE_TIMEOUT_SECONDS="2", MAX_RUN_ATTEMPTS="2"))
    try:
        assert post_run(server, run_body("retried", blob.url("/files/report.txt"))).status_code == 202
        wait_for(lambda: status(server, "retried")["status"] in FINISHED, "the retried run to finish", 120)
    finally:
        gate.set()
    doc = run_doc(tmp_path / "outputs", "retried")
    assert doc["status"] == "COMPLETED" and doc["attempt"] == 2
    assert "STAGE_TIMEOUT_SECONDS=2" in doc["last_interruption"]
    assert calls_per_stage(llm)[:2] == [1, 1]  # finished stages were not recomputed


def test_a_dead_run_process_is_reported_by_cause_without_log_lines(servers, blob, tmp_path):
    server = servers(env_for(blob, MAX_RUN_ATTEMPTS="1"))
    assert post_run(server, run_body("died", blob.url("/gated/report.txt"))).status_code == 202
    wait_for(lambda: bool(logged(server, "run_process_started")), "the run process to start")
    os.kill(logged(server, "run_process_started")[0]["pid"], signal.SIGKILL)
    wait_for(lambda: status(server, "died")["status"] in FINISHED, "the run to be failed")
    blob.gate.set()
    error = status(server, "died")["error"]
    assert error["code"] == "PROCESS_DIED"
    message = error["message"]
    assert "SIGKILL" in message and "document intake" in message and "report.txt" in message
    assert "MAX_RUN_ATTEMPTS=1" in message and _no_log_lines(message)
    assert logged(server, "run_failed_after_retries")  # the log lines went to the log instead
