"""Issue 8, defect 6: the dispatcher forks run processes with no other thread alive.

A child forked while another thread holds a lock (the database watchdog's, logging's) can hang
forever while the dispatcher keeps renewing its lease. Python 3.12+ warns about exactly this;
the dispatcher here runs with that warning turned into an error, and a fork hook records the
threads alive at every fork, so the test holds on 3.11 as well as on 3.13.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from config.settings import Settings
from persistence.factory import build_store
from persistence.records import RunRequest
from tests.conftest import REPO

pytestmark = pytest.mark.timeout(240)

DOCUMENT = str(REPO / "data" / "samples" / "outdoor-gear-circularity.txt")
SCRUBBED = ("DATABASE_URL", "ENABLE_", "OPENROUTER", "PIPELINE_", "OUTPUT_DIR")


def status_of(url: str, run_id: str) -> str | None:
    with psycopg.connect(url) as conn:
        row = conn.execute('SELECT status FROM "PipelineRun" WHERE id = %s', (run_id,)).fetchone()
    return None if row is None else row[0]


def test_no_thread_is_alive_when_the_dispatcher_forks_a_run(tmp_path: Path, database_url: str) -> None:
    output_dir = tmp_path / "out"
    settings = Settings(database_url=database_url, enable_file_fallback=False, output_dir=output_dir)
    store = build_store(settings)
    run_ids = ["fork-1", "fork-2", "fork-3"]
    for run_id in run_ids:
        store.create_run(RunRequest(run_id, "decathlon", "user-1", DOCUMENT))
    store.close()

    report = tmp_path / "forks.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED)}
    env.update({"DATABASE_URL": database_url, "ENABLE_FILE_FALLBACK": "false", "OUTPUT_DIR": str(output_dir),
                "PIPELINE_ENGINE": "offline", "MAX_CONCURRENT_RUNS": "1", "LOG_LEVEL": "INFO"})
    log_path = tmp_path / "dispatcher.log"
    with open(log_path, "wb") as log:
        dispatcher = subprocess.Popen(
            [sys.executable, "-W", "error::DeprecationWarning", "-m", "tests.forkwatch", str(report)],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        give_up = time.monotonic() + 180  # a hang guard, not a timing assertion
        while any(status_of(database_url, r) != "COMPLETED" for r in run_ids):
            assert dispatcher.poll() is None, f"the dispatcher died:\n{log_path.read_text()[-4000:]}"
            assert time.monotonic() < give_up, f"runs did not complete:\n{log_path.read_text()[-4000:]}"
            time.sleep(0.2)
    finally:
        dispatcher.send_signal(signal.SIGTERM)
        dispatcher.wait(timeout=60)
    forks = [json.loads(line) for line in report.read_text().splitlines()]
    assert len(forks) >= len(run_ids)
    assert all(fork["threads"] == ["MainThread"] for fork in forks), forks
    text = log_path.read_text()
    assert "DeprecationWarning" not in text and "run_process_crashed" not in text, text[-4000:]
