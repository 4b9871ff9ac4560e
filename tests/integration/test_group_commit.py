"""Group commit of new runs (persistence.postgres.group_commit) against a real PostgreSQL.

Batches are made deterministic with the database's own locks: a blocker transaction inserts a
run and keeps it uncommitted, so the leader's INSERT of the same id waits for it, and every call
made meanwhile queues. Nothing is timed: each step waits for a state it can observe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
import pytest

from config.errors import Conflict, StoreError, StoreUnavailable
from persistence.postgres import DbTimeouts, PostgresStore
from persistence.postgres.group_commit import GroupCommit
from persistence.records import RunRequest
from tests.known import known

URL = "https://a.public.blob.vercel-storage.com/{}.pdf"
# Long bounds: a call waits on a blocker for as long as the test needs, never on a clock.
PATIENT = DbTimeouts(lock_s=120, statement_s=120, deadline_s=120)
HANG_GUARD_S = 60


def request(run_id: str, user: str = "u1") -> RunRequest:
    return RunRequest(run_id, "decathlon", user, URL.format(run_id))


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition``; the bound is a hang guard, not a timing assertion."""
    deadline = time.monotonic() + HANG_GUARD_S
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.01)


def lock_waiters(url: str) -> list[int]:
    """Backends of this database waiting for a lock (a blocked INSERT)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                            "AND wait_event_type = 'Lock' ORDER BY pid").fetchall()
    return [row[0] for row in rows]


@dataclass
class Caller:
    """``create_run`` in a thread; its result or error once it returns."""

    store: PostgresStore
    req: RunRequest
    outcome: list[object] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._call, daemon=True)

    def _call(self) -> None:
        try:
            self.outcome.append(self.store.create_run(self.req))
        except Exception as exc:  # noqa: BLE001 - the test reads it
            self.outcome.append(exc)

    def result(self) -> object:
        self.thread.join(HANG_GUARD_S)
        assert not self.thread.is_alive(), f"create_run({self.req.run_id}) never returned"
        return self.outcome[0]


@pytest.fixture
def store(database_url: str) -> Iterator[PostgresStore]:
    store = PostgresStore(database_url, PATIENT, pool_size=4, group_creates=True)
    yield store
    store.close()


@contextmanager
def held(database_url: str, *requests: RunRequest) -> Iterator[psycopg.Connection]:
    """A transaction that has inserted ``requests`` and not committed: an INSERT of the same ids waits."""
    with psycopg.connect(database_url) as blocker:
        for req in requests:
            blocker.execute('INSERT INTO "PipelineRun" (id, "userId", "companyId", "documentUrl", status) '
                            "VALUES (%s, %s, %s, %s, 'QUEUED')",
                            (req.run_id, req.user_id, req.company_id, req.document_url))
        yield blocker


def queue_behind_leader(store: PostgresStore, database_url: str, leader: RunRequest,
                        followers: list[RunRequest]) -> tuple[Caller, list[Caller]]:
    """Start the leader, wait until its INSERT waits on a lock, then queue each follower in order."""
    creates = known(store.creates)
    first = Caller(store, leader)
    first.thread.start()
    wait_until(lambda: len(lock_waiters(database_url)) == 1, "the leader's INSERT waiting on the blocker")
    callers = []
    for number, req in enumerate(followers, start=1):
        caller = Caller(store, req)
        caller.thread.start()
        wait_until(lambda n=number: creates.waiting == n, f"{number} calls queued")  # type: ignore[misc]
        callers.append(caller)
    return first, callers


def stored_ids(database_url: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        return [row[0] for row in conn.execute('SELECT id FROM "PipelineRun" ORDER BY id')]


def test_runs_that_arrive_while_an_insert_is_in_flight_share_one_statement(store, database_url):
    store.create_run(request("old"))
    followers = [request("n1"), request("n2"), request("n1"), request("n3"), request("n3", user="intruder"),
                 request("old"), request("old", user="intruder")]
    with held(database_url, request("held")) as blocker:
        leader, callers = queue_behind_leader(store, database_url, request("held"), followers)
        blocker.commit()
        assert leader.result() is False  # the blocker's run, same request: a repeat
    results = [caller.result() for caller in callers]
    assert results[:4] == [True, True, False, True]  # n1 new, n2 new, n1 again (a repeat), n3 new
    assert isinstance(results[4], Conflict) and "n3" in str(results[4])  # n3 with another payload
    assert results[5] is False  # a run stored before the batch, asked again
    assert isinstance(results[6], Conflict) and "old" in str(results[6])
    # "old" first, then the leader's statement, then one statement for the seven followers.
    assert known(store.creates).batches == 3
    assert stored_ids(database_url) == ["held", "n1", "n2", "n3", "old"]
    with psycopg.connect(database_url) as conn:
        users: dict[str, str] = dict(conn.execute('SELECT id, "userId" FROM "PipelineRun"').fetchall())
    assert set(users.values()) == {"u1"}  # no conflicting payload was written


def test_a_batch_the_database_refuses_whole_is_tried_one_request_at_a_time(store, database_url):
    bad = RunRequest("bad", "decathlon", "nul\x00byte", URL.format("bad"))  # PostgreSQL text refuses NUL
    with held(database_url, request("held")) as blocker:
        leader, callers = queue_behind_leader(store, database_url, request("held"),
                                              [request("a"), bad, request("b"), request("a")])
        blocker.commit()
        leader.result()
    results = [caller.result() for caller in callers]
    assert results[0] is True and results[2] is True and results[3] is False
    assert isinstance(results[1], StoreError) and not isinstance(results[1], StoreUnavailable)
    assert stored_ids(database_url) == ["a", "b", "held"]


def test_when_the_connection_dies_every_caller_of_the_batch_gets_its_own_error(store, database_url):
    with held(database_url, request("held1"), request("held2")) as blocker:
        leader, callers = queue_behind_leader(store, database_url, request("held1"),
                                              [request("held2"), request("x"), request("y")])
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (lock_waiters(database_url)[0],))
            assert isinstance(leader.result(), StoreUnavailable)
            # The next caller now leads the three queued calls, and waits on held2's lock.
            wait_until(lambda: len(lock_waiters(database_url)) == 1, "the second batch waiting on held2")
            assert known(store.creates).waiting == 0
            admin.execute("SELECT pg_terminate_backend(%s)", (lock_waiters(database_url)[0],))
        errors = [caller.result() for caller in callers]
        blocker.rollback()
    assert all(isinstance(error, StoreUnavailable) for error in errors), errors
    assert len({id(error) for error in errors}) == 3  # one object per thread: tracebacks never mix
    assert stored_ids(database_url) == []  # the cut statement committed nothing
    assert [store.create_run(request(run_id)) for run_id in ("held2", "x", "y")] == [True, True, True]
    assert stored_ids(database_url) == ["held2", "x", "y"]


class Interrupted(BaseException):
    """What a leader thread may meet mid-batch (KeyboardInterrupt, SystemExit)."""


def test_a_leader_interrupted_mid_batch_still_wakes_every_caller_and_hands_over():
    release_first = threading.Event()
    batches: list[list[str]] = []

    def run_batch(items):
        batches.append(list(items))
        if len(batches) == 1:
            release_first.wait(HANG_GUARD_S)
            return [f"done {item}" for item in items]
        if len(batches) == 2:
            raise Interrupted
        return [f"done {item}" for item in items]

    group: GroupCommit[str, str] = GroupCommit(run_batch)
    outcomes: dict[str, object] = {}

    def call(item: str) -> None:
        try:
            outcomes[item] = group.submit(item)
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            outcomes[item] = exc

    threads = {item: threading.Thread(target=call, args=(item,), daemon=True) for item in "abcd"}
    threads["a"].start()
    wait_until(lambda: len(batches) == 1, "the first batch running")
    for number, item in enumerate("bc", start=1):
        threads[item].start()
        wait_until(lambda n=number: group.waiting == n, f"{number} queued")  # type: ignore[misc]
    release_first.set()
    for item in "abc":
        threads[item].join(HANG_GUARD_S)
        assert not threads[item].is_alive()
    assert batches == [["a"], ["b", "c"]]
    assert outcomes["a"] == "done a"
    assert isinstance(outcomes["b"], Interrupted)  # the leader of the interrupted batch
    assert isinstance(outcomes["c"], StoreUnavailable) and "interrupted" in str(outcomes["c"])
    # Nobody was left holding the leadership: the next call runs at once.
    threads["d"].start()
    threads["d"].join(HANG_GUARD_S)
    assert outcomes["d"] == "done d" and batches[-1] == ["d"]


def test_a_batch_never_exceeds_its_bound_and_the_rest_goes_next():
    release = threading.Event()
    batches: list[list[int]] = []

    def run_batch(items):
        batches.append(list(items))
        if len(batches) == 1:
            release.wait(HANG_GUARD_S)
        return [item * 10 for item in items]

    group: GroupCommit[int, int] = GroupCommit(run_batch, max_batch=2)
    results: dict[int, int] = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, group.submit(i)), daemon=True)
               for i in range(6)]
    threads[0].start()
    wait_until(lambda: len(batches) == 1, "the first batch running")
    for number, thread in enumerate(threads[1:], start=1):
        thread.start()
        wait_until(lambda n=number: group.waiting == n, f"{number} queued")  # type: ignore[misc]
    release.set()
    for thread in threads:
        thread.join(HANG_GUARD_S)
    assert batches == [[0], [1, 2], [3, 4], [5]]
    assert results == {i: i * 10 for i in range(6)}

