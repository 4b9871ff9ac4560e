"""The status API's body: which stage is completed, running, failed or pending."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from config.errors import NotFound
from handlers.runs import run_status
from persistence.ports import SourcedRun
from persistence.records import RunErrorInfo, RunRequest, RunState, RunStatus, StageState

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


class OneRunStore:
    """A RunStore fake that knows one run."""

    name = "files"

    def __init__(self, state: RunState | None) -> None:
        self.state = state

    def read_run(self, run_id: str) -> SourcedRun:
        return SourcedRun(self.state if self.state and self.state.run_id == run_id else None, "files")


def state(status: RunStatus, done: int, error: RunErrorInfo | None = None) -> RunState:
    stages = {n: StageState("completed", NOW, 5) for n in range(1, done + 1)}
    return RunState(RunRequest("r", "decathlon", "u", "https://x/y.pdf"), status, 1, done or None, stages, error,
                    NOW, NOW)


@pytest.mark.parametrize(
    ("status", "done", "error", "expected"),
    [
        (RunStatus.QUEUED, 0, None, ["pending"] * 5),
        (RunStatus.PROCESSING, 0, None, ["running", "pending", "pending", "pending", "pending"]),
        (RunStatus.PROCESSING, 2, None, ["completed", "completed", "running", "pending", "pending"]),
        (RunStatus.QUEUED, 3, None, ["completed"] * 3 + ["pending"] * 2),  # requeued after a crash
        (RunStatus.FAILED, 1, RunErrorInfo(2, "X", "y"), ["completed", "failed", "pending", "pending", "pending"]),
        (RunStatus.COMPLETED, 5, None, ["completed"] * 5),
    ],
)
def test_each_stage_reports_where_the_run_stands(status, done, error, expected):
    body = run_status(OneRunStore(state(status, done, error)), "r")  # type: ignore[arg-type]
    assert [body["stages"][str(n)]["status"] for n in range(1, 6)] == expected
    assert body["stages"]["1"]["completed_at"] == (NOW.isoformat() if done else None)
    assert body["current_stage"] == (done or None) and body["source"] == "files"


def test_an_unknown_run_is_not_found():
    with pytest.raises(NotFound):
        run_status(OneRunStore(None), "nobody")  # type: ignore[arg-type]
