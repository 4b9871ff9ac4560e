"""What a run looks like once its spooled (not yet replayed) writes are applied on top.

Used for reads while the database is skipped or behind the spool, so a run resumed during an
outage still finds its finished stages. Pure functions of records: no database, no writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from persistence.records import RunState, RunStatus, StageState
from persistence.spool import SpoolRecord
from persistence.spool_codec import decode_args


def _readable(records: Iterable[SpoolRecord]) -> Iterator[tuple[SpoolRecord, dict[str, Any], dict[str, Any]]]:
    """Each record with its body and arguments, skipping those a concurrent replay just deleted.

    A record vanishes once the database committed it; the caller's database read may predate
    that commit, so the view can be a moment behind, never wrong and never a crash.
    """
    for record in records:
        try:
            body = record.body()
        except FileNotFoundError:
            continue
        yield record, body, decode_args(record.verb, body["args"])


def fold_run(state: RunState | None, records: Iterable[SpoolRecord]) -> RunState | None:
    """``state`` (None if unknown) with each record's write applied in order, fenced by attempt."""
    for record, body, args in _readable(records):
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
    for record, _, args in _readable(r for r in records if r.verb == "save_stage"):
        result = args["result"]
        merged[result.stage] = result.output
    return merged
