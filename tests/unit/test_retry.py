"""The retry policy: bounded by attempts and total time, jittered, transient errors only."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import errors as pgerr
from psycopg_pool import PoolTimeout
from structlog.testing import capture_logs

from config.errors import Conflict, SchemaMismatch, StoreError, StoreUnavailable
from persistence.postgres.errors import DeadlineExceeded, wrap_exceptions
from persistence.retry import RetryPolicy, call_with_retry, is_transient, timeout_kind

FAST = RetryPolicy(attempts=4, total_seconds=100.0, first_wait=0.1, max_wait=1.0, jitter=0.05)


class FakeTime:
    """A clock that only moves when the retry loop 'sleeps'."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def flaky(errors: Sequence[BaseException], result: str = "ok"):
    failures = list(errors)  # the caller's list stays as given
    calls = {"n": 0}

    def fn() -> str:
        calls["n"] += 1
        if failures:
            raise failures.pop(0)
        return result

    return fn, calls


def run(policy: RetryPolicy, fn, fake: FakeTime):
    return call_with_retry(policy, fn, verb="save_stage", clock=fake.clock, sleep=fake.sleep)


def test_transient_failures_are_retried_until_success() -> None:
    fake = FakeTime()
    fn, calls = flaky([StoreUnavailable("refused"), StoreUnavailable("refused")])
    assert run(FAST, fn, fake) == "ok"
    assert calls["n"] == 3
    assert len(fake.sleeps) == 2


@pytest.mark.parametrize("error", [SchemaMismatch("no column"), Conflict("other payload"), StoreError("bad data"),
                                   ValueError("bug")])
def test_non_transient_errors_are_raised_at_once(error: BaseException) -> None:
    fake = FakeTime()
    fn, calls = flaky([error])
    with pytest.raises(type(error)):
        run(FAST, fn, fake)
    assert calls["n"] == 1
    assert fake.sleeps == []


def test_attempts_bound_reraises_the_last_error() -> None:
    fake = FakeTime()
    errors = [StoreUnavailable(f"refused {i}") for i in range(10)]
    fn, calls = flaky(errors)
    with pytest.raises(StoreUnavailable, match="refused 3"):
        run(FAST, fn, fake)
    assert calls["n"] == FAST.attempts


def test_total_time_bound_stops_before_attempts_run_out() -> None:
    fake = FakeTime()
    policy = RetryPolicy(attempts=50, total_seconds=2.0, first_wait=0.5, max_wait=0.5, jitter=0.0)
    fn, calls = flaky([StoreUnavailable("timeout") for _ in range(50)])
    with pytest.raises(StoreUnavailable):
        run(policy, fn, fake)
    # Never starts an attempt past the budget: 0.5 s waits fit 3 times in under 2 s.
    assert fake.now < policy.total_seconds
    assert calls["n"] == 4


def test_each_retry_is_logged_with_attempt_and_wait() -> None:
    fake = FakeTime()
    fn, _ = flaky([StoreUnavailable("refused")])
    with capture_logs() as logs:
        run(FAST, fn, fake)
    retries = [e for e in logs if e["event"] == "store_retry"]
    assert len(retries) == 1
    assert retries[0]["attempt"] == 1
    assert retries[0]["verb"] == "save_stage"
    assert retries[0]["wait_s"] == pytest.approx(fake.sleeps[0], abs=1e-3)
    assert retries[0]["code"] == "STORE_UNAVAILABLE"


def test_default_predicate_names_exactly_store_unavailable() -> None:
    assert is_transient(StoreUnavailable("x"))
    assert not is_transient(SchemaMismatch("x"))
    assert not is_transient(StoreError("x"))
    assert not is_transient(OSError("x"))


@settings(max_examples=50, deadline=None)
@given(attempts=st.integers(1, 8), first=st.floats(0.01, 1.0), cap=st.floats(0.05, 3.0),
       jitter=st.floats(0.0, 0.5), budget=st.floats(0.1, 20.0))
def test_waits_stay_within_bounds(attempts: int, first: float, cap: float, jitter: float, budget: float) -> None:
    fake = FakeTime()
    policy = RetryPolicy(attempts=attempts, total_seconds=budget, first_wait=first, max_wait=cap, jitter=jitter)
    fn, calls = flaky([StoreUnavailable("down") for _ in range(20)])
    with pytest.raises(StoreUnavailable):
        run(policy, fn, fake)
    assert 1 <= calls["n"] <= attempts
    assert all(0 <= s <= cap for s in fake.sleeps)
    assert fake.now < budget or not fake.sleeps


def translated(cause: BaseException) -> BaseException:
    """``cause`` as the store's boundary (pg_errors.wrap_exceptions) hands it on."""
    try:
        with wrap_exceptions("save_stage", deadline_s=2):
            raise cause
    except StoreUnavailable as exc:
        return exc
    raise AssertionError("not translated")


@pytest.mark.parametrize(("cause", "kind"), [
    (pgerr.ConnectionTimeout("connection timeout expired"), "connect_timeout"),
    (psycopg.OperationalError("connection to server failed: timeout expired"), "connect_timeout"),
    # The web pool waits at most the connect timeout for a connection: while the database is
    # down, retrying would wait it again (a webhook held past its sender's timeout).
    (PoolTimeout("couldn't get a connection after 5.00 sec"), "connect_timeout"),
    (DeadlineExceeded("save_stage"), "deadline"),
    (pgerr.QueryCanceled("canceling statement due to statement timeout"), "statement_timeout"),
    (pgerr.LockNotAvailable("canceling statement due to lock timeout"), "lock_timeout"),
    (psycopg.OperationalError("connection refused"), None),
    (pgerr.AdminShutdown("terminating connection due to administrator command"), None),
    (pgerr.SerializationFailure("could not serialize access"), None),
    (ConnectionResetError("reset by peer"), None),
])
def test_timeouts_are_told_apart_from_fast_failures(cause: BaseException, kind: str | None) -> None:
    error = translated(cause)
    assert timeout_kind(error) == kind
    assert is_transient(error) is (kind is None)


def test_a_timeout_is_not_retried_in_the_same_call() -> None:
    fake = FakeTime()
    fn, calls = flaky([translated(pgerr.ConnectionTimeout("connection timeout expired"))])
    with pytest.raises(StoreUnavailable):
        run(FAST, fn, fake)
    assert calls["n"] == 1 and fake.sleeps == []


def test_the_time_budget_counts_from_the_first_try_even_when_it_is_slow() -> None:
    # The first attempt runs outside the retry controller (the common case builds none); its
    # time still counts: 0.95 s spent of a 1 s budget leaves no room for a 0.1 s wait.
    fake = FakeTime()
    policy = RetryPolicy(attempts=4, total_seconds=1.0, first_wait=0.1, max_wait=1.0, jitter=0.0)
    calls = {"n": 0}

    def slow_then_refused() -> str:
        calls["n"] += 1
        fake.now += 0.95
        raise StoreUnavailable("refused")

    with pytest.raises(StoreUnavailable):
        run(policy, slow_then_refused, fake)
    assert calls["n"] == 1 and fake.sleeps == []


def test_the_first_failure_is_logged_as_attempt_one_and_the_retry_succeeds() -> None:
    fake = FakeTime()
    fn, calls = flaky([StoreUnavailable("refused")])
    with capture_logs() as logs:
        assert run(FAST, fn, fake) == "ok"
    assert calls["n"] == 2
    assert [(line["event"], line["attempt"]) for line in logs] == [("store_retry", 1)]
