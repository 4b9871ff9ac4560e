"""What a run looks like once its spooled (not yet replayed) commands are applied on top.

Used for reads while the database is skipped or behind the spool, so a run resumed during an
outage still finds its finished stages. Pure functions of records: no database, no writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from persistence.commands import (
    CancelRun,
    ClaimRun,
    Command,
    CompleteRun,
    CreateRun,
    FailRun,
    RecordUsage,
    RetryRun,
    SaveStage,
    StartAttempt,
)
from persistence.records import RunState, RunStatus, StageState
from persistence.spool.journal import SpoolRecord, command_of


def _readable(records: Iterable[SpoolRecord]) -> Iterator[tuple[Command, datetime]]:
    """Each record's command and spool time, skipping those a concurrent replay just deleted.

    A record vanishes once the database committed it; the caller's database read may predate
    that commit, so the view can be a moment behind, never wrong and never a crash.
    """
    for record in records:
        try:
            body = record.body()
        except FileNotFoundError:
            continue
        yield command_of(body), datetime.fromtimestamp(body["spooled_at"], UTC)


def fold_run(state: RunState | None, records: Iterable[SpoolRecord]) -> RunState | None:
    """``state`` (None if unknown) with each record's command applied in order, fenced by attempt."""
    for command, at in _readable(records):
        if isinstance(command, CreateRun):
            if state is None:
                state = RunState(request=command.request, status=RunStatus.QUEUED, attempt=0,
                                 current_stage=None, stages={}, error=None, created_at=at, updated_at=at)
            continue
        if state is None or (command.attempt < state.attempt and not isinstance(command, CancelRun)):
            continue  # unknown run, or a write the database would refuse as superseded (a cancel never is)
        state = apply_to_state(state, command, at)
    return state


def apply_to_state(state: RunState, command: Command, at: datetime) -> RunState:
    """The run's state after ``command`` (the database's rules, without a database)."""
    match command:
        case StartAttempt(attempt=attempt):
            return replace(state, status=RunStatus.PROCESSING, attempt=attempt, error=None, updated_at=at)
        case SaveStage(attempt=attempt, result=result):
            stages = {**state.stages, result.stage: StageState("completed", result.completed_at, result.duration_ms)}
            return replace(state, attempt=attempt, stages=stages, current_stage=result.stage, updated_at=at)
        case CompleteRun(attempt=attempt):
            return replace(state, attempt=attempt, status=RunStatus.COMPLETED, error=None, updated_at=at,
                           completed_at=state.completed_at or at)
        case FailRun(attempt=attempt, error=error):
            return replace(state, attempt=attempt, status=RunStatus.FAILED, error=error, updated_at=at,
                           completed_at=at)
        case CancelRun(attempt=attempt) if state.status in (RunStatus.QUEUED, RunStatus.PROCESSING):
            return replace(state, attempt=max(state.attempt, attempt) + 1, status=RunStatus.CANCELLED,
                           error=command.error, updated_at=at, completed_at=at)
        case RetryRun(attempt=attempt) if state.status is RunStatus.FAILED and state.attempt == attempt:
            return replace(state, status=RunStatus.QUEUED, error=None, updated_at=at, completed_at=None)
        case ClaimRun(attempt=attempt):
            return replace(state, status=RunStatus.PROCESSING, attempt=attempt, error=None, updated_at=at)
        case RecordUsage(usage=usage):
            return replace(state, usage=usage, updated_at=at)
    return state


def fold_outputs(outputs: Mapping[int, Mapping[str, Any]],
                 records: Iterable[SpoolRecord]) -> dict[int, Mapping[str, Any]]:
    """Stage outputs by number, with the spooled SaveStage commands laid over ``outputs``."""
    merged = dict(outputs)
    for command, _ in _readable(r for r in records if r.kind == SaveStage.kind):
        if isinstance(command, SaveStage):
            merged[command.result.stage] = command.result.output
    return merged
