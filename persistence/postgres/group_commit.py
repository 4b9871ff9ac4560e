"""Group commit: calls that arrive together share one database statement.

Under a burst of webhooks every web thread used to send its own ``INSERT … ON CONFLICT …
RETURNING``: a pool checkout, a round trip, a commit (a WAL flush) and psycopg's per-statement
Python each time, all on the two cores the web workers need. ``GroupCommit`` lets the first
caller lead: it takes every call waiting at that moment and runs them as one batch; calls that
arrive meanwhile queue, and when the batch is done the first of them leads the next one.

There is no timer and no thread of its own: a caller that finds nobody at the database goes at
once, alone, and a batch is whatever queued while the one before it was at the database. A
caller never waits on anything but a batch in flight, whose statement is bounded by the store's
deadline (the watchdog cuts it), so a caller waits at most two deadlines.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from config.errors import StoreUnavailable

T = TypeVar("T")
R = TypeVar("R")

# The batch a leader takes at most; the rest wait for the next one (a statement stays small).
MAX_BATCH = 64


class _Call(Generic[T, R]):
    """One caller's item, its outcome, and the lock it sleeps on until a leader settles it."""

    __slots__ = ("item", "lead", "outcome", "wake")

    def __init__(self, item: T) -> None:
        self.item = item
        self.lead = False  # set by the previous leader: run the next batch instead of waiting
        self.outcome: R | BaseException | None = None
        # A plain lock taken now and released by whoever wakes this caller: the cheapest
        # one-shot handoff between threads (an Event is a Condition, several Python calls).
        self.wake = threading.Lock()
        self.wake.acquire()


class GroupCommit(Generic[T, R]):
    """Run concurrent calls in batches through ``run_batch``, one batch at a time.

    ``run_batch`` gets the items of a batch in arrival order and returns one outcome per item:
    a result, or the exception that item's caller should raise. If ``run_batch`` itself raises,
    every caller of the batch raises that error.
    """

    def __init__(self, run_batch: Callable[[Sequence[T]], Sequence[R | BaseException]], *,
                 max_batch: int = MAX_BATCH) -> None:
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Call[T, R]] = []
        self._busy = False  # a leader is running a batch; while False the queue is empty
        self.batches = 0  # batches run so far (what tests and benchmarks read)

    @property
    def waiting(self) -> int:
        """Calls queued for the next batch (not counting the one in flight)."""
        with self._lock:
            return len(self._queue)

    def submit(self, item: T) -> R:
        """Run ``item`` in the next batch and return its result (or raise its error)."""
        call: _Call[T, R] = _Call(item)
        with self._lock:
            self._queue.append(call)
            lead = not self._busy
            self._busy = True
        if not lead:
            call.wake.acquire()  # released by a leader: settled, or told to lead
            lead = call.lead
        if lead:
            self._lead()
        if isinstance(call.outcome, BaseException):
            raise call.outcome
        return call.outcome  # type: ignore[return-value]  # settled: a result of run_batch

    def _lead(self) -> None:
        """Take the queue (up to max_batch), run it, settle its callers, hand over to the next."""
        with self._lock:
            batch, self._queue = self._queue[:self._max_batch], self._queue[self._max_batch:]
        outcomes: list[R | BaseException] | None = None
        try:
            outcomes = _outcomes(self._run_batch, [call.item for call in batch])
        finally:
            # Even when the leader is interrupted (outcomes still None), every caller of the
            # batch is settled and woken and the next leader is chosen: nobody is left asleep.
            if outcomes is None:
                outcomes = [StoreUnavailable("the database write was interrupted before it finished: retry")
                            for _ in batch]
            with self._lock:
                self.batches += 1
                successor = self._queue[0] if self._queue else None
                if successor is None:
                    self._busy = False
                else:
                    successor.lead = True
            for call, outcome in zip(batch, outcomes, strict=True):
                call.outcome = outcome
                call.wake.release()  # the leader's own lock too: harmless, and no branch
            if successor is not None:
                successor.wake.release()


def _outcomes(run_batch: Callable[[Sequence[T]], Sequence[R | BaseException]],
              items: list[T]) -> list[R | BaseException]:
    """``run_batch(items)``, or its error once per item: the first keeps it, the others get copies."""
    try:
        outcomes = list(run_batch(items))
        if len(outcomes) != len(items):
            raise RuntimeError(f"run_batch returned {len(outcomes)} outcomes for {len(items)} items")
    except Exception as exc:  # noqa: BLE001 - not swallowed: every caller of the batch raises it
        return [exc, *(_copy_error(exc) for _ in items[1:])]
    return outcomes


def _copy_error(exc: Exception) -> Exception:
    """A copy of ``exc`` for another thread to raise (one object raised in several threads would
    collect all of their tracebacks), keeping its cause; ``exc`` itself if it cannot be copied."""
    try:
        clone = copy.copy(exc)
    except Exception:  # noqa: BLE001 - an exception type that cannot be rebuilt from its args
        return exc
    clone.__cause__, clone.__context__ = exc.__cause__, exc.__context__
    clone.__suppress_context__ = exc.__suppress_context__
    return clone.with_traceback(None)
