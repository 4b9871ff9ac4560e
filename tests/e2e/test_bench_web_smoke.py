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


def run_bench(module: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", module, "--quick", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=540)
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


@pytest.mark.slow
def test_the_ab_bench_compares_two_variants_of_a_checkout_with_the_floor(pg_server_url):
    summary = run_bench("bench.webhook_ab", "--client", "python", "--env", "three:WEB_CONCURRENCY=3",
                        "two=.", "three=.")
    assert summary["bench"] == "webhook_ab" and set(summary["variants"]) == {"two", "three"}
    assert set(summary["results"]) == {"floor", "two", "three"}
    for row in summary["results"].values():
        assert {"rps", "x_floor_rps", "x_floor_p99", "worker_cpu_ms_per_request", "per_round_rps"} <= row.keys()
        assert row["non_202"] == 0 and len(row["per_round_rps"]) == 1
    assert summary["results"]["floor"]["x_floor_rps"] == 1.0


def test_the_ab_bench_refuses_a_folder_that_is_not_a_checkout(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bench.webhook_ab", f"other={tmp_path}"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "is not a checkout of this repository" in done.stderr
