"""Replaying the spool: pending commands go to a ReplayTarget in batches, in write order.

A batch is committed by the target as one transaction (each command a savepoint there), and its
records are deleted (or buried, for commands the database refuses for good) only after that
commit, so a crash or a lost connection before it re-applies them later, idempotently, and
never loses them. One replayer at a time per spool (a non-blocking flock); others back off.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from config.errors import RunnerError, SchemaMismatch, StoreUnavailable
from config.log import get_logger
from persistence.commands import Command
from persistence.ports import ReplayTarget
from persistence.spool.journal import Journal, SpoolRecord

log = get_logger(__name__)

REPLAY_LOCK = ".replay.lock"
# Errors that say "the database, not this record, is the problem": stop and keep the records.
STOPPING_ERRORS = (StoreUnavailable, SchemaMismatch)
# What an unreadable record raises: it will never apply, so it goes to dead/ at once.
UNREADABLE = (RunnerError, ValueError, KeyError, TypeError)


@dataclass(frozen=True)
class ReplayReport:
    """What one replay did. ``busy``: another replayer held the lock; ``stopped``: why it stopped early."""

    applied: int
    dead: int
    remaining: int
    seconds: float
    busy: bool = False
    stopped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The report as the cron job's JSON summary."""
        return {"applied": self.applied, "dead": self.dead, "remaining": self.remaining,
                "seconds": round(self.seconds, 3), "busy": self.busy, "stopped": self.stopped}


def _code(exc: BaseException) -> str:
    return exc.code if isinstance(exc, RunnerError) else type(exc).__name__


class Spool(Journal):
    """The spool: the journal of unconfirmed writes, and its replay."""

    def replay(
        self,
        target: ReplayTarget,
        batch_size: int = 100,
        *,
        run_id: str | None = None,
        max_records: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> ReplayReport:
        """Apply pending records to ``target`` in order, in batches; stop at the first outage."""
        started = clock()
        with self._flock(REPLAY_LOCK, blocking=False) as locked:
            if not locked:
                log.info("spool_replay_busy", reason="another process is replaying")
                return ReplayReport(0, 0, self.count(), clock() - started, busy=True)
            # A run-scoped drain also cleans up a marker its records no longer back.
            touched: set[str] = {run_id} if run_id is not None else set()
            try:
                applied, dead, stopped = self._apply_pending(target, batch_size, run_id, max_records, touched)
            finally:
                if touched:
                    self._forget(touched)
        report = ReplayReport(applied, dead, self.count(), clock() - started, stopped=stopped)
        log.info("spool_replayed", **report.as_dict())
        return report

    def _apply_pending(self, target: ReplayTarget, batch_size: int, run_id: str | None,
                       max_records: int | None, touched: set[str]) -> tuple[int, int, str | None]:
        applied = dead = 0
        chunk: list[SpoolRecord] = []
        limited = False
        for record in self.pending(run_id):
            if max_records is not None and applied + dead + len(chunk) >= max_records:
                limited = True
                break
            touched.add(record.run_id)
            chunk.append(record)
            if len(chunk) >= batch_size:
                done, refused, stopped = self._apply_chunk(target, chunk)
                applied, dead, chunk = applied + done, dead + refused, []
                if stopped:
                    return applied, dead, stopped
        done, refused, stopped = self._apply_chunk(target, chunk) if chunk else (0, 0, None)
        return applied + done, dead + refused, stopped or ("max_records" if limited else None)

    def _apply_chunk(self, target: ReplayTarget, chunk: list[SpoolRecord]) -> tuple[int, int, str | None]:
        readable: list[tuple[SpoolRecord, Command]] = []
        dead = 0
        for record in chunk:
            try:
                readable.append((record, record.command()))
            except FileNotFoundError:
                continue  # removed under us (another replayer, an operator): nothing left to apply
            except UNREADABLE as exc:
                self.bury(record, exc)
                dead += 1
        if not readable:
            return 0, dead, None
        try:
            verdicts = target.apply_batch([command for _, command in readable])
        except STOPPING_ERRORS as exc:
            # The database is the problem, not the records: keep them, let the breaker decide.
            log.warning("spool_replay_stopped", run_id=readable[0][0].run_id, seq=readable[0][0].seq,
                        error=type(exc).__name__, reason=str(exc))
            return 0, dead, _code(exc)
        applied: list[SpoolRecord] = []
        for (record, _), verdict in zip(readable, verdicts, strict=True):
            if verdict is None:
                self.discard(record)
                applied.append(record)
            else:
                self.bury(record, verdict)
                dead += 1
        self._confirm(applied)
        return len(applied), dead, None

    def _confirm(self, batch: list[SpoolRecord]) -> None:
        """Make a batch's deletions durable with one folder fsync (a lost delete only re-applies)."""
        if batch:
            self._fsync_dir()
            log.debug("spool_batch_applied", records=len(batch), last_seq=batch[-1].seq)
