"""Bounded retries of whole database verbs: tenacity with attempts AND total time, jittered waits.

Each attempt replays one complete store verb (one transaction), never one statement of a failed
transaction, which is safe because every store write is an idempotent, fenced upsert. Only errors
the predicate names as transient are retried; everything else (schema mismatch, conflicts,
fencing) is an answer, and asking again would not change it.

Only FAST transient failures are retried: connection refused or reset, an administrator's
shutdown, a serialization failure or deadlock. A timeout (libpq's connect timeout, our per-call
deadline watchdog, the server's statement or lock timeout) is not: it already cost its whole
timeout, and a blackholed network would make every attempt cost it again. The call fails at
once; a connect timeout or a cut deadline also opens the breaker at once (persistence.breaker),
so the first run of an outage pays about one connect timeout, then spools.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
import tenacity
from psycopg import errors as pgerr
from psycopg_pool import PoolTimeout
from tenacity.stop import stop_base

from config.errors import RunnerError, StoreUnavailable
from config.log import get_logger
from persistence.postgres.errors import DeadlineExceeded

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


def timeout_kind(exc: BaseException | None) -> str | None:
    """Which timeout ended the call, read from the error's causes; None if it was no timeout.

    'connect_timeout' (libpq gave up connecting), 'deadline' (our watchdog cut the call),
    'statement_timeout', 'lock_timeout', or 'busy' (this process's connection stayed busy).
    """
    seen = 0
    cause = exc
    while cause is not None and seen < 8:
        if isinstance(cause, DeadlineExceeded):
            return "deadline"
        if isinstance(cause, pgerr.ConnectionTimeout):
            return "connect_timeout"
        if isinstance(cause, PoolTimeout):
            # The pool found no connection within the connect timeout: while the database is
            # down its workers keep failing to connect, so this is a connect timeout, not a
            # blip to retry (each retry would wait the whole timeout again).
            return "connect_timeout"
        if isinstance(cause, pgerr.QueryCanceled):
            return "statement_timeout"
        if isinstance(cause, pgerr.LockNotAvailable):
            return "lock_timeout"
        if isinstance(cause, psycopg.OperationalError) and "timeout expired" in str(cause):
            return "connect_timeout"  # older psycopg raised a plain OperationalError
        if isinstance(cause, StoreUnavailable) and "stayed busy" in str(cause):
            return "busy"
        cause = cause.__cause__
        seen += 1
    return None


def is_transient(exc: BaseException) -> bool:
    """True for errors worth asking again at once: a fast failure to reach the database, no timeout."""
    return isinstance(exc, StoreUnavailable) and timeout_kind(exc) is None


class _StopAfterTotal(stop_base):
    """Stop when the next attempt would start past the budget (clock injectable for tests)."""

    def __init__(self, limit: float, clock: Callable[[], float], start: float | None = None) -> None:
        self.limit = limit
        self.clock = clock
        self.start = clock() if start is None else start

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
            code=exc.code if isinstance(exc, RunnerError) else None,
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
    started: float | None = None,
) -> tenacity.Retrying:
    """A fresh tenacity controller for one verb call (the time budget starts now, or at ``started``)."""
    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(policy.attempts) | _StopAfterTotal(policy.total_seconds, clock, started),
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
    """Call ``fn(*args, **kwargs)``, retrying transient failures within ``policy``; re-raise the last.

    The first attempt runs before any controller exists: nearly every call succeeds at once, and
    building tenacity's controller cost about a tenth of a webhook's CPU. Only after a failure
    is the controller built, with the budget dated from the first try; it is handed that
    failure as its attempt 1, so what it decides and logs is what it did when it ran them all.
    """
    started = clock()
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - handed to the controller, which re-raises it
        first: list[Exception] = [exc]

    def again(*a: Any, **kw: Any) -> T:
        if first:
            raise first.pop()  # attempt 1, as it happened
        return fn(*a, **kw)

    controller = retrying(
        policy, verb=verb or "call", transient=transient, clock=clock, sleep=sleep, started=started
    )
    return controller(again, *args, **kwargs)
