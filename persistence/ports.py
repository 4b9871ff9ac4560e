"""The ports of persistence: what a store does, and each optional capability, as declared Protocols.

``FileStore``, ``PostgresStore`` and ``ResilientStore`` implement them. Writes are typed commands
(``persistence.commands``) applied with ``apply``; the verb methods (``create_run``, ``save_stage``,
…) are a convenience that builds the command (``CommandVerbs``). Writes carry the run's
``attempt`` so a superseded process cannot overwrite a newer attempt, and every write is
idempotent: repeating it changes nothing.

Capabilities a caller needs beyond ``RunStore`` are asked for by type, never found by probing
attributes: ``RunQueue`` (claims and leases, persistence.queue), ``Replayable`` (a spool to drain),
``Pingable`` (a database to probe), ``ReplayTarget`` (what a spool replays into).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from persistence.commands import CompleteRun, CreateRun, FailRun, SaveStage, StartAttempt
from persistence.queue import RunQueue
from persistence.records import FinalReport, RunErrorInfo, RunRequest, RunSnapshot, RunState, StageResult

if TYPE_CHECKING:
    from persistence.commands import Command
    from persistence.spool.replay import ReplayReport

Source = Literal["database", "files"]


@dataclass(frozen=True)
class SourcedRun:
    """A run's state (None: unknown) and where it was read from, as the status API reports it."""

    state: RunState | None
    source: Source


class RunStore(Protocol):
    """Where run state, stage outputs and the report are kept."""

    name: str

    def apply(self, command: Command) -> bool:
        """Apply one write. True when it created something new (CreateRun of a new run), else False.

        Raises Conflict (CreateRun of an existing id with another payload) and Superseded (an
        older attempt, or a run this store never saw).
        """

    def read_run(self, run_id: str) -> SourcedRun:
        """The run's state together with where it came from."""

    def get_run(self, run_id: str) -> RunState | None:
        """The run's state, or None when the store has never seen it."""

    def load_stage_outputs(self, run_id: str) -> dict[int, Mapping[str, Any]]:
        """Outputs of the stages already finished, by stage number (for resuming a run)."""

    def create_run(self, request: RunRequest) -> bool:
        """``apply(CreateRun(request))``."""

    def start_attempt(self, run_id: str, attempt: int) -> None:
        """``apply(StartAttempt(...))``."""

    def save_stage(self, run_id: str, attempt: int, result: StageResult) -> None:
        """``apply(SaveStage(...))``."""

    def complete_run(self, run_id: str, attempt: int, report: FinalReport) -> None:
        """``apply(CompleteRun(...))``."""

    def fail_run(self, run_id: str, attempt: int, error: RunErrorInfo) -> None:
        """``apply(FailRun(...))``."""

    def close(self) -> None:
        """Release connections and handles."""


class QueuedStore(RunStore, RunQueue, Protocol):
    """A store that also claims runs: what the composition roots hand to the dispatcher and CLI."""


class Replayable(Protocol):
    """A store with a spool of writes the database has not confirmed yet."""

    def replay(self, batch_size: int = 100, max_records: int | None = None) -> ReplayReport:
        """Drain (at most ``max_records`` of) the spool into the database."""


class Pingable(Protocol):
    """A database a health check can probe."""

    def ping(self, timeout_s: float) -> None:
        """Round-trip the database within ``timeout_s`` or raise StoreError."""

    def schema_state(self) -> str:
        """'ok', 'behind', 'drift' or 'unknown'."""


class DirectWrite(Protocol):
    """A store that can write to its database alone, never to its spool.

    For intake on a host whose OUTPUT_DIR does not outlive the container (Settings.output_durable
    False): journalling an accepted run to such a disk would promise what a restart erases.
    """

    def apply_to_database(self, command: Command) -> bool:
        """Apply ``command`` in the database (breaker and retries), then the file mirror if any.

        Returns what ``apply`` returns. Raises StoreError when the database cannot take it now,
        and then nothing was kept anywhere; Conflict as ``apply`` does.
        """


class ReplayTarget(Protocol):
    """What a spool replays into: applies a batch of commands, one verdict per command."""

    def apply_batch(self, commands: Sequence[Command]) -> list[BaseException | None]:
        """Apply ``commands`` in order, committed together; a refused one does not undo the others.

        Returns None (applied) or the refusal per command. Raises StoreUnavailable or
        SchemaMismatch when the database, not a command, is the problem: then nothing committed.
        """


class Snapshots(Protocol):
    """A record a file mirror can be healed from."""

    def updated_since(self, since: datetime) -> list[tuple[str, datetime]]:
        """(run id, last change) of every run changed at or after ``since``."""

    def snapshot(self, run_id: str) -> RunSnapshot | None:
        """Everything the record holds about one run."""


class CommandVerbs:
    """The verb methods of RunStore, each building its command and calling ``apply``."""

    def apply(self, command: Command) -> bool:
        """Implemented by each store."""
        raise NotImplementedError

    def read_run(self, run_id: str) -> SourcedRun:
        """Implemented by each store."""
        raise NotImplementedError

    def get_run(self, run_id: str) -> RunState | None:
        """The run's state, or None when the store has never seen it."""
        return self.read_run(run_id).state

    def create_run(self, request: RunRequest) -> bool:
        """Record ``request`` as QUEUED. True if new, False if this same request exists."""
        return self.apply(CreateRun(request))

    def start_attempt(self, run_id: str, attempt: int) -> None:
        """Mark the run PROCESSING under ``attempt``."""
        self.apply(StartAttempt(run_id, attempt))

    def save_stage(self, run_id: str, attempt: int, result: StageResult) -> None:
        """Persist one finished stage's output."""
        self.apply(SaveStage(run_id, attempt, result))

    def complete_run(self, run_id: str, attempt: int, report: FinalReport) -> None:
        """Store the report and cards and mark the run COMPLETED."""
        self.apply(CompleteRun(run_id, attempt, report))

    def fail_run(self, run_id: str, attempt: int, error: RunErrorInfo) -> None:
        """Mark the run FAILED."""
        self.apply(FailRun(run_id, attempt, error))


__all__ = ["CommandVerbs", "Pingable", "QueuedStore", "Replayable", "ReplayTarget", "RunQueue",
           "RunStore", "Snapshots", "Source", "SourcedRun"]
