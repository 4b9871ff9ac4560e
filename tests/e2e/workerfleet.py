"""Worker-service processes (``python -m handlers.dispatcher``) for tests and the bench.

Each worker has its own OUTPUT_DIR (its state folder, spool and logs), as a worker replica on
Railway has its own container disk; all of them share one PostgreSQL, which is the queue.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tests.e2e.webserver import REPO, SCRUBBED_PREFIXES, assert_json_lines


def worker_env(database_url: str, blob_host: str, **extra: str) -> dict[str, str]:
    """DATABASE_ONLY with runs executed by workers, offline engine, documents from ``blob_host``."""
    return {"DATABASE_URL": database_url, "ENABLE_DATABASE_WRITES": "true", "ENABLE_FILE_FALLBACK": "false",
            "RUN_DISPATCH": "workers", "PIPELINE_ENGINE": "offline", "BLOB_ALLOWED_HOSTS": blob_host,
            "BLOB_ALLOW_HTTP": "true", "LOG_LEVEL": "INFO", **extra}


@dataclass
class Worker:
    """One worker process, restartable on the same state folder (or on a wiped one)."""

    name: str
    output_dir: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        """Everything every incarnation of this worker wrote (kept outside OUTPUT_DIR, which may be wiped)."""
        return self.output_dir.parent / f"{self.name}.log"

    def start(self) -> None:
        """Start ``python -m handlers.dispatcher`` and wait until it serves (a hang guard, not a timing check)."""
        full = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
        full.update(self.env, OUTPUT_DIR=str(self.output_dir))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        before = len(self.lines("dispatcher_started"))
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in _reap, after the process ends
        self.process = subprocess.Popen([sys.executable, "-m", "handlers.dispatcher"], cwd=REPO, env=full,
                                        stdout=self._log, stderr=subprocess.STDOUT)
        self.starts += 1
        deadline = time.monotonic() + 120
        while len(self.lines("dispatcher_started")) <= before:
            assert self.process.poll() is None, f"{self.name} exited with {self.process.returncode}"
            assert time.monotonic() < deadline, f"{self.name} did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the worker (its run processes die with it: PR_SET_PDEATHSIG)."""
        assert self.process is not None
        self.process.kill()
        self._reap(10)

    def stop(self) -> int:
        """SIGTERM, as Railway sends it; the worker drains; returns its exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self._reap(60)
        assert_json_lines(self.log_path)
        return code

    def wipe(self) -> None:
        """What a replaced container has: an empty disk (a new identity, no spool, no state)."""
        shutil.rmtree(self.output_dir, ignore_errors=True)

    def identity(self) -> str:
        """The host id this worker's lease owners start with (kept in its state folder)."""
        return (self.output_dir / ".state" / "host-id").read_text().strip()

    def lines(self, message: str | None = None) -> list[dict[str, object]]:
        """Parsed log lines of every incarnation (each must be one JSON object), optionally one message."""
        if not self.log_path.exists():
            return []
        parsed = [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]
        return [line for line in parsed if message is None or line.get("message") == message]

    def _reap(self, seconds: float) -> int:
        assert self.process is not None
        try:
            code = self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None
        return code
