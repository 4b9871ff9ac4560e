"""FileRunQuery: the RunQuery over OUTPUT_DIR/<run_id>/ (run.json, stage files, report.md).

Listing reads every run.json: fine for the volumes one host's disk holds; DATABASE_ONLY and
DUAL_WRITE list from PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from config.paths import RUN_ID_PATTERN, check_run_id, inside
from persistence.query.ports import (
    DURATION_BUCKETS,
    USAGE_KEYS,
    Histogram,
    RunFilter,
    RunPage,
    RunStats,
    RunSummary,
    StageTiming,
    encode_cursor,
    normalise_usage,
)
from persistence.records import STAGE_FILES, STAGE_NUMBERS, RunStatus

RUN_FILE = "run.json"
REPORT_FILE = "report.md"


def _parse(moment: str | None) -> datetime | None:
    return datetime.fromisoformat(moment) if moment else None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def summary_of(doc: Mapping[str, Any], *, with_stages: bool = False) -> RunSummary:
    """A RunSummary from a run.json document."""
    request = doc["request"]
    stages = doc.get("stages") or {}
    done = tuple(n for n in STAGE_NUMBERS if (stages.get(str(n)) or {}).get("status") == "completed")
    timings = tuple(
        StageTiming(n, _parse(stages[str(n)].get("started_at")), _parse(stages[str(n)].get("completed_at")),
                    stages[str(n)].get("duration_ms"))
        for n in done) if with_stages else ()
    return RunSummary(
        run_id=doc["run_id"], status=RunStatus(doc["status"]), company_id=request["company_id"],
        user_id=request["user_id"], document_url=request["document_url"], attempt=doc["attempt"],
        completed_stages=done, error=doc.get("error"), created_at=_parse(doc["created_at"]),  # type: ignore[arg-type]
        updated_at=_parse(doc["updated_at"]), completed_at=_parse(doc.get("completed_at")),  # type: ignore[arg-type]
        usage=normalise_usage(doc.get("usage")), stages=timings,
        extra={"last_interruption": doc.get("last_interruption")} if with_stages else {},
    )


def _matches(run: RunSummary, wanted: RunFilter) -> bool:
    return ((wanted.status is None or run.status is wanted.status)
            and (wanted.company_id is None or run.company_id == wanted.company_id)
            and (wanted.user_id is None or run.user_id == wanted.user_id)
            and (wanted.created_after is None or run.created_at >= wanted.created_after)
            and (wanted.created_before is None or run.created_at < wanted.created_before))


class FileRunQuery:
    """Reads runs from their folders under ``root`` (OUTPUT_DIR)."""

    name = "files"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _docs(self) -> Iterator[Mapping[str, Any]]:
        if not self.root.is_dir():
            return
        for folder in self.root.iterdir():
            # Only run ids: .spool, .queue, .state and strays are not runs.
            if RUN_ID_PATTERN.fullmatch(folder.name):
                doc = _read_json(folder / RUN_FILE)
                if isinstance(doc, Mapping) and "request" in doc:
                    yield doc

    def _folder(self, run_id: str) -> Path:
        return inside(self.root, check_run_id(run_id))

    def list_runs(self, wanted: RunFilter) -> RunPage:
        """Runs matching ``wanted``, newest first (created_at, then run id, descending)."""
        runs = sorted((summary_of(doc) for doc in self._docs()), key=lambda r: (r.created_at, r.run_id),
                      reverse=True)
        after = wanted.after()
        picked = [r for r in runs if _matches(r, wanted) and (after is None or (r.created_at, r.run_id) < after)]
        page = tuple(picked[:wanted.limit])
        more = len(picked) > wanted.limit
        return RunPage(page, encode_cursor(page[-1].created_at, page[-1].run_id) if more else None)

    def show_run(self, run_id: str) -> RunSummary | None:
        """The run with its stage timings, or None."""
        doc = _read_json(self._folder(run_id) / RUN_FILE)
        return None if doc is None else summary_of(doc, with_stages=True)

    def read_report(self, run_id: str) -> str | None:
        """report.md, or None before the run completed."""
        try:
            return (self._folder(run_id) / REPORT_FILE).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def read_stage(self, run_id: str, stage: int) -> Mapping[str, Any] | None:
        """The stage's file, or None before the stage finished."""
        found = _read_json(self._folder(run_id) / STAGE_FILES[stage])
        return found if isinstance(found, Mapping) else None

    def stats(self) -> RunStats:
        """Aggregates over every run.json."""
        by_status = {str(s): 0 for s in RunStatus}
        oldest: datetime | None = None
        durations: dict[int, list[float]] = {n: [] for n in STAGE_NUMBERS}
        attempts = 0
        usage = dict.fromkeys(USAGE_KEYS, 0.0)
        for doc in self._docs():
            by_status[doc["status"]] = by_status.get(doc["status"], 0) + 1
            attempts += int(doc.get("attempt") or 0)
            if doc["status"] == "QUEUED":
                created = _parse(doc["created_at"])
                oldest = created if oldest is None or (created and created < oldest) else oldest
            for number, stage in (doc.get("stages") or {}).items():
                if stage.get("duration_ms") is not None and int(number) in durations:
                    durations[int(number)].append(stage["duration_ms"] / 1000)
            for key, value in (normalise_usage(doc.get("usage")) or {}).items():
                usage[key] += float(value or 0)
        return RunStats(by_status, oldest, {n: histogram(v) for n, v in durations.items()}, attempts, usage)

    def close(self) -> None:
        """Nothing to release."""


def histogram(values: list[float]) -> Histogram:
    """Cumulative bucket counts of ``values`` over DURATION_BUCKETS (+Inf last)."""
    buckets = tuple(sum(1 for v in values if v <= bound) for bound in DURATION_BUCKETS) + (len(values),)
    return Histogram(buckets, float(sum(values)), len(values))
