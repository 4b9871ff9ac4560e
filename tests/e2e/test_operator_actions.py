"""Prune and breaker reset, through the CLI and over HTTP, in every persistence mode; each logged with who asked."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
import requests

from config.settings import Settings
from persistence.factory import build_breaker, build_store
from persistence.records import RunRequest, utcnow
from tests.e2e.run_modes import MODES, SAMPLES, last_json, mode_env, pipeline_run, run_module
from tests.e2e.webserver import API_TOKEN, ServerFactory

pytest_plugins = ["tests.e2e.web_fixtures"]
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
OLD = utcnow() - timedelta(days=40)


def age(mode: str, output_dir: Path, database_url: str, run_id: str) -> None:
    """Make ``run_id`` look as if it ended (or last moved) 40 days ago, wherever the mode keeps it."""
    if mode != "FILE_ONLY":
        with psycopg.connect(database_url) as conn:
            conn.execute('UPDATE "PipelineRun" SET "completedAt" = CASE WHEN "completedAt" IS NULL THEN NULL '
                         'ELSE %s END, "updatedAt" = %s WHERE id = %s', (OLD, OLD, run_id))
    if mode != "DATABASE_ONLY":
        run_file = output_dir / run_id / "run.json"
        doc = json.loads(run_file.read_text())
        doc["updated_at"] = OLD.isoformat()
        if doc.get("completed_at"):
            doc["completed_at"] = OLD.isoformat()
        run_file.write_text(json.dumps(doc))


@pytest.fixture(params=MODES)
def aged_runs(request, database_url: str, tmp_path: Path):
    """old (COMPLETED), old_failed (FAILED) and waiting (QUEUED), all 40 days old; fresh (COMPLETED) now."""
    mode, output_dir = request.param, tmp_path / "outputs"
    env = mode_env(mode, database_url, output_dir)
    for run_id in ("old", "fresh"):
        assert pipeline_run(env, SAMPLES / "convenience-reinvented.md", "decathlon", run_id).returncode == 0
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert pipeline_run(env, empty, "decathlon", "old_failed").returncode == 1
    settings = Settings.from_env(env)
    store = build_store(settings)
    try:
        store.create_run(RunRequest("waiting", "decathlon", "u1", "https://a.public.blob.vercel-storage.com/x.pdf"))
    finally:
        store.close()
    for run_id in ("old", "old_failed", "waiting"):
        age(mode, output_dir, database_url, run_id)
    return mode, env, output_dir


def listed(env: dict[str, str]) -> list[str]:
    return sorted(r["run_id"] for r in last_json(run_module("handlers.runs", "list", env=env))["runs"])


def test_prune_from_the_cli_deletes_only_old_finished_runs_everywhere_the_mode_keeps_them(aged_runs):
    mode, env, output_dir = aged_runs
    unset = run_module("handlers.runs", "prune", env=env)
    assert unset.returncode == 2 and last_json(unset)["code"] == "RETENTION_NOT_SET"
    dry = last_json(run_module("handlers.runs", "prune", "--days", "30", "--dry-run", env=env))
    assert all(ids == ["old", "old_failed"] for ids in dry["pruned"].values()) and dry["dry_run"]
    assert listed(env) == ["fresh", "old", "old_failed", "waiting"]
    done = run_module("handlers.runs", "prune", env={**env, "RUN_RETENTION_DAYS": "30"})
    summary = last_json(done)
    assert done.returncode == 0 and summary["days"] == 30
    expected = {"FILE_ONLY": ["files"], "DUAL_WRITE": ["database", "files"], "DATABASE_ONLY": ["database"]}[mode]
    assert sorted(summary["pruned"]) == expected
    assert all(ids == ["old", "old_failed"] for ids in summary["pruned"].values())
    assert listed(env) == ["fresh", "waiting"]
    assert not (output_dir / "old").exists() and not (output_dir / "old_failed").exists()
    assert run_module("handlers.runs", "show", "old", env=env).returncode == 1
    logged = [json.loads(line) for line in done.stdout.splitlines() if '"operator_action"' in line]
    assert logged and logged[0]["asked_by"].startswith("cli:")


def test_prune_over_http_names_the_operator_in_the_log(aged_runs, gunicorn_factory: ServerFactory):
    _, env, _ = aged_runs
    server = gunicorn_factory({"API_TOKEN": API_TOKEN, **env})
    url = server.url("/api/admin/prune")
    assert requests.post(url, json={"days": 30}, timeout=30).status_code == 401
    assert requests.post(url, json={"days": 0}, headers=AUTH, timeout=30).status_code == 400
    assert requests.post(url, headers=AUTH, timeout=30).json()["code"] == "RETENTION_NOT_SET"
    answer = requests.post(url, json={"days": 30}, headers={**AUTH, "X-Operator": "ann"}, timeout=30)
    assert answer.status_code == 200
    assert all(ids == ["old", "old_failed"] for ids in answer.json()["pruned"].values())
    runs = requests.get(server.url("/api/runs"), headers=AUTH, timeout=30).json()["runs"]
    assert sorted(r["run_id"] for r in runs) == ["fresh", "waiting"]
    actions = [line for line in server.log_lines() if line.get("message") == "operator_action"]
    assert actions[-1]["asked_by"] == "api:ann" and actions[-1]["action"] == "prune"


def test_the_breaker_is_reset_from_the_cli_and_over_http(aged_runs, gunicorn_factory: ServerFactory):
    _, env, _ = aged_runs
    breaker = build_breaker(Settings.from_env(env))
    breaker.trip("test: pretend the schema drifted")
    assert breaker.state() == "open"
    result = run_module("handlers.runs", "reset-breaker", env=env)
    assert result.returncode == 0 and last_json(result)["before"] == "open" and breaker.state() == "closed"
    breaker.trip("test: again")
    server = gunicorn_factory({"API_TOKEN": API_TOKEN, **env})
    answer = requests.post(server.url("/api/admin/breaker/reset"), headers={**AUTH, "X-Operator": "bob"}, timeout=30)
    assert answer.status_code == 200 and answer.json()["after"] == "closed" and breaker.state() == "closed"
    assert any(line.get("asked_by") == "api:bob" for line in server.log_lines())


def test_the_prune_cron_job_uses_run_retention_days(aged_runs):
    _, env, _ = aged_runs
    kept = run_module("handlers.cron", "prune", env=env)
    assert kept.returncode == 0 and "every run is kept" in kept.stdout
    assert listed(env) == ["fresh", "old", "old_failed", "waiting"]
    pruned = run_module("handlers.cron", "prune", env={**env, "RUN_RETENTION_DAYS": "30"})
    summary = last_json(pruned)
    assert pruned.returncode == 0 and summary["status"] == "ok", summary
    assert all(check["value"] == 2 for check in summary["checks"] if check["name"].startswith("pruned"))
    assert listed(env) == ["fresh", "waiting"]
