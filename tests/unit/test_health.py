"""The /health service: the status table of each mode, and a database probe that is bounded and cached."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from config.errors import StoreUnavailable
from config.settings import Settings
from handlers.health import DatabaseProbe, check_health

URL = "postgresql://runner:secret-pw@db.example:5432/runner"


class FakeDatabase:
    """A database side that answers after ``delay`` seconds, or fails."""

    def __init__(self, *, delay: float = 0.0, fails: bool = False, schema: str = "ok") -> None:
        self.delay, self.fails, self.schema, self.pings = delay, fails, schema, 0

    def ping(self, timeout_s: float) -> None:
        self.pings += 1
        time.sleep(self.delay)
        if self.fails:
            raise StoreUnavailable("database ping failed")

    def schema_state(self) -> str:
        return self.schema


def report(settings: Settings, database: FakeDatabase | None, circuit: str = "closed", backlog: int = 0):
    return check_health(settings, DatabaseProbe(database), breaker_state=lambda s: circuit,
                        spool_backlog=lambda s: backlog)


@pytest.fixture
def base(tmp_path: Path) -> Settings:
    return Settings(output_dir=tmp_path / "outputs", database_url=URL)


@pytest.mark.parametrize("writes, files, database, circuit, backlog, code, status", [
    (False, True, None, "closed", 0, 200, "healthy"),                    # FILE_ONLY
    (True, True, FakeDatabase(), "closed", 0, 200, "healthy"),           # DUAL_WRITE, all well
    (True, True, FakeDatabase(fails=True), "open", 3, 200, "degraded"),  # database down: files and spool
    (True, False, FakeDatabase(fails=True), "open", 0, 200, "degraded"),  # DATABASE_ONLY, spool writable
    (True, False, FakeDatabase(schema="behind"), "closed", 0, 200, "degraded"),
    (True, False, FakeDatabase(), "closed", 2, 200, "degraded"),         # a backlog waits for replay
    (False, False, None, "closed", 0, 503, "unhealthy"),                 # INVALID
])
def test_the_status_follows_the_mode_and_the_database(base: Settings, writes: bool, files: bool,
                                                      database: FakeDatabase | None, circuit: str, backlog: int,
                                                      code: int, status: str) -> None:
    settings = replace(base, enable_database_writes=writes, enable_file_fallback=files)
    result = report(settings, database, circuit, backlog)
    assert (result.http_status, result.body["status"]) == (code, status)
    assert "secret-pw" not in str(result.body) and "db.example" not in str(result.body)


def test_database_only_with_nothing_writable_is_unhealthy(base: Settings, tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the output folder should be")
    settings = replace(base, enable_file_fallback=False, output_dir=blocked / "outputs")
    result = report(settings, FakeDatabase(fails=True), "open")
    assert result.http_status == 503 and result.body["database_connection"] == "failed"


def test_a_hung_database_is_reported_failed_without_waiting_for_it() -> None:
    gate = threading.Event()
    class HungDatabase(FakeDatabase):
        def ping(self, timeout_s: float) -> None:
            gate.wait(30)  # answers only when the test lets it

    probe = DatabaseProbe(HungDatabase(), timeout_s=0.3)
    assert probe.check() == ("failed", "unknown")
    assert not gate.is_set()  # the answer came while the database was still hanging
    gate.set()


def test_answers_are_cached_and_one_probe_runs_at_a_time() -> None:
    database = FakeDatabase(delay=0.05)
    probe = DatabaseProbe(database, timeout_s=1, ttl_s=60)
    threads = [threading.Thread(target=probe.check) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert probe.check() == ("healthy", "ok") and database.pings == 1
