"""The checks of bench.chaos, after recovery: what the database, the files and the logs must show."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from persistence.records import STAGE_FILES


@dataclass
class Verdict:
    """Every problem found (empty: all checks hold) and what was compared."""

    problems: list[str] = field(default_factory=list)
    runs_completed: int = 0
    stages_compared: int = 0

    def as_dict(self, executions: Counter[tuple[str, int]], database_url: str) -> dict[str, Any]:
        """The checks' part of the summary, with the execution check applied against each run's attempts."""
        attempts = _attempts(database_url)
        for (run_id, stage), count in sorted(executions.items()):
            allowed = attempts.get(run_id, 0)
            if count > allowed:
                self.problems.append(f"{run_id}: stage {stage} ran {count} times but the run had {allowed} attempt(s)")
        return {"problems": self.problems, "runs_completed": self.runs_completed,
                "stages_compared": self.stages_compared, "max_attempts_seen": max(attempts.values(), default=0)}


def _attempts(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        return {r: a for r, a in conn.execute('SELECT id, attempt FROM "PipelineRun"').fetchall()}


def check_runs(database_url: str, output_dir: Path | None, run_ids: list[str]) -> Verdict:
    """Every run COMPLETED, five stage rows and five cards, and (with ``output_dir``) files = database."""
    verdict = Verdict()
    with psycopg.connect(database_url) as conn:
        runs = {row[0]: row for row in conn.execute(
            'SELECT id, status, "stage1Output", "stage2Output", "stage3Output", "stage4Output", '
            '"fullReportMarkdown" FROM "PipelineRun"').fetchall()}
        stages: dict[str, dict[int, Any]] = {}
        for run_id, number, output in conn.execute('SELECT "runId", "stageNumber", output FROM "StageOutput"'):
            if number in stages.setdefault(run_id, {}):
                verdict.problems.append(f"{run_id}: duplicate StageOutput row for stage {number}")
            stages[run_id][number] = output
        cards = Counter(r for r, in conn.execute('SELECT "runId" FROM "OpportunityCard"'))
    for run_id in run_ids:
        row = runs.get(run_id)
        if row is None:
            verdict.problems.append(f"{run_id}: not in the database")
            continue
        _, status, *columns, markdown = row
        if status != "COMPLETED":
            verdict.problems.append(f"{run_id}: {status}, not COMPLETED")
            continue
        verdict.runs_completed += 1
        outputs = stages.get(run_id, {})
        if sorted(outputs) != [1, 2, 3, 4, 5]:
            verdict.problems.append(f"{run_id}: StageOutput rows for stages {sorted(outputs)}")
        if cards[run_id] != 5:
            verdict.problems.append(f"{run_id}: {cards[run_id]} OpportunityCard rows, not 5")
        for number, column in enumerate(columns, start=1):
            if column != outputs.get(number):
                verdict.problems.append(f"{run_id}: stage{number}Output differs from its StageOutput row")
        if output_dir is not None:
            _compare_files(verdict, output_dir / run_id, run_id, outputs, markdown)
    return verdict


def _compare_files(verdict: Verdict, folder: Path, run_id: str, outputs: dict[int, Any], markdown: str) -> None:
    try:
        run = json.loads((folder / "run.json").read_text())
        if run["status"] != "COMPLETED":
            verdict.problems.append(f"{run_id}: run.json says {run['status']}, the database COMPLETED")
        for number, name in STAGE_FILES.items():
            verdict.stages_compared += 1
            if json.loads((folder / name).read_text()) != outputs.get(number):
                verdict.problems.append(f"{run_id}: {name} differs from the database")
        if (folder / "report.md").read_text() != markdown:
            verdict.problems.append(f"{run_id}: report.md differs from fullReportMarkdown")
    except (OSError, ValueError, KeyError) as exc:
        verdict.problems.append(f"{run_id}: files unreadable: {type(exc).__name__}: {exc}")


def stage_executions(log_paths: list[Path]) -> Counter[tuple[str, int]]:
    """How many times each (run, stage) started, from the JSON log lines of every web process."""
    seen: Counter[tuple[str, int]] = Counter()
    for path in log_paths:
        for line in path.read_text(errors="replace").splitlines():
            if '"stage_started"' not in line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("message", event.get("event")) == "stage_started" and "run_id" in event:
                seen[(str(event["run_id"]), int(event["stage"]))] += 1
    return seen
