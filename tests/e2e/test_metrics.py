"""GET /metrics: run figures from the store and webhook answers summed over gunicorn workers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.run_modes import MODES, SAMPLES, mode_env, pipeline_run
from tests.e2e.webserver import API_TOKEN, WEBHOOK_SECRET, ServerFactory, WebServer, payload, post_run

pytest_plugins = ["tests.e2e.web_fixtures"]
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
USAGE = {"stages": {"1": {"calls": 1, "prompt_tokens": 1200, "completion_tokens": 300, "cost_usd": 0.002}},
         "total": {"calls": 5, "prompt_tokens": 9000, "completion_tokens": 2500, "cost_usd": 0.0125}}


def scrape(server: WebServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of one scrape, by (name, sorted labels)."""
    answer = requests.get(server.url("/metrics"), headers=AUTH, timeout=30)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


@pytest.fixture(params=MODES)
def server_with_runs(request, database_url: str, tmp_path: Path, gunicorn_factory: ServerFactory):
    env = mode_env(request.param, database_url, tmp_path / "outputs")
    assert pipeline_run(env, SAMPLES / "convenience-reinvented.md", "decathlon", "done").returncode == 0
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert pipeline_run(env, empty, "decathlon", "bad").returncode == 1
    if request.param == "FILE_ONLY":  # run.json "usage" as an LLM run records it (contract §10)
        run_file = tmp_path / "outputs" / "done" / "run.json"
        run_file.write_text(json.dumps({**json.loads(run_file.read_text()), "usage": USAGE}))
    return request.param, gunicorn_factory({"API_TOKEN": API_TOKEN, "WEBHOOK_SECRET": WEBHOOK_SECRET, **env})


def test_metrics_count_runs_stages_attempts_and_webhook_answers_across_workers(server_with_runs):
    mode, server = server_with_runs
    for n in range(3):
        assert post_run(server, payload(f"x{n}"), secret="whsec_" + "A" * 32).status_code == 401
    for n in range(2):
        assert post_run(server, payload(f"y{n}", company_id="no-such-brand")).status_code == 400
    # Each scrape may be answered by either worker: every one must see all five answers.
    for _ in range(6):
        got = scrape(server)
        assert got[("pipeline_webhook_responses_total", (("code", "401"),))] == 3
        assert got[("pipeline_webhook_responses_total", (("code", "400"),))] == 2
    assert got[("pipeline_store_up", ())] == 1
    assert got[("pipeline_runs", (("status", "COMPLETED"),))] == 1
    assert got[("pipeline_runs", (("status", "FAILED"),))] == 1
    assert got[("pipeline_queue_depth", ())] == 0 and got[("pipeline_oldest_queued_run_age_seconds", ())] == 0
    assert got[("pipeline_run_attempts_total", ())] == 2
    for stage in "12345":  # the failed run finished no stage
        assert got[("pipeline_stage_duration_seconds_count", (("stage", stage),))] == 1
        assert got[("pipeline_stage_duration_seconds_bucket", (("le", "+Inf"), ("stage", stage)))] == 1
    assert got[("pipeline_circuit_breaker_state", (("state", "closed"),))] == 1
    assert got[("pipeline_circuit_breaker_state", (("state", "open"),))] == 0
    assert got[("pipeline_spool_backlog_records", ())] == 0
    tokens = {t: got[("gen_ai_client_token_usage_tokens_total", (("gen_ai_token_type", t),))]
              for t in ("input", "output")}
    cost = got[("pipeline_llm_cost_usd_total", ())]
    if mode == "FILE_ONLY":
        assert tokens == {"input": 9000, "output": 2500} and cost == pytest.approx(0.0125)
        assert got[("gen_ai_client_operations_total", ())] == 5
    else:
        assert tokens == {"input": 0, "output": 0} and cost == 0


def test_metrics_need_the_token(server_with_runs):
    _, server = server_with_runs
    assert requests.get(server.url("/metrics"), timeout=10).status_code == 401
