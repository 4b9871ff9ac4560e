"""``python -m pipeline run`` with DATABASE_URL: the rows the frontend reads, and files that match them."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from persistence.records import STAGE_FILES
from tests.integration.test_cli import SAMPLES, run_cli, summary


def rows(url: str, run_id: str) -> dict:
    with psycopg.connect(url) as conn:
        run = conn.execute(
            'SELECT status, "currentStage", "stage1Output", "stage2Output", "stage3Output", "stage4Output", '
            '"fullReportMarkdown", "completedAt", attempt FROM "PipelineRun" WHERE id = %s', (run_id,)).fetchone()
        stages: dict[int, Any] = dict(conn.execute(
            'SELECT "stageNumber", output FROM "StageOutput" WHERE "runId" = %s ORDER BY 1', (run_id,)).fetchall())
        cards = conn.execute(
            'SELECT number, title, content FROM "OpportunityCard" WHERE "runId" = %s ORDER BY 1', (run_id,)).fetchall()
    return {"run": run, "stages": stages, "cards": cards}


@pytest.mark.parametrize("mode", ["DATABASE_ONLY", "DUAL_WRITE"])
def test_a_cli_run_with_a_database_leaves_the_rows_the_frontend_reads(mode, database_url, output_dir):
    env = {"DATABASE_URL": database_url, "ENABLE_FILE_FALLBACK": "true" if mode == "DUAL_WRITE" else "false"}
    result = run_cli("run", str(SAMPLES / "flavor-trends-2026.pdf"), "--brand", "mccormick-usa",
                     "--run-id", "db1", output_dir=output_dir, env=env)
    assert result.returncode == 0, result.stderr
    assert summary(result)["mode"] == mode and summary(result)["status"] == "COMPLETED"
    got = rows(database_url, "db1")
    status, current, s1, s2, s3, s4, report, completed_at, attempt = got["run"]
    assert (status, current, attempt) == ("COMPLETED", 5, 1) and completed_at is not None
    assert all(isinstance(s, dict) and s for s in (s1, s2, s3, s4))
    assert report.startswith("# Innovation Intelligence Report") and "db1" in report
    assert sorted(got["stages"]) == [1, 2, 3, 4, 5] and [c[0] for c in got["cards"]] == [1, 2, 3, 4, 5]
    assert (s1, s2, s3, s4) == tuple(got["stages"][n] for n in (1, 2, 3, 4))

    run_dir = output_dir / "db1"
    if mode == "DATABASE_ONLY":
        assert not run_dir.exists()  # database only: no output files
        return
    for stage, name in STAGE_FILES.items():  # the files match the rows
        assert json.loads((run_dir / name).read_text()) == got["stages"][stage]
    assert (run_dir / "report.md").read_text() == report
    card_titles = [c[1] for c in got["cards"]]
    opportunities = json.loads((run_dir / STAGE_FILES[5]).read_text())["opportunities"]
    assert all(o["title"] in title for o, title in zip(opportunities, card_titles, strict=True))


def test_a_cli_run_completes_from_files_when_the_database_is_refused_and_replay_fills_the_rows(
        database_url, output_dir, unused_tcp_url):
    env = {"DATABASE_URL": unused_tcp_url, "ENABLE_FILE_FALLBACK": "false"}
    result = run_cli("run", str(SAMPLES / "convenience-reinvented.md"), "--brand", "decathlon",
                     "--run-id", "outage", output_dir=output_dir, env=env)
    assert result.returncode == 0, result.stderr
    assert summary(result)["status"] == "COMPLETED"
    assert any(output_dir.joinpath(".spool").glob("*.json"))  # the writes wait in the spool
    assert rows(database_url, "outage")["run"] is None

    # The database is back (the real one): replay moves every write in, once.
    replay = run_cli_module("handlers.cron", "replay", env={"DATABASE_URL": database_url,
                                                             "ENABLE_FILE_FALLBACK": "false"},
                            output_dir=output_dir)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    got = rows(database_url, "outage")
    assert got["run"][0] == "COMPLETED" and sorted(got["stages"]) == [1, 2, 3, 4, 5] and len(got["cards"]) == 5
    assert not any(output_dir.joinpath(".spool").glob("*.json"))


def run_cli_module(module: str, *args: str, env: dict[str, str], output_dir):
    """Run ``python -m MODULE ARGS`` like run_cli does for the pipeline."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    base = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "ENABLE_", "OPENROUTER"))}
    base.update({"OUTPUT_DIR": str(output_dir)}, **env)
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=base, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture
def unused_tcp_url() -> str:
    """A PostgreSQL URL on a local port where nothing listens: connections are refused at once."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"postgresql://postgres@127.0.0.1:{port}/nowhere"
