"""The issue-11 benchmarks run end to end (tiny sizes): each prints its JSON summary last."""

from __future__ import annotations

import json

import pytest

from bench import poison, slow_clients


def test_slow_clients_bench_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert slow_clients.main(["--clients", "20", "--requests", "5", "--skip-gthread"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (ours,) = summary["results"]
    assert ours["with_slow_clients"]["timeouts"] == 0 and ours["slow_connections"]["opened"] >= 20


def test_poison_bench_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert poison.main(["--case", "page_references"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    outcomes = {case["case"]: case["outcome"] for case in summary["cases"]}
    assert outcomes["page_references"] == "DOCUMENT_TOO_COMPLEX" and len(outcomes) == 2
