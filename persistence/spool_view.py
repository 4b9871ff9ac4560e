"""What a run looks like once its spooled (not yet replayed) writes are applied on top.

Used for reads while the database is skipped or behind the spool, so a run resumed during an
outage still finds its finished stages. Pure functions of records: no database, no writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from persistence.records import RunState, RunStatus, StageState
from persistence.spool import SpoolRecord


def fold_run(state: RunState | None, records: Iterable[SpoolRecord]) -> RunState | None:
    """``state`` (None if unknown) with each record's write applied in order, fenced by attempt."""
    for record in records:
        body = record.body()
        args = record.args()
        at = datetime.fromtimestamp(body["spooled_at"], timezone.utc)
        if record.verb == "create_run":
            if state is None:
                state = RunState(request=args["request"], status=RunStatus.QUEUED, attempt=0,
                                 current_stage=None, stages={}, error=None, created_at=at, updated_at=at)
            continue
        if state is None or args["attempt"] < state.attempt:
            continue  # unknown run, or a write the database would refuse as superseded
        state = _apply(state, record.verb, args, at)
    return state


def _apply(state: RunState, verb: str, args: Mapping[str, Any], at: datetime) -> RunState:
    attempt = args["attempt"]
    if verb == "start_attempt":
        return replace(state, status=RunStatus.PROCESSING, attempt=attempt, error=None, updated_at=at)
    if verb == "save_stage":
        result = args["result"]
        stages = {**state.stages, result.stage: StageState("completed", result.completed_at, result.duration_ms)}
        return replace(state, attempt=attempt, stages=stages, current_stage=result.stage, updated_at=at)
    if verb == "complete_run":
        return replace(state, attempt=attempt, status=RunStatus.COMPLETED, error=None, updated_at=at,
                       completed_at=state.completed_at or at)
    if verb == "fail_run":
        return replace(state, attempt=attempt, status=RunStatus.FAILED, error=args["error"],
                       updated_at=at, completed_at=at)
    return state


def fold_outputs(outputs: Mapping[int, Mapping[str, Any]], records: Iterable[SpoolRecord]) -> dict[int, Mapping[str, Any]]:
    """Stage outputs by number, with the spooled save_stage records laid over ``outputs``."""
    merged = dict(outputs)
    for record in records:
        if record.verb == "save_stage":
            result = record.args()["result"]
            merged[result.stage] = result.output
    return merged
