"""RunStore verb arguments ↔ JSON, for the spool: RunRequest, StageResult, FinalReport, RunErrorInfo."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from persistence.records import FinalReport, OpportunityCard, RunErrorInfo, RunRequest, StageResult

# The RunStore writes, by name; reads are never spooled.
VERBS = ("create_run", "start_attempt", "save_stage", "complete_run", "fail_run")


def run_id_of(verb: str, args: Mapping[str, Any]) -> str:
    """The run a verb call is about."""
    return args["request"].run_id if verb == "create_run" else args["run_id"]


def encode_args(verb: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of one verb call as plain JSON values."""
    if verb == "create_run":
        return {"request": args["request"].as_dict()}
    out: dict[str, Any] = {"run_id": args["run_id"], "attempt": int(args["attempt"])}
    if verb == "save_stage":
        result: StageResult = args["result"]
        out["result"] = {"stage": result.stage, "output": dict(result.output),
                         "started_at": result.started_at.isoformat(),
                         "completed_at": result.completed_at.isoformat()}
    elif verb == "complete_run":
        report: FinalReport = args["report"]
        out["report"] = {"markdown": report.markdown,
                         "cards": [{"number": c.number, "title": c.title, "content": c.content}
                                   for c in report.cards]}
    elif verb == "fail_run":
        out["error"] = args["error"].as_dict()
    return out


def decode_args(verb: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of one verb call rebuilt from encode_args' JSON."""
    if verb == "create_run":
        return {"request": RunRequest(**data["request"])}
    out: dict[str, Any] = {"run_id": data["run_id"], "attempt": int(data["attempt"])}
    if verb == "save_stage":
        r = data["result"]
        out["result"] = StageResult(stage=int(r["stage"]), output=r["output"],
                                    started_at=datetime.fromisoformat(r["started_at"]),
                                    completed_at=datetime.fromisoformat(r["completed_at"]))
    elif verb == "complete_run":
        rep = data["report"]
        out["report"] = FinalReport(markdown=rep["markdown"],
                                    cards=tuple(OpportunityCard(**c) for c in rep["cards"]))
    elif verb == "fail_run":
        out["error"] = RunErrorInfo(**data["error"])
    elif verb != "start_attempt":
        raise ValueError(f"unknown store verb {verb!r}; known: {', '.join(VERBS)}")
    return out
