"""The records a store keeps about a run: plain frozen values, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

STAGE_NUMBERS = (1, 2, 3, 4, 5)
STAGE_NAMES = {
    1: "input processing",
    2: "signal amplification",
    3: "general translation",
    4: "brand contextualization",
    5: "opportunity generation",
}
# Contract §7: where each stage's output lives under OUTPUT_DIR/<run_id>/.
STAGE_FILES = {
    1: "stage1/inspirations.json",
    2: "stage2/signals.json",
    3: "stage3/insights.json",
    4: "stage4/brand-context.json",
    5: "stage5/opportunities.json",
}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class RunStatus(StrEnum):
    """Run status values of contract §5."""

    QUEUED = "QUEUED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        """True for the statuses a run never leaves."""
        return self in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


@dataclass(frozen=True)
class RunRequest:
    """What was asked: the document, the brand and who asked. Identical requests are one run."""

    run_id: str
    company_id: str
    user_id: str
    document_url: str

    def as_dict(self) -> dict[str, str]:
        """The request as the JSON the webhook carries (with document_url for blob_url)."""
        return {"run_id": self.run_id, "company_id": self.company_id,
                "user_id": self.user_id, "document_url": self.document_url}


@dataclass(frozen=True)
class RunErrorInfo:
    """Why a run failed: the stage (1-5), a stable code and a human message."""

    stage: int | None
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        """The error as contract §5 shows it."""
        return {"stage": self.stage, "code": self.code, "message": self.message}


@dataclass(frozen=True)
class StageResult:
    """One finished stage: its JSON output and when it ran."""

    stage: int
    output: Mapping[str, Any]
    started_at: datetime
    completed_at: datetime

    @property
    def duration_ms(self) -> int:
        """Wall time of the stage in whole milliseconds."""
        return int((self.completed_at - self.started_at).total_seconds() * 1000)


@dataclass(frozen=True)
class OpportunityCard:
    """One of the five opportunity cards, as stored in "OpportunityCard"."""

    number: int
    title: str
    content: str


@dataclass(frozen=True)
class FinalReport:
    """The run's end product: the markdown report and its five cards."""

    markdown: str
    cards: tuple[OpportunityCard, ...]


USAGE_KEYS = ("calls", "prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd")


@dataclass(frozen=True)
class RunUsage:
    """Which engine and model wrote a run, and (LLM only) what its calls cost, per stage and in total.

    A whole snapshot over every attempt so far: recording it twice changes nothing. ``stages`` is
    None for an engine without calls (offline); ``cached_stages`` were reused from the stage cache.
    """

    engine: str
    model: str | None = None
    stages: Mapping[int, Mapping[str, Any]] | None = None
    cached_stages: tuple[int, ...] = ()

    def total(self) -> dict[str, Any] | None:
        """Calls, tokens and cost summed over the stages (None without an LLM)."""
        if self.stages is None:
            return None
        total: dict[str, Any] = {key: 0 for key in USAGE_KEYS}
        for usage in self.stages.values():
            for key in USAGE_KEYS:
                total[key] += usage.get(key, 0) or 0
        total["cost_usd"] = round(float(total["cost_usd"]), 8)
        return total

    def as_dict(self) -> dict[str, Any]:
        """run.json's "engine", "model", "usage" (per stage and total) and "cache"."""
        usage = None if self.stages is None else {
            "stages": {str(n): dict(u) for n, u in sorted(self.stages.items())}, "total": self.total()}
        return {"engine": self.engine, "model": self.model, "usage": usage,
                "cache": {"stages": list(self.cached_stages)} if self.stages is not None else None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunUsage | None:
        """The inverse of :meth:`as_dict`; None when ``data`` names no engine."""
        engine = data.get("engine")
        if not isinstance(engine, str):
            return None
        usage = data.get("usage")
        stages = {int(n): dict(u) for n, u in usage["stages"].items()} if isinstance(usage, Mapping) else None
        cache = data.get("cache")
        cached = tuple(int(n) for n in cache.get("stages", ())) if isinstance(cache, Mapping) else ()
        return cls(engine, data.get("model"), stages, cached)


@dataclass(frozen=True)
class StageState:
    """What the store knows of one stage of a run."""

    status: str  # "pending" | "completed"
    completed_at: datetime | None = None
    duration_ms: int | None = None


@dataclass(frozen=True)
class RunState:
    """What the store knows of a run, as the status API shows it."""

    request: RunRequest
    status: RunStatus
    attempt: int
    current_stage: int | None
    stages: Mapping[int, StageState]
    error: RunErrorInfo | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    usage: RunUsage | None = None  # engine, model and LLM cost (RecordUsage); None before a run starts

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self.request.run_id

    @property
    def completed_stages(self) -> tuple[int, ...]:
        """Numbers of the stages already finished, in order."""
        return tuple(n for n in STAGE_NUMBERS if self.stages.get(n, StageState("pending")).status == "completed")


@dataclass(frozen=True)
class RunSnapshot:
    """Everything the record holds about a run, to bring a file mirror up to date with it."""

    state: RunState
    outputs: Mapping[int, Mapping[str, Any]]
    report_markdown: str | None
