"""Reads for operators and the frontend: list and show runs, and a run's report, cards and stages.

Each function takes a RunQuery (files, PostgreSQL or both, per mode) and returns the JSON body
the HTTP API and the CLI print. An unknown run is NotFound ``RUN_NOT_FOUND``; a known run whose
result does not exist yet is NotFound ``RESULT_NOT_READY`` with its status in the message.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from config.errors import InvalidInput, NotFound
from config.paths import check_run_id
from handlers.payload import InvalidPayload
from persistence.query.ports import MAX_PAGE, RunFilter, RunQuery, RunSummary, decode_cursor
from persistence.records import STAGE_NAMES, STAGE_NUMBERS, RunStatus


class InvalidFilter(InvalidPayload):
    """Bad list filters; ``fields`` maps each to what it should be (400 with "fields")."""

    code = "INVALID_FILTER"

    def __init__(self, fields: Mapping[str, str]) -> None:
        super().__init__(fields)
        self.message = "invalid run filter: " + "; ".join(f"{k}: {v}" for k, v in self.fields.items())


FILTER_NAMES = ("status", "company_id", "user_id", "created_after", "created_before", "limit", "cursor")


def _moment(name: str, value: str | None, problems: dict[str, str]) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        problems[name] = "an ISO 8601 time with a timezone, e.g. 2026-12-01T08:00:00Z"
        return None
    return moment


def parse_filter(args: Mapping[str, str]) -> RunFilter:
    """A RunFilter from query parameters (or CLI options); InvalidInput names every bad one."""
    problems: dict[str, str] = {}
    unknown = sorted(set(args) - set(FILTER_NAMES))
    for name in unknown:
        problems[name] = f"unknown filter; use {', '.join(FILTER_NAMES)}"
    status = None
    if args.get("status"):
        try:
            status = RunStatus(args["status"].upper())
        except ValueError:
            problems["status"] = f"one of {', '.join(RunStatus)}"
    limit = 20
    if args.get("limit"):
        raw = args["limit"]
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
            problems["limit"] = f"a whole number from 1 to {MAX_PAGE}"
        else:
            limit = int(raw)
    after = _moment("created_after", args.get("created_after"), problems)
    before = _moment("created_before", args.get("created_before"), problems)
    cursor = args.get("cursor") or None
    if cursor:
        try:
            decode_cursor(cursor)
        except InvalidInput:
            problems["cursor"] = "pass back the next_cursor of the previous page unchanged"
    if problems:
        raise InvalidFilter(problems)
    return RunFilter(status=status, company_id=args.get("company_id") or None, user_id=args.get("user_id") or None,
                     created_after=after, created_before=before, limit=limit, cursor=cursor)


def list_runs(query: RunQuery, wanted: RunFilter) -> dict[str, Any]:
    """``{"runs": [...], "next_cursor"}``, newest first."""
    page = query.list_runs(wanted)
    return {"runs": [run.as_dict() for run in page.runs], "next_cursor": page.next_cursor, "source": query.name}


def find_run(query: RunQuery, run_id: str) -> RunSummary:
    """The run with its stage timings; NotFound when no store knows it."""
    run = query.show_run(check_run_id(run_id))
    if run is None:
        raise NotFound(f"no run {run_id!r}: check the run id", code="RUN_NOT_FOUND")
    return run


def show_run(query: RunQuery, run_id: str) -> dict[str, Any]:
    """A run: status, attempts, per-stage timings, error and LLM usage where recorded."""
    body = find_run(query, run_id).as_dict()
    body["source"] = query.name
    return body


def _not_ready(query: RunQuery, run_id: str, what: str) -> NotFound:
    run = find_run(query, run_id)
    return NotFound(f"run {run_id} is {run.status}: {what} does not exist yet", code="RESULT_NOT_READY")


def read_report(query: RunQuery, run_id: str) -> str:
    """The report markdown of a COMPLETED run."""
    report = query.read_report(check_run_id(run_id))
    if report is None:
        raise _not_ready(query, run_id, "its report")
    return report


def read_opportunities(query: RunQuery, run_id: str) -> dict[str, Any]:
    """``{"run_id", "opportunities": [5 cards]}`` from stage 5's output."""
    output = query.read_stage(check_run_id(run_id), 5)
    if output is None:
        raise _not_ready(query, run_id, "its opportunities (stage 5)")
    return {"run_id": run_id, "opportunities": list(output.get("opportunities", []))}


def read_stage(query: RunQuery, run_id: str, stage: int) -> dict[str, Any]:
    """``{"run_id", "stage", "name", "output"}`` of a finished stage."""
    if stage not in STAGE_NUMBERS:
        raise InvalidInput(f"stage {stage} does not exist: stages are 1 to 5", code="INVALID_STAGE")
    output = query.read_stage(check_run_id(run_id), stage)
    if output is None:
        raise _not_ready(query, run_id, f"stage {stage} ({STAGE_NAMES[stage]})")
    return {"run_id": run_id, "stage": stage, "name": STAGE_NAMES[stage], "output": dict(output)}
