"""The host-wide circuit breaker: thresholds, breaks, the single probe, state across processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import errors as pgerr
from structlog.testing import capture_logs

from config.errors import Conflict, SchemaMismatch, StoreUnavailable
from persistence.breaker import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    STATE_FILE,
    BreakerPolicy,
    CircuitBreaker,
    CircuitOpen,
)
from persistence.postgres.errors import DeadlineExceeded
from tests.known import known
from tests.statcount import stats_looked_at

REPO = Path(__file__).resolve().parents[2]
POLICY = BreakerPolicy(consecutive_failures=3, window_seconds=60, window_size=10, min_calls=4,
                       failure_rate=0.5, slow_call_seconds=1.0, slow_call_rate=0.5, break_seconds=10,
                       break_multiplier=2, max_break_seconds=50, break_jitter=0.2, probe_lease_seconds=30)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def breaker(tmp_path: Path, clock: Clock) -> CircuitBreaker:
    # rand 0.5 means a jitter factor of exactly 1: breaks are base * multiplier**n.
    return CircuitBreaker(tmp_path / "state", POLICY, clock=clock, rand=lambda: 0.5)


def call(breaker: CircuitBreaker, error: BaseException | None = None, seconds: float = 0.01) -> str:
    permit = breaker.acquire()
    assert permit is not None
    return breaker.record(permit, error, seconds)


def open_it(breaker: CircuitBreaker) -> None:
    for _ in range(POLICY.consecutive_failures):
        call(breaker, StoreUnavailable("refused"))
    assert breaker.state() == OPEN


def test_starts_closed_without_a_state_file(breaker: CircuitBreaker) -> None:
    assert breaker.state() == CLOSED
    assert breaker.acquire() is not None


def test_opens_after_consecutive_connection_failures(breaker: CircuitBreaker) -> None:
    call(breaker, StoreUnavailable("refused"))
    call(breaker, StoreUnavailable("refused"))
    assert breaker.state() == CLOSED
    with capture_logs() as logs:
        call(breaker, StoreUnavailable("refused"))
    assert breaker.state() == OPEN
    assert breaker.acquire() is None
    opened = [e for e in logs if e["event"] == "breaker_opened"]
    assert opened and opened[0]["reason"].startswith("consecutive_failures")


def test_a_success_resets_the_consecutive_count(breaker: CircuitBreaker) -> None:
    for _ in range(5):
        call(breaker, StoreUnavailable("refused"))
        call(breaker, StoreUnavailable("refused"))
        call(breaker)
        breaker.reset("test keeps the window empty")
    assert breaker.state() == CLOSED


def test_opens_on_failure_rate_once_the_window_has_min_calls(breaker: CircuitBreaker) -> None:
    call(breaker, StoreUnavailable("refused"))
    call(breaker)
    call(breaker, StoreUnavailable("refused"))
    assert breaker.state() == CLOSED  # 2/3 failed, but under min_calls
    call(breaker)
    assert breaker.state() == OPEN
    assert breaker.snapshot()["reason"].startswith("failure_rate")


def test_old_calls_leave_the_window(breaker: CircuitBreaker, clock: Clock) -> None:
    call(breaker, StoreUnavailable("refused"))
    call(breaker, StoreUnavailable("refused"))
    clock.now += POLICY.window_seconds + 1
    for _ in range(4):
        call(breaker)
    assert breaker.state() == CLOSED


def test_the_window_keeps_only_its_last_calls_when_it_is_full(tmp_path: Path, clock: Clock) -> None:
    policy = BreakerPolicy(consecutive_failures=100, window_size=4, min_calls=4, failure_rate=0.75,
                           slow_call_rate=1.0, break_jitter=0.0)
    breaker = CircuitBreaker(tmp_path / "state", policy, clock=clock)
    for failed in (True, True, False, False, False, False, True, True):
        call(breaker, StoreUnavailable("refused") if failed else None)
    assert breaker.state() == CLOSED  # the first two failures left: 2 of the last 4 failed
    call(breaker, StoreUnavailable("refused"))
    assert breaker.state() == OPEN and breaker.snapshot()["reason"] == "failure_rate: 3/4"


def test_opens_on_slow_call_rate(breaker: CircuitBreaker) -> None:
    for _ in range(3):
        call(breaker, seconds=2.5)
    assert breaker.state() == CLOSED
    call(breaker, seconds=2.5)
    assert breaker.state() == OPEN
    assert breaker.snapshot()["reason"].startswith("slow_call_rate")


def test_schema_mismatch_opens_at_once(breaker: CircuitBreaker) -> None:
    with capture_logs() as logs:
        call(breaker, SchemaMismatch('column "stage1Output" does not exist'))
    assert breaker.state() == OPEN
    assert any(e["event"] == "breaker_opened" and "schema_mismatch" in e["reason"] for e in logs)


def test_answers_that_are_not_failures_count_as_healthy_calls(breaker: CircuitBreaker) -> None:
    for _ in range(6):
        call(breaker, Conflict("other payload"))
    assert breaker.state() == CLOSED


def test_open_skips_until_the_break_ends_then_allows_one_probe(breaker: CircuitBreaker, clock: Clock) -> None:
    open_it(breaker)
    clock.now += POLICY.break_seconds - 0.01
    assert breaker.acquire() is None
    clock.now += 0.02
    probe = breaker.acquire()
    assert probe is not None and probe.probe
    assert breaker.state() == HALF_OPEN
    assert breaker.acquire() is None  # exactly one probe at a time
    assert breaker.record(probe, None, 0.01) == CLOSED
    assert breaker.acquire() is not None


def test_failed_probe_reopens_for_a_longer_break_up_to_the_cap(breaker: CircuitBreaker, clock: Clock) -> None:
    open_it(breaker)
    breaks = []
    for _ in range(5):
        snap = breaker.snapshot()
        breaks.append(snap["open_until"] - snap["since"])
        clock.now = snap["open_until"]
        probe = breaker.acquire()
        assert probe is not None and probe.probe
        assert breaker.record(probe, StoreUnavailable("still down"), 0.01) == OPEN
    assert breaks == [10, 20, 40, 50, 50]


def test_a_slow_probe_reopens(breaker: CircuitBreaker, clock: Clock) -> None:
    open_it(breaker)
    clock.now = breaker.snapshot()["open_until"]
    probe = known(breaker.acquire())
    assert breaker.record(probe, None, POLICY.slow_call_seconds + 1) == OPEN
    assert breaker.snapshot()["reason"].startswith("probe_slow")


def test_a_probe_that_outlives_its_lease_is_retaken(breaker: CircuitBreaker, clock: Clock) -> None:
    open_it(breaker)
    clock.now = breaker.snapshot()["open_until"]
    first = breaker.acquire()
    assert first is not None and breaker.acquire() is None
    clock.now += POLICY.probe_lease_seconds + 1
    second = breaker.acquire()
    assert second is not None and second.probe and second.token != first.token
    # The first prober's late verdict no longer decides anything.
    breaker.record(first, None, 0.01)
    assert breaker.state() == HALF_OPEN


def test_a_probe_held_by_a_dead_process_is_retaken(breaker: CircuitBreaker, clock: Clock) -> None:
    open_it(breaker)
    clock.now = breaker.snapshot()["open_until"]
    assert breaker.acquire() is not None
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    doc = json.loads(breaker.path.read_text())
    doc["probe"]["pid"] = int(done.stdout)  # that process has exited
    breaker.path.write_text(json.dumps(doc))
    assert breaker.acquire() is not None


def test_guard_records_outcomes_and_raises_circuit_open_when_skipping(breaker: CircuitBreaker) -> None:
    for _ in range(POLICY.consecutive_failures):
        with pytest.raises(StoreUnavailable), breaker.guard():
            raise StoreUnavailable("refused")
    with pytest.raises(CircuitOpen), breaker.guard():
        pytest.fail("the block must not run while the breaker is open")


def test_guard_gives_back_a_probe_on_an_unexpected_error(breaker: CircuitBreaker, clock: Clock) -> None:
    open_it(breaker)
    clock.now = breaker.snapshot()["open_until"]
    with pytest.raises(KeyError), breaker.guard():
        raise KeyError("bug")
    assert breaker.state() == OPEN
    assert breaker.acquire() is not None  # the next caller may probe at once


def test_trip_and_reset_for_operators(breaker: CircuitBreaker) -> None:
    with capture_logs() as logs:
        breaker.trip("schema drift found by cron")
        assert breaker.state() == OPEN
        breaker.reset("migrations applied")
    assert breaker.state() == CLOSED
    events = [(e["event"], e["reason"]) for e in logs]
    assert ("breaker_opened", "manual: schema drift found by cron") in events
    assert ("breaker_closed", "manual: migrations applied") in events


def test_a_corrupt_state_file_is_reset_and_logged(breaker: CircuitBreaker) -> None:
    breaker.dir.mkdir(parents=True)
    breaker.path.write_text("{not json")
    with capture_logs() as logs:
        assert breaker.state() == CLOSED
        breaker.trip("after corruption")
    assert any(e["event"] == "breaker_state_corrupt" for e in logs)
    assert json.loads(breaker.path.read_text())["state"] == OPEN


@settings(max_examples=60, deadline=None)
@given(trips=st.integers(1, 40), rand=st.floats(0.0, 1.0))
def test_breaks_are_jittered_and_capped(tmp_path_factory: pytest.TempPathFactory, trips: int, rand: float) -> None:
    clock = Clock()
    breaker = CircuitBreaker(tmp_path_factory.mktemp("b"), POLICY, clock=clock, rand=lambda: rand)
    for _ in range(trips):
        breaker.trip("test")
    snap = breaker.snapshot()
    seconds = snap["open_until"] - snap["since"]
    grown = POLICY.break_seconds * POLICY.break_multiplier ** (trips - 1)
    assert seconds <= POLICY.max_break_seconds
    assert seconds == pytest.approx(min(POLICY.max_break_seconds, grown * (1 + POLICY.break_jitter * (2 * rand - 1))))


CHILD = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from persistence.breaker import BreakerPolicy, CircuitBreaker
    breaker = CircuitBreaker(Path(sys.argv[1]), BreakerPolicy(**json.loads(sys.argv[2])))
    action = sys.argv[3]
    result = []
    if action == "trip":
        breaker.trip("tripped by another process")
    elif action == "acquire":
        permit = breaker.acquire()
        result.append("skip" if permit is None else ("probe" if permit.probe else "call"))
    result.append(breaker.state())
    print("RESULT", *result)
""")


def child(state_dir: Path, action: str, policy: BreakerPolicy = POLICY) -> list[str]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(state_dir), json.dumps(policy.__dict__), action],
                         cwd=REPO, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    # Logs go to stdout too (structlog's default); the answer is the RESULT line.
    return [line for line in out.stdout.splitlines() if line.startswith("RESULT ")][-1].split()[1:]


def test_state_is_shared_by_real_processes(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    here = CircuitBreaker(state_dir, POLICY)
    assert child(state_dir, "state") == [CLOSED]
    assert child(state_dir, "trip") == [OPEN]
    # This process sees the other's decision and skips the database with no wait.
    assert here.state() == OPEN
    assert here.acquire() is None
    assert child(state_dir, "acquire") == ["skip", OPEN]


def test_only_one_probe_across_processes(tmp_path: Path) -> None:
    policy = BreakerPolicy(break_seconds=0.0, break_jitter=0.0, probe_lease_seconds=600)
    state_dir = tmp_path / "state"
    here = CircuitBreaker(state_dir, policy)
    here.trip("test")
    probe = here.acquire()
    assert probe is not None and probe.probe
    assert child(state_dir, "acquire", policy) == ["skip", HALF_OPEN]
    here.record(probe, None, 0.0)
    assert child(state_dir, "acquire", policy) == ["call", CLOSED]


def caused_by(cause: BaseException) -> StoreUnavailable:
    """A StoreUnavailable as pg_errors.wrap_exceptions raises it, chained to ``cause``."""
    try:
        try:
            raise cause
        except BaseException as exc:
            raise StoreUnavailable(f"database save_stage failed: {exc}") from exc
    except StoreUnavailable as wrapped:
        return wrapped


def test_successful_calls_write_nothing_and_take_no_lock(breaker: CircuitBreaker) -> None:
    breaker.trip("make a file")
    breaker.reset("closed again")
    before = breaker.path.stat()
    lock = breaker.dir / "breaker.lock"
    lock_before = lock.stat().st_mtime_ns
    for _ in range(50):
        call(breaker)
    call(breaker, StoreUnavailable("refused"))  # a failure under the thresholds neither
    call(breaker)
    after = breaker.path.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)
    assert lock.stat().st_mtime_ns == lock_before
    assert "calls" not in json.loads(breaker.path.read_text())  # the window is not shared


def test_the_closed_state_is_written_once_while_healthy(breaker: CircuitBreaker) -> None:
    call(breaker)
    first = breaker.path.stat()
    for _ in range(20):
        call(breaker)
    assert breaker.path.stat().st_ino == first.st_ino
    assert json.loads(breaker.path.read_text())["state"] == CLOSED


@pytest.mark.parametrize(("cause", "reason"), [
    (pgerr.ConnectionTimeout("connection timeout expired"), "connect_timeout"),
    (DeadlineExceeded("save_stage"), "deadline"),
])
def test_a_connect_timeout_or_cut_deadline_opens_at_once(breaker: CircuitBreaker, cause: BaseException,
                                                         reason: str) -> None:
    with capture_logs() as logs:
        assert call(breaker, caused_by(cause)) == OPEN
    assert breaker.snapshot()["reason"].startswith(reason)
    assert [e["reason"].split(":")[0] for e in logs if e["event"] == "breaker_opened"] == [reason]


def test_a_statement_timeout_counts_like_any_failure(breaker: CircuitBreaker) -> None:
    assert call(breaker, caused_by(pgerr.QueryCanceled("canceling statement due to statement timeout"))) == CLOSED
    assert call(breaker, caused_by(psycopg.OperationalError("connection refused"))) == CLOSED


def test_opening_on_timeout_can_be_turned_off(tmp_path: Path, clock: Clock) -> None:
    policy = BreakerPolicy(**{**POLICY.__dict__, "open_on_timeout": False})
    breaker = CircuitBreaker(tmp_path / "state", policy, clock=clock, rand=lambda: 0.5)
    assert call(breaker, caused_by(DeadlineExceeded("x"))) == CLOSED


def test_each_process_counts_its_own_window_and_shares_the_open_state(tmp_path: Path, clock: Clock) -> None:
    one = CircuitBreaker(tmp_path / "state", POLICY, clock=clock, rand=lambda: 0.5)
    two = CircuitBreaker(tmp_path / "state", POLICY, clock=clock, rand=lambda: 0.5)
    for _ in range(POLICY.consecutive_failures - 1):
        call(one, StoreUnavailable("refused"))
        call(two, StoreUnavailable("refused"))
    assert one.state() == two.state() == CLOSED
    call(two, StoreUnavailable("refused"))
    assert one.state() == OPEN and one.acquire() is None


def test_a_state_changed_by_another_process_is_seen_at_the_next_call(breaker: CircuitBreaker, tmp_path: Path,
                                                                     clock: Clock) -> None:
    other = CircuitBreaker(breaker.dir, POLICY, clock=clock, rand=lambda: 0.5)
    assert breaker.state() == CLOSED
    for _ in range(3):  # written again and again within one mtime tick: the inode tells them apart
        other.trip("elsewhere")
        assert breaker.state() == OPEN
        other.reset("elsewhere")
        assert breaker.state() == CLOSED


def test_with_a_recheck_window_a_call_stats_the_file_once_per_window(tmp_path: Path, clock: Clock,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # A web worker's setting (factory.WEB_BREAKER_RECHECK_S): each stat is a turn of the GIL.
    web = CircuitBreaker(tmp_path / "state", replace(POLICY, state_recheck_s=60.0), clock=clock, rand=lambda: 0.5)
    other = CircuitBreaker(tmp_path / "state", POLICY, clock=clock, rand=lambda: 0.5)
    call(web)  # writes the closed state once, and looks
    with stats_looked_at(monkeypatch) as looked:
        assert all(call(web) == CLOSED for _ in range(50))
    assert looked.count(web.path) == 0
    other.trip("elsewhere")
    assert web.acquire() is not None  # within the window: the state it last looked at
    assert web.state() == OPEN  # an explicit look (health, operators) always reads the file...
    assert web.acquire() is None  # ...and calls go by what it read
    web.reset("here")
    assert web.acquire() is not None  # its own change is seen at once


def test_a_recheck_window_that_ends_sees_another_process_open_the_breaker(tmp_path: Path, clock: Clock,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    web = CircuitBreaker(tmp_path / "state", replace(POLICY, state_recheck_s=0.1), clock=clock, rand=lambda: 0.5)
    other = CircuitBreaker(tmp_path / "state", POLICY, clock=clock, rand=lambda: 0.5)
    call(web)
    other.trip("elsewhere")
    later = time.monotonic() + 0.1
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert web.acquire() is None


def test_state_file_is_plain_json_for_operators(breaker: CircuitBreaker) -> None:
    breaker.trip("look at me")
    doc = json.loads((breaker.dir / STATE_FILE).read_text())
    assert doc["state"] == OPEN and doc["reason"] == "manual: look at me"
