"""Listing, showing and reading a run's results over HTTP and the CLI, in every persistence mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from persistence.records import STAGE_FILES
from tests.e2e.run_modes import MODES, SAMPLES, last_json, mode_env, pipeline_run, run_module
from tests.e2e.webserver import API_TOKEN, ServerFactory, WebServer

pytest_plugins = ["tests.e2e.web_fixtures"]
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def get(server: WebServer, path: str, **params: str) -> requests.Response:
    return requests.get(server.url(path), params=params, headers=AUTH, timeout=30)


@pytest.fixture(params=MODES)
def finished_runs(request, database_url: str, tmp_path: Path, gunicorn_factory: ServerFactory):
    """A server in the mode, one COMPLETED run (done) and, created after it, one FAILED run (bad)."""
    env = mode_env(request.param, database_url, tmp_path / "outputs")
    done = pipeline_run(env, SAMPLES / "flavor-trends-2026.pdf", "mccormick-usa", "done")
    assert done.returncode == 0, done.stderr[-2000:]
    short = tmp_path / "short.txt"
    short.write_text("")  # no text at all: stage 1 refuses it (DOCUMENT_EMPTY)
    bad = pipeline_run(env, short, "decathlon", "bad")
    assert bad.returncode == 1, bad.stdout[-2000:]
    server = gunicorn_factory({"API_TOKEN": API_TOKEN, **env})
    return request.param, env, server


def test_runs_are_listed_newest_first_filtered_and_paginated(finished_runs):
    mode, _, server = finished_runs
    body = get(server, "/api/runs").json()
    assert [r["run_id"] for r in body["runs"]] == ["bad", "done"] and body["next_cursor"] is None
    assert body["source"] == ("files" if mode == "FILE_ONLY" else "database")
    done = body["runs"][1]
    assert (done["status"], done["company_id"], done["progress"], done["current_stage"]) == (
        "COMPLETED", "mccormick-usa", 1.0, None)
    assert [r["run_id"] for r in get(server, "/api/runs", status="failed").json()["runs"]] == ["bad"]
    assert [r["run_id"] for r in get(server, "/api/runs", company_id="mccormick-usa").json()["runs"]] == ["done"]
    assert get(server, "/api/runs", created_after="2999-01-01T00:00:00Z").json()["runs"] == []
    first = get(server, "/api/runs", limit="1").json()
    assert [r["run_id"] for r in first["runs"]] == ["bad"] and first["next_cursor"]
    second = get(server, "/api/runs", limit="1", cursor=first["next_cursor"]).json()
    assert [r["run_id"] for r in second["runs"]] == ["done"] and second["next_cursor"] is None


def test_a_bad_filter_says_which_parameter_is_wrong_and_how_to_fix_it(finished_runs):
    _, _, server = finished_runs
    answer = get(server, "/api/runs", status="DONE", limit="500", created_after="yesterday")
    assert answer.status_code == 400
    fields = answer.json()["fields"]
    assert set(fields) == {"status", "limit", "created_after"} and "COMPLETED" in fields["status"]
    assert requests.get(server.url("/api/runs"), timeout=10).status_code == 401


def test_the_report_cards_and_stages_match_what_the_run_stored(finished_runs, tmp_path):
    mode, _, server = finished_runs
    report = get(server, "/api/pipeline/done/report")
    assert report.status_code == 200 and report.headers["Content-Type"].startswith("text/markdown")
    assert report.text.startswith("# Innovation Intelligence Report") and "done" in report.text
    cards = get(server, "/api/pipeline/done/opportunities").json()
    assert cards["run_id"] == "done" and [c["number"] for c in cards["opportunities"]] == [1, 2, 3, 4, 5]
    stage = get(server, "/api/pipeline/done/stages/2").json()
    assert stage["stage"] == 2 and stage["name"] == "signal amplification" and stage["output"]["signals"]
    if mode != "DATABASE_ONLY":  # the files hold the same outputs
        run_dir = tmp_path / "outputs" / "done"
        assert stage["output"] == json.loads((run_dir / STAGE_FILES[2]).read_text())
        assert report.text == (run_dir / "report.md").read_text()


def test_missing_results_answer_404_with_a_code_that_says_why(finished_runs):
    _, _, server = finished_runs
    not_ready = get(server, "/api/pipeline/bad/report")
    assert not_ready.status_code == 404 and not_ready.json()["code"] == "RESULT_NOT_READY"
    assert "FAILED" in not_ready.json()["error"]
    assert get(server, "/api/pipeline/bad/opportunities").json()["code"] == "RESULT_NOT_READY"
    assert get(server, "/api/pipeline/nobody/stages/1").json()["code"] == "RUN_NOT_FOUND"
    assert get(server, "/api/pipeline/done/stages/6").status_code == 400


def test_the_status_body_has_progress_and_the_running_stage(finished_runs):
    _, _, server = finished_runs
    done = get(server, "/api/pipeline/done/status").json()
    assert (done["progress"], done["current_stage"], done["last_completed_stage"]) == (1.0, None, 5)
    assert done["usage"] is None  # the offline engine calls no LLM
    bad = get(server, "/api/pipeline/bad/status").json()
    assert bad["status"] == "FAILED" and bad["current_stage"] is None and bad["progress"] < 1


def test_the_cli_lists_and_shows_runs(finished_runs):
    _, env, _ = finished_runs
    listed = run_module("handlers.runs", "list", "--status", "COMPLETED", env=env)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert [r["run_id"] for r in last_json(listed)["runs"]] == ["done"]
    shown = run_module("handlers.runs", "show", "done", env=env)
    run = last_json(shown)["run"]
    assert shown.returncode == 0 and run["attempt"] == 1
    assert [s["stage"] for s in run["stages"]] == [1, 2, 3, 4, 5]
    assert all(s["duration_ms"] is not None for s in run["stages"])
    missing = run_module("handlers.runs", "show", "nobody", env=env)
    assert missing.returncode == 1 and last_json(missing)["code"] == "RUN_NOT_FOUND"
    usage = run_module("handlers.runs", "list", "--limit", "0", env=env)
    assert usage.returncode == 2 and last_json(usage)["code"] == "INVALID_FILTER"
