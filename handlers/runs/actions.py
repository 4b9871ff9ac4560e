"""Operator actions on one run: cancel and retry (CLI, HTTP API and dashboard share them).

Each checks the run's status (Conflict, 409, when it does not allow the action), applies one
write command to the mode's store, logs one ``operator_action`` line naming who asked, and
wakes the host's dispatcher: a retried run starts, a cancelled one has its process stopped
(told, then killed after a grace period; other hosts stop theirs at their next heartbeat).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from config.errors import Conflict, NotFound
from config.log import get_logger
from config.paths import check_run_id
from persistence.commands import CancelRun, RetryRun
from persistence.ports import RunStore
from persistence.query.ports import running_stage
from persistence.records import RunState, RunStatus

log = get_logger(__name__)
Wake = Callable[[str], object]
CANCELLABLE = (RunStatus.QUEUED, RunStatus.PROCESSING)


def _state(store: RunStore, run_id: str) -> RunState:
    state = store.get_run(check_run_id(run_id))
    if state is None:
        raise NotFound(f"no run {run_id!r}: check the run id", code="RUN_NOT_FOUND")
    return state


def cancel_run(store: RunStore, wake: Wake, run_id: str, *, asked_by: str) -> dict[str, Any]:
    """Cancel a QUEUED or PROCESSING run; finished stages stay. Conflict for any other status."""
    state = _state(store, run_id)
    if state.status not in CANCELLABLE:
        raise Conflict(f"run {run_id} is {state.status}: only QUEUED or PROCESSING runs can be cancelled",
                       code="RUN_NOT_CANCELLABLE")
    stage = running_stage(state.status, state.completed_stages)
    if not store.apply(CancelRun(run_id, state.attempt, stage, asked_by)):
        raise Conflict(f"run {run_id} finished while it was being cancelled: see its status",
                       code="RUN_NOT_CANCELLABLE")
    log.info("operator_action", action="cancel", run_id=run_id, asked_by=asked_by, was=str(state.status),
             stage=stage)
    wake(run_id)  # the dispatcher running it checks at once and stops its process
    return {"run_id": run_id, "status": str(RunStatus.CANCELLED)}


def retry_run(store: RunStore, wake: Wake, run_id: str, *, asked_by: str) -> dict[str, Any]:
    """Queue a FAILED run again; its new attempt resumes after its last finished stage."""
    state = _state(store, run_id)
    if state.status is not RunStatus.FAILED:
        raise Conflict(f"run {run_id} is {state.status}: only FAILED runs can be retried", code="RUN_NOT_RETRYABLE")
    if not store.apply(RetryRun(run_id, state.attempt, asked_by)):
        raise Conflict(f"run {run_id} changed while it was being retried: see its status", code="RUN_NOT_RETRYABLE")
    log.info("operator_action", action="retry", run_id=run_id, asked_by=asked_by, attempt=state.attempt,
             resumes_after=max(state.completed_stages, default=0))
    wake(run_id)
    return {"run_id": run_id, "status": str(RunStatus.QUEUED)}
