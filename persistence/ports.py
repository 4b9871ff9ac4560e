"""The port every store implements: a handful of domain verbs over runs and their outputs.

``FileStore``, ``PostgresStore`` and ``ResilientStore`` implement it without inheriting. Writes
carry the run's ``attempt`` so a stale process (an attempt that was superseded) cannot
overwrite a newer one, and every write is idempotent: repeating it changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from persistence.records import FinalReport, RunErrorInfo, RunRequest, RunState, StageResult


class RunStore(Protocol):
    """Where run state, stage outputs and the report are kept."""

    name: str

    def create_run(self, request: RunRequest) -> bool:
        """Record ``request`` as QUEUED. True if new, False if this same request exists.

        Raises Conflict when the run id exists with another payload.
        """

    def get_run(self, run_id: str) -> RunState | None:
        """The run's state, or None when the store has never seen it."""

    def start_attempt(self, run_id: str, attempt: int) -> None:
        """Mark the run PROCESSING under ``attempt`` (fencing out older attempts)."""

    def save_stage(self, run_id: str, attempt: int, result: StageResult) -> None:
        """Persist one finished stage's output; repeating it is harmless."""

    def load_stage_outputs(self, run_id: str) -> dict[int, Mapping[str, Any]]:
        """Outputs of the stages already finished, by stage number (for resuming a run)."""

    def complete_run(self, run_id: str, attempt: int, report: FinalReport) -> None:
        """Store the report and cards and mark the run COMPLETED."""

    def fail_run(self, run_id: str, attempt: int, error: RunErrorInfo) -> None:
        """Mark the run FAILED with the stage, code and message of ``error``."""

    def close(self) -> None:
        """Release connections and handles."""
