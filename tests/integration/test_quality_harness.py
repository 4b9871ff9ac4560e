"""``python -m bench.quality`` runs in CI: every threshold of issue 10 holds on the shipped samples and brands."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO


def test_the_quality_harness_passes_and_ends_with_a_json_summary():
    done = subprocess.run([sys.executable, "-m", "bench.quality"], cwd=REPO, capture_output=True, text=True,
                          timeout=900, check=False)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0, done.stdout
    assert summary["passed"] is True and summary["brands"] == 4 and summary["junk_kinds"] >= 5
    assert summary["documents"] >= 7  # four samples of ours at least, and their furniture variants
    checks = {c["name"]: c for c in summary["checks"]}
    assert checks["junk refused"]["value"] == 1.0
    assert checks["most card titles shared by two documents"]["value"] <= 1
    assert checks["cards whose evidence supports the title"]["value"] >= 0.9
    assert checks["evidence quotes with markup or furniture"]["value"] == 0
    assert all(c["passed"] for c in checks.values())


def test_a_usage_error_exits_2():
    done = subprocess.run([sys.executable, "-m", "bench.quality", "--no-such-flag"], cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2
