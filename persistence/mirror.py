"""The DUAL_WRITE file mirror: best effort after the record, its own breaker, healed from the record.

In DUAL_WRITE the database plus the spool is the record of a run; the files under OUTPUT_DIR are
a mirror of it. A mirror write comes after the record's and never fails a run: a full or broken
disk opens the mirror's breaker (writes are skipped for a while instead of failing one by one),
and the runs it missed are healed later from the record, by every resume and by replay.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from config.errors import RunnerError
from config.log import get_logger
from persistence import atomic
from persistence.commands import Command
from persistence.errors import is_disk_full
from persistence.files import FileStore
from persistence.ports import SourcedRun
from persistence.records import RunSnapshot, utcnow

log = get_logger(__name__)

LOOKBACK = timedelta(hours=1)  # how far back the first heal of a process looks without a watermark
OVERLAP = timedelta(seconds=60)  # a transaction's updatedAt is its start: look a little behind the mark


@dataclass
class MirrorBreaker:
    """In-process breaker of the mirror: after a failure, skip the mirror for ``break_s`` seconds."""

    break_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    open_until: float = 0.0
    reason: str = ""

    def allows(self) -> bool:
        """True when a mirror write should be tried (closed, or the break is over: a probe)."""
        return self.clock() >= self.open_until

    def failed(self, reason: str) -> None:
        """Open for a break; the next write after it probes."""
        if self.allows():
            log.warning("mirror_breaker_opened", reason=reason, break_s=self.break_s)
        self.open_until = self.clock() + self.break_s
        self.reason = reason

    def succeeded(self) -> None:
        """Close (a write went through)."""
        if self.open_until:
            log.info("mirror_breaker_closed", reason="a mirror write went through")
        self.open_until = 0.0
        self.reason = ""


class FileMirror:
    """A FileStore used as the mirror: writes and reads never raise, misses are remembered and healed."""

    def __init__(self, files: FileStore, watermark_path: Path, breaker: MirrorBreaker | None = None) -> None:
        self.files = files
        self.watermark_path = watermark_path
        self.breaker = breaker or MirrorBreaker()
        self.behind: set[str] = set()  # runs whose mirror missed a write in this process

    def _failed(self, run_id: str, action: str, exc: BaseException) -> None:
        self.behind.add(run_id)
        if isinstance(exc, OSError):
            self.breaker.failed(f"{action}: {'disk full' if is_disk_full(exc) else type(exc).__name__}: {exc}")
        log.warning("mirror_behind", run_id=run_id, action=action, error=type(exc).__name__, reason=str(exc),
                    heal="the next resume or replay brings the files in line with the record")

    def apply(self, command: Command) -> None:
        """Mirror one command the record already holds; a miss is logged and healed later."""
        if not self.breaker.allows():
            self.behind.add(command.run_id)
            return
        try:
            self.files.apply(command)
        except (OSError, RunnerError) as exc:
            self._failed(command.run_id, command.kind, exc)
            return
        self.breaker.succeeded()

    def read_run(self, run_id: str) -> SourcedRun | None:
        """The mirror's view of the run, or None when it cannot be read."""
        try:
            return self.files.read_run(run_id)
        except (OSError, ValueError) as exc:
            log.warning("mirror_unreadable", run_id=run_id, error=type(exc).__name__, reason=str(exc))
            return None

    def outputs(self, run_id: str) -> dict[int, Mapping[str, Any]]:
        """The mirror's stage outputs ({} when they cannot be read)."""
        try:
            return self.files.load_stage_outputs(run_id)
        except (OSError, ValueError) as exc:
            log.warning("mirror_unreadable", run_id=run_id, error=type(exc).__name__, reason=str(exc))
            return {}

    def heal(self, snapshot: RunSnapshot) -> bool:
        """Bring the run's files in line with ``snapshot``; False if the disk refused (kept as behind)."""
        run_id = snapshot.state.run_id
        try:
            if self.files.heal(snapshot):
                log.info("mirror_healed", run_id=run_id, status=str(snapshot.state.status),
                         stages=sorted(snapshot.outputs))
        except (OSError, RunnerError) as exc:
            self._failed(run_id, "heal", exc)
            return False
        self.behind.discard(run_id)
        self.breaker.succeeded()
        return True

    def watermark(self) -> datetime:
        """From when on the record's changes must still be mirrored (minus an overlap)."""
        try:
            return datetime.fromisoformat(self.watermark_path.read_text().strip()) - OVERLAP
        except (OSError, ValueError):
            return utcnow() - LOOKBACK

    def advance(self, moment: datetime) -> None:
        """Everything changed before ``moment`` is mirrored; a failed write only repeats some work."""
        try:
            atomic.write_bytes(self.watermark_path, moment.isoformat().encode())
        except OSError as exc:
            log.warning("mirror_watermark_unwritable", error=type(exc).__name__, reason=str(exc))
