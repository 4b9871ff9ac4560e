"""Every write a store accepts, as one frozen dataclass per kind: the typed commands.

A command carries the run it is about (``run_id``), the attempt that makes it (``attempt``; 0 for
``CreateRun``) and its data, and round-trips through JSON (``to_json`` / ``command_from_json``),
which is what the spool keeps. Each store applies commands with one ``match``; nothing is ever
dispatched by a method name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from persistence.records import FinalReport, OpportunityCard, RunErrorInfo, RunRequest, RunUsage, StageResult


@dataclass(frozen=True)
class CreateRun:
    """Record a requested run as QUEUED (idempotent for the same request, Conflict for another)."""

    request: RunRequest
    kind: ClassVar[str] = "create_run"

    @property
    def run_id(self) -> str:
        """The run the command is about."""
        return self.request.run_id

    @property
    def attempt(self) -> int:
        """A run is created before any attempt: always 0."""
        return 0

    def to_json(self) -> dict[str, Any]:
        """The command as plain JSON values."""
        return {"kind": self.kind, "request": self.request.as_dict()}


@dataclass(frozen=True)
class StartAttempt:
    """Mark the run PROCESSING under ``attempt`` (fencing out older attempts)."""

    run_id: str
    attempt: int
    kind: ClassVar[str] = "start_attempt"

    def to_json(self) -> dict[str, Any]:
        """The command as plain JSON values."""
        return {"kind": self.kind, "run_id": self.run_id, "attempt": self.attempt}


@dataclass(frozen=True)
class SaveStage:
    """Persist one finished stage's output; repeating it changes nothing."""

    run_id: str
    attempt: int
    result: StageResult
    kind: ClassVar[str] = "save_stage"

    def to_json(self) -> dict[str, Any]:
        """The command as plain JSON values."""
        result = self.result
        return {"kind": self.kind, "run_id": self.run_id, "attempt": self.attempt,
                "result": {"stage": result.stage, "output": dict(result.output),
                           "started_at": result.started_at.isoformat(),
                           "completed_at": result.completed_at.isoformat()}}


@dataclass(frozen=True)
class CompleteRun:
    """Store the report and its cards and mark the run COMPLETED."""

    run_id: str
    attempt: int
    report: FinalReport
    kind: ClassVar[str] = "complete_run"

    def to_json(self) -> dict[str, Any]:
        """The command as plain JSON values."""
        return {"kind": self.kind, "run_id": self.run_id, "attempt": self.attempt,
                "report": {"markdown": self.report.markdown,
                           "cards": [{"number": c.number, "title": c.title, "content": c.content}
                                     for c in self.report.cards]}}


@dataclass(frozen=True)
class FailRun:
    """Mark the run FAILED with the stage, code and message of ``error``."""

    run_id: str
    attempt: int
    error: RunErrorInfo
    kind: ClassVar[str] = "fail_run"

    def to_json(self) -> dict[str, Any]:
        """The command as plain JSON values."""
        return {"kind": self.kind, "run_id": self.run_id, "attempt": self.attempt, "error": self.error.as_dict()}


@dataclass(frozen=True)
class ClaimRun:
    """A claim the file mirror granted while the database could not answer (DUAL_WRITE), for the record.

    Replayed, it gives the database the attempt and its lease, so a run whose process then died
    is found by the reaper (a lapsed lease) instead of sitting in PROCESSING without one.
    """

    run_id: str
    attempt: int
    owner: str
    lease_expires_at: datetime
    kind: ClassVar[str] = "claim_run"

    def to_json(self) -> dict[str, Any]:
        """The command as plain JSON values."""
        return {"kind": self.kind, "run_id": self.run_id, "attempt": self.attempt, "owner": self.owner,
                "lease_expires_at": self.lease_expires_at.isoformat()}


@dataclass(frozen=True)
class RecordUsage:
    """Record which engine and model run the run and what its LLM calls cost so far (a whole snapshot)."""

    run_id: str
    attempt: int
    usage: RunUsage
    kind: ClassVar[str] = "record_usage"

    def to_json(self) -> dict[str, Any]:
        """The command as plain JSON values."""
        return {"kind": self.kind, "run_id": self.run_id, "attempt": self.attempt, "usage": self.usage.as_dict()}


@dataclass(frozen=True)
class CancelRun:
    """Stop a QUEUED or PROCESSING run for good: CANCELLED, finished stages kept.

    ``attempt`` is the attempt the operator saw; the run moves past it (and past any newer one)
    so every later write of a process still running it is refused as superseded. A run in any
    other status is left alone (applying returns False), so repeating the command is harmless.
    """

    run_id: str
    attempt: int
    stage: int | None  # the stage running when asked, for the run's error
    requested_by: str
    kind: ClassVar[str] = "cancel_run"

    @property
    def error(self) -> RunErrorInfo:
        """The run's error once cancelled (code CANCELLED, contract §10)."""
        return RunErrorInfo(self.stage, "CANCELLED", f"cancelled by {self.requested_by}")

    def to_json(self) -> dict[str, Any]:
        """The command as plain JSON values."""
        return {"kind": self.kind, "run_id": self.run_id, "attempt": self.attempt, "stage": self.stage,
                "requested_by": self.requested_by}


@dataclass(frozen=True)
class RetryRun:
    """Put a FAILED run back in the queue; its next attempt resumes after its last finished stage.

    Applies only while the run is still FAILED under ``attempt`` (returns False otherwise).
    """

    run_id: str
    attempt: int
    requested_by: str
    kind: ClassVar[str] = "retry_run"

    def to_json(self) -> dict[str, Any]:
        """The command as plain JSON values."""
        return {"kind": self.kind, "run_id": self.run_id, "attempt": self.attempt,
                "requested_by": self.requested_by}


Command = CreateRun | StartAttempt | SaveStage | CompleteRun | FailRun | ClaimRun | RecordUsage | CancelRun | RetryRun

KINDS = (CreateRun.kind, StartAttempt.kind, SaveStage.kind, CompleteRun.kind, FailRun.kind, ClaimRun.kind,
         RecordUsage.kind, CancelRun.kind, RetryRun.kind)


def command_from_json(data: Mapping[str, Any]) -> Command:
    """Rebuild a command from ``to_json``'s output; ValueError names what is wrong."""
    kind = data.get("kind")
    if kind == CreateRun.kind:
        return CreateRun(RunRequest(**data["request"]))
    run_id, attempt = str(data["run_id"]), int(data["attempt"])
    if kind == StartAttempt.kind:
        return StartAttempt(run_id, attempt)
    if kind == SaveStage.kind:
        r = data["result"]
        return SaveStage(run_id, attempt, StageResult(stage=int(r["stage"]), output=r["output"],
                                                      started_at=datetime.fromisoformat(r["started_at"]),
                                                      completed_at=datetime.fromisoformat(r["completed_at"])))
    if kind == CompleteRun.kind:
        rep = data["report"]
        return CompleteRun(run_id, attempt, FinalReport(markdown=rep["markdown"],
                                                        cards=tuple(OpportunityCard(**c) for c in rep["cards"])))
    if kind == FailRun.kind:
        return FailRun(run_id, attempt, RunErrorInfo(**data["error"]))
    if kind == ClaimRun.kind:
        return ClaimRun(run_id, attempt, str(data["owner"]), datetime.fromisoformat(data["lease_expires_at"]))
    if kind == RecordUsage.kind:
        usage = RunUsage.from_dict(data["usage"])
        if usage is None:
            raise ValueError("a record_usage command names no engine")
        return RecordUsage(run_id, attempt, usage)
    if kind == CancelRun.kind:
        stage = data.get("stage")
        return CancelRun(run_id, attempt, int(stage) if stage is not None else None, str(data["requested_by"]))
    if kind == RetryRun.kind:
        return RetryRun(run_id, attempt, str(data["requested_by"]))
    raise ValueError(f"unknown write command kind {kind!r}; known: {', '.join(KINDS)}")
