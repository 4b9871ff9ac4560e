"""A run fetches its document while it reads and writes its records, not after.

The proof needs no clock: the test holds the run's lock, so the run cannot record its start;
the blob server must still receive the run's GET. Before the prefetch the run fetched only after
its records were written, and the GET never came while the lock was held.
"""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import Settings
from persistence.files import LOCK_FILE
from persistence.records import RunRequest, RunStatus
from pipeline.bootstrap import bootstrap
from pipeline.runner import RunOutcome, RunServices, execute_run
from tests.blobserver import BlobServer, start_blob_server

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "samples" / "outdoor-gear-circularity.txt"
WAIT_S = 30  # a bound on waiting for what must happen, never a measure of speed


@pytest.fixture
def blob() -> Iterator[BlobServer]:
    server = start_blob_server()
    server.add_file("report.txt", SAMPLE.read_bytes(), "text/plain")
    yield server
    server.gate.set()
    server.close()


def settings_for(blob: BlobServer, out: Path) -> Settings:
    return Settings(enable_database_writes=False, output_dir=out, blob_allow_http=True,
                    blob_allowed_hosts=(blob.host,))


def wait_until(condition, what: str) -> None:
    done = threading.Event()
    for _ in range(WAIT_S * 20):
        if condition():
            return
        done.wait(0.05)
    raise AssertionError(f"gave up waiting: {what}")


def recorded(settings: Settings, request: RunRequest) -> RunServices:
    services = bootstrap(settings, quiet=True).services
    services.store.create_run(request)
    return services


def run_in_thread(services: RunServices, request: RunRequest) -> tuple[threading.Thread, dict[str, object]]:
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["outcome"] = execute_run(services, request, attempt=1)
        except BaseException as exc:  # reported by the test, never lost in the thread
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def test_the_document_is_fetched_while_the_run_is_still_waiting_on_its_records(blob, tmp_path):
    settings = settings_for(blob, tmp_path / "out")
    request = RunRequest("prefetch-1", "decathlon", "u1", blob.url("/gated/report.txt"))
    services = recorded(settings, request)
    with open(tmp_path / "out" / request.run_id / LOCK_FILE, "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the run cannot write its start while this is held
        thread, result = run_in_thread(services, request)
        wait_until(lambda: any(seen.path.startswith("/gated/report.txt") for seen in blob.seen),
                   "the run's GET while its records were blocked")
        assert "outcome" not in result and "error" not in result
        fcntl.flock(lock, fcntl.LOCK_UN)
    blob.gate.set()
    thread.join(WAIT_S)
    assert "error" not in result, result.get("error")
    outcome = result["outcome"]
    assert isinstance(outcome, RunOutcome) and outcome.status is RunStatus.COMPLETED


def test_a_refused_document_fails_the_run_exactly_as_before(blob, tmp_path):
    # The prefetch thread's error is raised where the run asks for its document: the run FAILs
    # with the fetch's own code and message, and nothing is left running.
    settings = settings_for(blob, tmp_path / "out")
    request = RunRequest("prefetch-2", "decathlon", "u1", blob.url("/files/missing.txt"))
    thread, result = run_in_thread(recorded(settings, request), request)
    thread.join(WAIT_S)
    outcome = result["outcome"]
    assert isinstance(outcome, RunOutcome) and outcome.status is RunStatus.FAILED
    assert outcome.error is not None and outcome.error.code == "BLOB_FETCH_FAILED"
    assert "HTTP 404" in outcome.error.message
    assert [t.name for t in threading.enumerate() if t.name == "document-prefetch"] == []
