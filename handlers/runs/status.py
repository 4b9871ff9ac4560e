"""Record an accepted run, and describe a run for the status API (contract §5 and §10)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from config.errors import NotDurable, NotFound, RunnerError, StoreError
from config.log import get_logger
from handlers.launcher import RunLauncher
from persistence.commands import CreateRun
from persistence.ports import DirectWrite, RunStore
from persistence.query.ports import progress, running_stage
from persistence.records import STAGE_NUMBERS, RunErrorInfo, RunRequest, RunState, RunStatus, StageState

log = get_logger(__name__)


RETRY_AFTER_S = 30  # what a refused sender is told; Standard Webhooks senders also back off themselves


def submit_run(store: RunStore, launcher: RunLauncher, request: RunRequest, *,
               direct: DirectWrite | None = None, announce: bool = True) -> bool:
    """Record ``request`` (QUEUED), then notify the launcher. True if new, False for a repeat.

    The run is durable before anyone is told: a launcher that fails to start it leaves a QUEUED
    run that recovery picks up, so the sender still gets its 202/200. Conflict propagates (409).
    ``announce=False``: the caller logs the outcome itself (gunicorn's access line carries it).
    ``direct`` (a host whose OUTPUT_DIR is not durable): the run must reach PostgreSQL itself,
    else NotDurable (503 with Retry-After), because a spooled copy would vanish with the container.
    """
    command = CreateRun(request)
    if direct is None:
        created = store.apply(command)
    else:
        try:
            created = direct.apply_to_database(command)
        except StoreError as exc:
            log.warning("run_refused_not_durable", run_id=request.run_id, code=exc.code, reason=str(exc))
            raise NotDurable("the database cannot record the run right now, and this service keeps no durable "
                             "copy (OUTPUT_DIR is not on a volume): nothing was recorded; retry later",
                             retry_after_s=RETRY_AFTER_S) from exc
    if announce:
        log.info("run_accepted" if created else "run_repeated", run_id=request.run_id,
                 company_id=request.company_id)
    try:
        launcher.notify(request.run_id)
    except (RunnerError, OSError) as exc:
        log.error("run_launch_deferred", run_id=request.run_id, error=type(exc).__name__, reason=str(exc))
    return created


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _stage_status(state: RunState, number: int, stage: StageState) -> str:
    """'completed', 'failed', 'running' or 'pending', from the run's status and its finished stages."""
    if stage.status == "completed":
        return "completed"
    if state.status is RunStatus.FAILED and state.error is not None and state.error.stage == number:
        return "failed"
    if number == running_stage(state.status, state.completed_stages):
        return "running"
    return "pending"


def run_status(store: RunStore, run_id: str) -> dict[str, Any]:
    """The contract §5 status body of ``run_id`` with §10's progress and usage; NotFound when unknown.

    ``current_stage`` is the stage running now (None unless PROCESSING); ``last_completed_stage``
    keeps the meaning current_stage had before (the last stage finished).
    """
    read = store.read_run(run_id)  # the state and where it came from, in one answer (no shared field)
    state = read.state
    if state is None:
        raise NotFound(f"no run {run_id!r}: check the run id", code="RUN_NOT_FOUND")
    stages = {}
    for number in STAGE_NUMBERS:
        stage = state.stages.get(number, StageState("pending"))
        stages[str(number)] = {"status": _stage_status(state, number, stage),
                               "completed_at": _iso(stage.completed_at)}
    return {
        "run_id": state.run_id,
        "status": str(state.status),
        "current_stage": running_stage(state.status, state.completed_stages),
        "last_completed_stage": max(state.completed_stages, default=None),
        "progress": progress(state.status, state.completed_stages),
        "stages": stages,
        "error": public_error(state.error),
        "source": read.source,
        "usage": _usage(state),
    }


def _usage(state: RunState) -> dict[str, Any] | None:
    """Contract §10: the run's LLM calls, tokens and cost so far; None without an LLM."""
    total = state.usage.total() if state.usage else None
    if total is None:
        return None
    return {key: total[key] for key in ("calls", "prompt_tokens", "completion_tokens", "cost_usd")}


# Versions before issue 11 appended a dead run's last JSON log lines to its error message.
_LEGACY_LOG_TAIL = "; last log lines:"


def public_error(error: RunErrorInfo | None) -> dict[str, Any] | None:
    """A run's error as the status API shows it: never internal log lines, even in old rows."""
    if error is None:
        return None
    shown = error.as_dict()
    shown["message"] = error.message.split(_LEGACY_LOG_TAIL, 1)[0]
    return shown
