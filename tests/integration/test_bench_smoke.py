"""The persistence benchmarks run end to end with --quick and end with their JSON summary line.

No figure is asserted: timings belong to the machine, and bench/README.md reports them. Each
script creates and drops its own bench_<random> database on the test server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

# The final JSON line of each benchmark: its top-level keys, and the keys of one nested table.
EXPECTED = {
    "store_writes": ({"benchmark", "writes", "payload_bytes", "latency_ms", "ratios", "parts_ms"},
                     "ratios", {"DATABASE_ONLY", "DUAL_WRITE", "FILE_ONLY"}),
    "outage_run": ({"benchmark", "runs", "connect_s", "deadline_s", "break_s", "file_only_median_s", "scenarios",
                    "blackhole_connections"},
                   "scenarios", {"FILE_ONLY", "DATABASE_ONLY healthy", "DATABASE_ONLY refused",
                                 "DATABASE_ONLY blackholed"}),
    "replay": ({"benchmark", "records", "replay_records_per_s", "floor_records_per_s", "ratio", "aim", "met",
                "replay", "peak_rss_mib", "rss_before_replay_mib", "spool_records_per_s", "no_duplicates", "counts"},
               "counts", {"runs", "completed", "stage_rows", "cards", "spool_left", "dead"}),
    "workers": ({"benchmark", "runs", "workers", "cpus", "seconds", "runs_per_s", "ratio"},
                "runs_per_s", {"1", "3"}),
    "llm": ({"benchmark", "aim", "latency_s", "repeats", "pages", "sections", "map_concurrency", "scenarios"},
            "scenarios", {"run", "second_brand", "long_report"}),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_quick_benchmark_exits_0_with_its_json_summary(name: str, pg_server_url: str) -> None:
    env = {**os.environ, "BENCH_DATABASE_URL": pg_server_url}
    done = subprocess.run([sys.executable, "-m", f"bench.{name}", "--quick"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:] or done.stdout[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    top, nested, keys = EXPECTED[name]
    assert top <= summary.keys()
    assert summary["benchmark"] == name
    assert keys <= summary[nested].keys()
    if name == "llm":  # call counts are exact, whatever the machine: 5, 2 (cached 1-3), map + 5
        calls = {k: v["calls"] for k, v in summary["scenarios"].items()}
        assert calls == {"run": 5, "second_brand": 2, "long_report": summary["sections"] + 5}
        assert summary["sections"] >= 2
    if name == "replay":
        assert summary["no_duplicates"] is True  # a correctness check, not a timing
