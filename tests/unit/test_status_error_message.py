"""The status API shows a failed run's error in words, never the log lines older versions stored."""

from __future__ import annotations

from typing import Any, cast

from handlers.runs import run_status
from persistence.ports import RunStore
from persistence.records import RunErrorInfo, RunStatus
from tests.unit.test_run_status import OneRunStore, state

LEGACY = ('run process killed by SIGABRT; gave up after 3 attempt(s) (MAX_RUN_ATTEMPTS=3); last log lines:\n'
          '{"run_id": "r", "message": "stage_started", "level": "info", "timestamp": "2026-11-30T10:00:00Z"}\n'
          '{"run_id": "r", "message": "document_fetched", "level": "info"}')


def status_of(run: Any) -> dict[str, Any]:
    """The status body of a store that holds only ``run`` (a fake: only get_run is called)."""
    return run_status(cast(RunStore, OneRunStore(run)), "r")


def test_log_lines_stored_by_an_older_version_are_not_shown() -> None:
    failed = state(RunStatus.FAILED, 0, RunErrorInfo(1, "PROCESS_DIED", LEGACY))
    error = status_of(failed)["error"]
    assert error == {"stage": 1, "code": "PROCESS_DIED",
                     "message": "run process killed by SIGABRT; gave up after 3 attempt(s) (MAX_RUN_ATTEMPTS=3)"}


def test_an_ordinary_message_is_shown_whole() -> None:
    message = "the PDF is too complex to read safely: it has 200,000 pages. Split it."
    failed = state(RunStatus.FAILED, 0, RunErrorInfo(1, "DOCUMENT_TOO_COMPLEX", message))
    assert status_of(failed)["error"]["message"] == message
