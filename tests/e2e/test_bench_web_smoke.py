"""The web and dispatch benchmarks run end to end (``--quick``) and end with their JSON summary.

Scripts, not tests of speed: only the exit code and the keys of the last stdout line are checked.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

WEBHOOK_FIGURES = {"requests", "seconds", "rps", "p50_ms", "p99_ms", "non_202", "recorded",
                   "worker_cpu_ms_per_request"}


def run_bench(module: str) -> dict:
    done = subprocess.run([sys.executable, "-m", module, "--quick"], cwd=REPO, capture_output=True, text=True,
                          timeout=540)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_the_webhook_bench_measures_ours_against_the_floor_in_both_modes(pg_server_url):
    summary = run_bench("bench.webhook")
    assert {"bench", "requests", "concurrency", "client", "blob", "floor", "file_only", "database_only",
            "ratios", "per_round"} <= summary.keys()
    for server in ("floor", "file_only", "database_only"):
        assert summary[server].keys() >= WEBHOOK_FIGURES
        assert summary[server]["non_202"] == 0
    assert set(summary["ratios"]) == {"file_only", "database_only"}
    assert all(set(ratio) == {"throughput", "p99"} for ratio in summary["ratios"].values())


@pytest.mark.slow
def test_the_dispatch_bench_reports_stage_one_latency_floors_and_memory(pg_server_url):
    summary = run_bench("bench.dispatch")
    assert {"bench", "runs", "floors", "after_fork", "summary", "modes"} <= summary.keys()
    assert {"python -c pass", "python -c 'import <our stack>'", "fork + _exit + waitpid (stack imported)"} \
        <= summary["floors"].keys()
    for mode in ("file", "database"):
        assert {"stage1_median_ms", "stage1_p90_ms", "x_fork_floor", "x_import_floor"} \
            <= summary["summary"][mode].keys()
        memory = summary["modes"][mode]["memory"]
        assert {"web_worker", "dispatcher", "run_held", "run_peak_hwm"} <= memory.keys()
        assert {"rss", "hwm", "pss", "shared", "private"} <= memory["dispatcher"].keys()
