"""The database watchdog: it cuts a call past its deadline, and sleeps through calls that end in time."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import DictRow, dict_row

from persistence.postgres.connection import Watchdog


def connect(url: str) -> psycopg.Connection[DictRow]:
    return psycopg.connect(url, autocommit=True, row_factory=dict_row)


def voluntary_switches(native_id: int) -> int:
    """How many times the thread has gone to sleep (Linux counts it per thread)."""
    status = Path(f"/proc/self/task/{native_id}/status").read_text()
    return int(status.split("voluntary_ctxt_switches:")[1].split()[0])


def watchdog_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "db-watchdog"}


def test_a_call_armed_after_a_later_one_is_still_cut_at_its_own_deadline(database_url: str) -> None:
    watchdog = Watchdog()
    with connect(database_url) as idle, connect(database_url) as busy:
        later = watchdog.arm(idle, 600)  # the thread now sleeps until this one's deadline
        sooner = watchdog.arm(busy, 0.3)  # it must wake for this earlier deadline
        # Uncut, the sleep returns normally after 60 s and the test fails; the suite's hang guard bounds it.
        with pytest.raises(psycopg.OperationalError):
            busy.execute("SELECT pg_sleep(60)")
        assert sooner.fired and not later.fired
        watchdog.disarm(later)
        idle.execute("SELECT 1")  # the other connection was never touched


def test_calls_that_end_in_time_do_not_wake_the_watchdog(database_url: str) -> None:
    watchdog = Watchdog()
    with connect(database_url) as conn:
        others = watchdog_threads()  # other stores' watchdogs in this process
        first = watchdog.arm(conn, 600)  # starts this watchdog's thread
        (thread,) = watchdog_threads() - others
        assert thread.native_id is not None
        settled = watchdog.arm(conn, 600)  # by now the thread sleeps until the first deadline
        watchdog.disarm(settled)
        before = voluntary_switches(thread.native_id)
        for _ in range(200):  # each a call that ends well inside its (later) deadline
            conn.execute("SELECT 1")
            watchdog.disarm(watchdog.arm(conn, 600))
        woken = voluntary_switches(thread.native_id) - before
        watchdog.disarm(first)
    # Woken per call, the thread would switch about 200 times.
    assert woken <= 2, f"the watchdog thread woke {woken} times for 200 calls that ended in time"
