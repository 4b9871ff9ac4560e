"""The chaos suite in its CI size: both modes, a fixed seed, a few minutes (bench/chaos.py has the full form).

It runs ``python -m bench.chaos`` as CI would on every build: real gunicorn and dispatcher, a
private PostgreSQL cluster SIGKILLed and blackholed through the fault proxy, run and web
processes SIGKILLed, the output tmpfs filled and freed, then reap and replay. The suite's own
checks (every run COMPLETED, no duplicates, database = files, executions within attempts) decide.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.mark.parametrize(("mode", "seed"), [("dual", 11), ("database", 12)])
def test_the_ci_sized_chaos_run_converges(mode: str, seed: int) -> None:
    result = subprocess.run([sys.executable, "-m", "bench.chaos", "--runs", "8", "--seed", str(seed), "--mode", mode,
                             "--faults", "16"], cwd=REPO, capture_output=True, text=True, timeout=580)
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert result.returncode == 0 and summary["ok"], result.stdout[-6000:] + result.stderr[-3000:]
    assert summary["runs_completed"] == 8 and sum(summary["faults"].values()) > 0
    if mode == "dual":
        assert summary["stages_compared"] == 8 * 5
