"""Issue 8's defects 1-3, reproduced with real processes, real PostgreSQL and a real full disk.

1. DUAL_WRITE: a run process SIGKILLed between the two sides of a write (record and file mirror)
   must not lose the write from either side; every resume reconciles them.
2. DUAL_WRITE with a full OUTPUT_DIR and a healthy database: the run completes in PostgreSQL, the
   mirror is healed by replay once space returns.
3. FILE_ONLY on a full disk: the run waits (and says why) instead of failing, and resumes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from config.settings import Settings
from persistence.factory import build_breaker, replay_spool
from persistence.records import STAGE_FILES
from tests.conftest import REPO
from tests.faultfixtures import fault_proxy  # noqa: F401
from tests.faultproxy import FaultProxy
from tests.smalldisk import small_disk

pytestmark = pytest.mark.timeout(300)

DOCUMENT = str(REPO / "data" / "samples" / "convenience-reinvented.md")
SCRUBBED = ("DATABASE_URL", "ENABLE_", "OPENROUTER", "PIPELINE_", "OUTPUT_DIR")


def cli_env(output_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED)}
    env.update({"OUTPUT_DIR": str(output_dir), "LOG_LEVEL": "INFO", "PIPELINE_ENGINE": "offline", **extra})
    return env


def run_cli(env: dict[str, str], run_id: str, *, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m pipeline run`` (through tests.crashrun when a crash point is given)."""
    args = ["run", DOCUMENT, "--brand", "decathlon", "--run-id", run_id]
    argv = [sys.executable, "-m", "tests.crashrun", crash_at, "--", *args] if crash_at else \
        [sys.executable, "-m", "pipeline", *args]
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)


def database_rows(url: str, run_id: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        run = conn.execute(
            'SELECT status, attempt, "stage1Output", "stage2Output", "stage3Output", "stage4Output", '
            '"fullReportMarkdown" FROM "PipelineRun" WHERE id = %s', (run_id,)).fetchone()
        stages: dict[int, Any] = dict(conn.execute('SELECT "stageNumber", output FROM "StageOutput" WHERE "runId" = %s',
                                   (run_id,)).fetchall())
        cards = [n for n, in conn.execute('SELECT number FROM "OpportunityCard" WHERE "runId" = %s ORDER BY 1',
                                          (run_id,)).fetchall()]
    assert run is not None, f"run {run_id} is not in the database"
    status, attempt, s1, s2, s3, s4, markdown = run
    return {"status": status, "attempt": attempt, "columns": [s1, s2, s3, s4], "markdown": markdown,
            "stages": stages, "cards": cards}


def replay_everything(settings: Settings) -> None:
    """What cron does once the database is back: close the breaker, replay until the spool is empty."""
    build_breaker(settings).reset("test: the database is back")
    give_up = time.monotonic() + 120
    while True:
        report = replay_spool(settings)
        assert report.dead == 0, report
        if report.remaining == 0 and not report.busy:
            return
        assert time.monotonic() < give_up, f"the spool did not drain: {report}"
        time.sleep(0.2)


def assert_whole_and_mirrored(url: str, output_dir: Path, run_id: str) -> None:
    """The database holds the whole run, once, and the file mirror says exactly the same."""
    got = database_rows(url, run_id)
    assert got["status"] == "COMPLETED"
    assert sorted(got["stages"]) == [1, 2, 3, 4, 5], "a stage is missing from StageOutput"
    assert all(column is not None for column in got["columns"]), "a stageNOutput column is NULL"
    assert got["columns"] == [got["stages"][n] for n in (1, 2, 3, 4)]
    assert got["cards"] == [1, 2, 3, 4, 5]
    folder = output_dir / run_id
    mirrored = json.loads((folder / "run.json").read_text())
    assert mirrored["status"] == "COMPLETED"
    for n, name in STAGE_FILES.items():
        assert json.loads((folder / name).read_text()) == got["stages"][n], f"stage {n} differs"
    assert (folder / "report.md").read_text() == got["markdown"]


# -- defect 1 ------------------------------------------------------------------------------------

SCENARIOS = [
    # (write the crash splits, database during the crash, database during the resume)
    ("stage:2", "up", "down"),
    ("stage:2", "down", "up"),
    ("stage:2", "down", "down"),
    ("complete", "up", "down"),
    ("complete", "down", "up"),
]


@pytest.mark.parametrize(("crash_at", "during_crash", "during_resume"), SCENARIOS)
def test_dual_write_a_kill_between_the_two_writes_loses_nothing(
        tmp_path: Path, fault_proxy: FaultProxy, database_url: str,  # noqa: F811
        crash_at: str, during_crash: str, during_resume: str) -> None:
    output_dir = tmp_path / "out"
    url = fault_proxy.url_for(database_url)
    env = cli_env(output_dir, DATABASE_URL=url, ENABLE_FILE_FALLBACK="true")
    settings = Settings(database_url=url, enable_file_fallback=True, output_dir=output_dir)

    def database(state: str) -> None:
        fault_proxy.passthrough() if state == "up" else fault_proxy.reset()

    database(during_crash)
    crashed = run_cli(env, "split", crash_at=crash_at)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
    database(during_resume)
    build_breaker(settings).reset("test: a fresh process")
    resumed = run_cli(env, "split")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    fault_proxy.passthrough()
    replay_everything(settings)
    assert_whole_and_mirrored(database_url, output_dir, "split")


# -- defect 2 ------------------------------------------------------------------------------------

def test_dual_write_a_full_output_dir_never_stops_a_run_and_replay_heals_the_mirror(
        tmp_path: Path, database_url: str) -> None:
    with small_disk(tmp_path / "out", size="2m") as disk:
        env = cli_env(disk.path, DATABASE_URL=database_url, ENABLE_FILE_FALLBACK="true")
        disk.fill()
        result = run_cli(env, "fulldisk")
        assert result.returncode == 0, result.stderr[-3000:]
        got = database_rows(database_url, "fulldisk")
        assert got["status"] == "COMPLETED" and sorted(got["stages"]) == [1, 2, 3, 4, 5]
        disk.free()
        replay_everything(Settings(database_url=database_url, enable_file_fallback=True, output_dir=disk.path))
        assert_whole_and_mirrored(database_url, disk.path, "fulldisk")


# -- defect 3 ------------------------------------------------------------------------------------

def test_file_only_a_full_disk_makes_the_run_wait_and_resume_not_fail(tmp_path: Path) -> None:
    with small_disk(tmp_path / "out", size="2m") as disk:
        env = cli_env(disk.path, ENABLE_DATABASE_WRITES="false")
        from persistence.files import FileStore
        from persistence.records import RunRequest

        FileStore(disk.path).create_run(RunRequest("waits", "decathlon", "cli", DOCUMENT))
        disk.fill()
        log_path = tmp_path / "run.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "pipeline", "run", DOCUMENT, "--brand", "decathlon", "--run-id", "waits"],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            give_up = time.monotonic() + 120  # a hang guard, not a timing assertion
            while "disk_full_waiting" not in log_path.read_text(errors="replace"):
                assert process.poll() is None, f"the run ended instead of waiting:\n{log_path.read_text()[-3000:]}"
                assert time.monotonic() < give_up, "the run never said it waits for disk space"
                time.sleep(0.1)
            waiting = [json.loads(line) for line in log_path.read_text().splitlines()
                       if line.startswith("{") and "disk_full_waiting" in line]
            assert "space" in waiting[0]["reason"] and waiting[0]["path"].startswith(str(disk.path))
            disk.free()
            assert process.wait(timeout=180) == 0, log_path.read_text()[-3000:]
        finally:
            if process.poll() is None:
                process.kill()
        run = json.loads((disk.path / "waits" / "run.json").read_text())
        assert run["status"] == "COMPLETED" and run["error"] is None
        assert all((disk.path / "waits" / name).exists() for name in STAGE_FILES.values())
