"""Bounded retries of whole database verbs: tenacity with attempts AND total time, jittered waits.

Each attempt replays one complete store verb (one transaction), never one statement of a failed
transaction, which is safe because every store write is an idempotent, fenced upsert. Only errors
the predicate names as transient (``StoreUnavailable``) are retried; everything else (schema
mismatch, conflicts, fencing) is an answer, and asking again would not change it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import tenacity
from tenacity.stop import stop_base

from config.errors import StoreUnavailable
from config.log import get_logger

log = get_logger(__name__)

T = TypeVar("T")
Predicate = Callable[[BaseException], bool]


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one verb is retried before it is handed to the spool. Tests shrink it."""

    attempts: int = 3  # first try included
    total_seconds: float = 8.0  # attempts plus waits never start past this budget
    first_wait: float = 0.2  # the base of the exponential backoff, in seconds
    max_wait: float = 2.0
    jitter: float = 0.2  # up to this many seconds added at random to each wait


def is_transient(exc: BaseException) -> bool:
    """True for errors worth asking again: the database was unreachable, slow or cut off."""
    return isinstance(exc, StoreUnavailable)


class _StopAfterTotal(stop_base):
    """Stop when the next attempt would start past the budget (clock injectable for tests)."""

    def __init__(self, limit: float, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.clock = clock
        self.start = clock()

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return self.clock() - self.start + retry_state.upcoming_sleep >= self.limit


def _log_retry(verb: str) -> Callable[[tenacity.RetryCallState], None]:
    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "store_retry",
            verb=verb,
            attempt=state.attempt_number,
            wait_s=round(state.upcoming_sleep, 3),
            error=type(exc).__name__ if exc else None,
            code=getattr(exc, "code", None),
            reason=str(exc) if exc else None,
        )

    return before_sleep


def retrying(
    policy: RetryPolicy,
    *,
    verb: str = "call",
    transient: Predicate = is_transient,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tenacity.Retrying:
    """A fresh tenacity controller for one verb call (the time budget starts now)."""
    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(policy.attempts) | _StopAfterTotal(policy.total_seconds, clock),
        wait=tenacity.wait_exponential_jitter(
            multiplier=policy.first_wait, max=policy.max_wait, jitter=policy.jitter
        ),
        retry=tenacity.retry_if_exception(transient),
        reraise=True,
        before_sleep=_log_retry(verb),
        sleep=sleep,
    )


def call_with_retry(
    policy: RetryPolicy,
    fn: Callable[..., T],
    *args: Any,
    verb: str | None = None,
    transient: Predicate = is_transient,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    **kwargs: Any,
) -> T:
    """Call ``fn(*args, **kwargs)``, retrying transient failures within ``policy``; re-raise the last."""
    controller = retrying(
        policy, verb=verb or getattr(fn, "__name__", "call"), transient=transient, clock=clock, sleep=sleep
    )
    return controller(fn, *args, **kwargs)
