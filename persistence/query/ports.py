"""The read capability: ``RunQuery``, declared as a Protocol, and the plain records it returns."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from config.errors import InvalidInput
from persistence.records import STAGE_NUMBERS, RunStatus

MAX_PAGE = 100
# Stage-duration histogram buckets, in seconds (offline stages take milliseconds, LLM ones minutes).
DURATION_BUCKETS = (0.05, 0.25, 1.0, 5.0, 15.0, 60.0, 180.0, 600.0)
USAGE_KEYS = ("calls", "prompt_tokens", "completion_tokens", "cost_usd")


@dataclass(frozen=True)
class RunFilter:
    """Which runs to list: every field optional; newest first, ``limit`` per page."""

    status: RunStatus | None = None
    company_id: str | None = None
    user_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    limit: int = 20
    cursor: str | None = None

    def after(self) -> tuple[datetime, str] | None:
        """The (created_at, run_id) the page starts after, decoded from ``cursor``."""
        return decode_cursor(self.cursor) if self.cursor else None


@dataclass(frozen=True)
class StageTiming:
    """When one finished stage ran."""

    stage: int
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None


@dataclass(frozen=True)
class RunSummary:
    """One run as a list shows it, and (with ``stages``) as ``show`` does."""

    run_id: str
    status: RunStatus
    company_id: str
    user_id: str
    document_url: str
    attempt: int
    completed_stages: tuple[int, ...]
    error: Mapping[str, Any] | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    usage: Mapping[str, Any] | None = None
    stages: tuple[StageTiming, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def current_stage(self) -> int | None:
        """The stage running now: the first unfinished one of a PROCESSING run, else None."""
        return running_stage(self.status, self.completed_stages)

    @property
    def progress(self) -> float:
        """The fraction of the five stages finished (1.0 once COMPLETED)."""
        return progress(self.status, self.completed_stages)

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``GET /api/runs`` items and ``python -m handlers.runs show``."""
        body: dict[str, Any] = {
            "run_id": self.run_id, "status": str(self.status), "company_id": self.company_id,
            "user_id": self.user_id, "document_url": self.document_url, "attempt": self.attempt,
            "current_stage": self.current_stage, "progress": self.progress,
            "error": dict(self.error) if self.error else None,
            "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
            "completed_at": self.completed_at.isoformat() if self.completed_at else None,
            "usage": dict(self.usage) if self.usage else None,
        }
        if self.stages:
            body["stages"] = [{"stage": t.stage,
                               "started_at": t.started_at.isoformat() if t.started_at else None,
                               "completed_at": t.completed_at.isoformat() if t.completed_at else None,
                               "duration_ms": t.duration_ms} for t in self.stages]
        body.update(self.extra)
        return body


@dataclass(frozen=True)
class RunPage:
    """One page of runs, newest first; ``next_cursor`` is None on the last page."""

    runs: tuple[RunSummary, ...]
    next_cursor: str | None


@dataclass(frozen=True)
class Histogram:
    """Cumulative bucket counts (one per bound in DURATION_BUCKETS, then +Inf), sum and count."""

    buckets: tuple[int, ...]
    total: float
    count: int


@dataclass(frozen=True)
class RunStats:
    """Aggregates over every stored run, for /metrics and the dashboard panel."""

    by_status: Mapping[str, int]
    oldest_queued_at: datetime | None
    stage_durations: Mapping[int, Histogram]
    attempts: int
    usage: Mapping[str, float]


class RunQuery(Protocol):
    """Reads of runs and their results; each store mode provides one (see factory.build_query)."""

    name: str

    def list_runs(self, wanted: RunFilter) -> RunPage:
        """Runs matching ``wanted``, newest first."""

    def show_run(self, run_id: str) -> RunSummary | None:
        """The run with its stage timings, or None when unknown."""

    def read_report(self, run_id: str) -> str | None:
        """The run's report markdown, or None when there is none (yet)."""

    def read_stage(self, run_id: str, stage: int) -> Mapping[str, Any] | None:
        """A finished stage's output, or None when the stage has not finished."""

    def stats(self) -> RunStats:
        """Counts and histograms over every run."""

    def close(self) -> None:
        """Release connections."""


def running_stage(status: RunStatus, done: tuple[int, ...]) -> int | None:
    """The stage in progress: the first unfinished stage of a PROCESSING run, else None."""
    if status is not RunStatus.PROCESSING:
        return None
    return next((n for n in STAGE_NUMBERS if n not in done), None)


def progress(status: RunStatus, done: tuple[int, ...]) -> float:
    """Finished stages over five; a COMPLETED run is 1.0 whatever was reused."""
    return 1.0 if status is RunStatus.COMPLETED else round(len(done) / len(STAGE_NUMBERS), 2)


def normalise_usage(raw: Any) -> dict[str, Any] | None:
    """Contract §10 usage (calls, tokens, cost) from run.json's or the row's usage, else None.

    Issue 9 records usage "per stage and total": the ``total`` part is used when present.
    """
    if not isinstance(raw, Mapping):
        return None
    total = raw.get("total", raw)
    if not isinstance(total, Mapping) or not any(key in total for key in USAGE_KEYS):
        return None
    return {key: total.get(key) for key in USAGE_KEYS}


def encode_cursor(created_at: datetime, run_id: str) -> str:
    """An opaque cursor naming the last run of a page."""
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{run_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, run_id) in ``cursor``; InvalidInput when it is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, _, run_id = text.partition("|")
        parsed = datetime.fromisoformat(moment)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput("cursor is not valid: pass back the next_cursor of the previous page",
                           code="INVALID_CURSOR") from exc
    if not run_id or parsed.tzinfo is None:
        raise InvalidInput("cursor is not valid: pass back the next_cursor of the previous page",
                           code="INVALID_CURSOR")
    return parsed, run_id
