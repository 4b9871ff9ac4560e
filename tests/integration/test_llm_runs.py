"""Whole runs on the LLM engine against the strict fake: exact call counts, the stage cache, cost, requeue."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import cast

import psycopg
import pytest
import requests

from config.settings import Settings
from handlers.runs import run_status
from persistence.factory import build_store
from persistence.files import FileStore
from persistence.records import STAGE_FILES, RunRequest, RunStatus
from persistence.stage_cache_postgres import PostgresStageCache
from pipeline.bootstrap import bootstrap, build_stage_cache, load_document
from pipeline.openrouter import LlmPolicy, OpenRouterEngine
from pipeline.openrouter.breaker import ProviderBreaker
from pipeline.runner import RunOutcome, RunServices, execute_run
from pipeline.stage_cache import NoCache
from pipeline.stage_schema import validate_stage_output
from tests import fake_openrouter as fake_api
from tests.conftest import REPO
from tests.fake_openrouter import FakeOpenRouter, start_fake_openrouter

SAMPLE = REPO / "data" / "samples" / "convenience-reinvented.md"
FAST = LlmPolicy(connect_timeout_s=2.0, read_timeout_s=1.0, attempts=3, total_s=30.0,
                 first_wait_s=0.01, jitter_s=0.01, max_wait_s=0.05)


@pytest.fixture(name="fake")
def _fake() -> Iterator[FakeOpenRouter]:
    fake = start_fake_openrouter()
    try:
        yield fake
    finally:
        fake.close()


def settings_for(fake: FakeOpenRouter, out: Path, **changes: object) -> Settings:
    base = Settings(enable_database_writes=False, output_dir=out, openrouter_api_key=fake.api_key,
                    openrouter_base_url=fake.base_url, pipeline_engine="openrouter")
    return replace(base, **changes)  # type: ignore[arg-type]


def services_for(settings: Settings, *, no_cache: bool = False) -> RunServices:
    """What bootstrap builds, with a fast retry policy and a breaker without cool-down (no waiting in tests)."""
    engine = OpenRouterEngine.from_settings(settings, policy=FAST, session=requests.Session())
    engine.client.breaker = ProviderBreaker(settings.state_dir / "openrouter-breaker.json", first_cooldown_s=0.0)
    return RunServices(store=build_store(settings), engine=engine, brands_dir=settings.brands_dir,
                       load_document=partial(load_document, settings),
                       stage_cache=NoCache() if no_cache else build_stage_cache(settings),
                       max_cost_usd=settings.llm_max_cost_per_run)


def run(services: RunServices, run_id: str, brand: str, attempt: int = 1) -> RunOutcome:
    request = RunRequest(run_id=run_id, company_id=brand, user_id="test", document_url=str(SAMPLE))
    if attempt == 1:
        services.store.create_run(request)
    return execute_run(services, request, attempt=attempt)


def stages_asked(fake: FakeOpenRouter, since: int = 0) -> list[int]:
    return [r.stage for r in fake.completions[since:]]


def test_a_run_is_five_calls_and_its_usage_is_summed(fake, tmp_path):
    outcome = run(services_for(settings_for(fake, tmp_path)), "r1", "decathlon")

    assert outcome.status is RunStatus.COMPLETED and stages_asked(fake) == [1, 2, 3, 4, 5]
    assert outcome.usage is not None and sorted(outcome.usage) == [1, 2, 3, 4, 5]
    total = outcome.total_usage
    assert total is not None and total.calls == 5 and total.cost_usd > 0
    assert total.cost_usd == pytest.approx(sum(u.cost_usd for u in outcome.usage.values()))
    for stage, name in STAGE_FILES.items():
        validate_stage_output(stage, json.loads((tmp_path / "r1" / name).read_text()))


def test_a_second_brand_on_the_same_document_costs_two_calls(fake, tmp_path):
    services = services_for(settings_for(fake, tmp_path))
    first = run(services, "r1", "decathlon")
    second = run(services, "r2", "mccormick-usa")

    assert first.status is second.status is RunStatus.COMPLETED
    assert stages_asked(fake) == [1, 2, 3, 4, 5, 4, 5]
    assert first.cache_hits == () and second.cache_hits == (1, 2, 3)
    assert second.total_usage is not None and second.total_usage.calls == 2
    for name in list(STAGE_FILES.values())[:3]:  # the reused stages are the first run's, exactly
        assert (tmp_path / "r1" / name).read_text() == (tmp_path / "r2" / name).read_text()
    assert json.loads((tmp_path / "r2" / STAGE_FILES[4]).read_text())["brand_id"] == "mccormick-usa"


def test_no_cache_recomputes_every_stage(fake, tmp_path):
    settings = settings_for(fake, tmp_path)
    run(services_for(settings), "r1", "decathlon")
    again = run(services_for(settings, no_cache=True), "r2", "decathlon")

    assert again.cache_hits == () and stages_asked(fake) == [1, 2, 3, 4, 5] * 2


def test_another_model_does_not_reuse_the_cache(fake, tmp_path):
    run(services_for(settings_for(fake, tmp_path)), "r1", "decathlon")
    other = run(services_for(settings_for(fake, tmp_path, llm_model="openai/gpt-4.1-mini")), "r2", "decathlon")

    assert other.cache_hits == () and len(fake.completions) == 10


def test_a_long_outage_requeues_the_run_which_resumes_without_redoing_finished_stages(fake, tmp_path):
    services = services_for(settings_for(fake, tmp_path))
    fake.script(fake_api.valid(), fake_api.valid(), *[fake_api.status(503)] * FAST.attempts)

    first = run(services, "r1", "decathlon")

    assert first.interrupted and first.retry_in_s is not None and first.error is None
    assert first.status is RunStatus.PROCESSING  # not FAILED: the dispatcher requeues it
    assert sorted(services.store.load_stage_outputs("r1")) == [1, 2]
    store = cast(FileStore, services.store)  # FILE_ONLY: the queue is the file store's
    assert store.requeue("r1", 1, "provider down")  # what the dispatcher does on exit 75
    state = store.get_run("r1")
    assert state is not None and state.status is RunStatus.QUEUED
    asked_before = len(fake.completions)

    claim = store.claim("r1", "test-owner", 60)
    assert claim is not None
    second = run(services, "r1", "decathlon", attempt=claim.attempt)

    assert second.status is RunStatus.COMPLETED
    assert stages_asked(fake, asked_before) == [3, 4, 5]  # zero calls for the finished stages


def test_a_resumed_run_makes_no_call_for_its_finished_stages(fake, tmp_path):
    services = services_for(settings_for(fake, tmp_path), no_cache=True)
    fake.script(fake_api.valid(), fake_api.valid(), fake_api.valid(), fake_api.status(401))
    failed = run(services, "r1", "decathlon")
    assert failed.status is RunStatus.FAILED and failed.error is not None and failed.error.code == "LLM_AUTH"
    asked_before = len(fake.completions)

    resumed = run(services, "r1", "decathlon", attempt=2)

    assert resumed.status is RunStatus.COMPLETED and stages_asked(fake, asked_before) == [4, 5]


def test_the_cost_ceiling_stops_the_run_and_keeps_finished_stages(fake, tmp_path):
    services = services_for(settings_for(fake, tmp_path, llm_max_cost_per_run=0.011))

    outcome = run(services, "r1", "decathlon")

    assert outcome.status is RunStatus.FAILED and outcome.error is not None
    assert outcome.error.code == "LLM_BUDGET_EXCEEDED" and "LLM_MAX_COST_PER_RUN" in outcome.error.message
    kept = services.store.load_stage_outputs("r1")
    assert kept and len(fake.completions) == len(kept)  # every call made became a kept stage
    assert outcome.total_usage is not None and outcome.total_usage.cost_usd <= 0.011


# ---- the CLI, as a subprocess -----------------------------------------------------------------

def _cli(fake: FakeOpenRouter, out: Path, run_id: str, brand: str, *extra: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_URL", "ENABLE_", "OPENROUTER", "PIPELINE_", "LLM_", "REPORT_"))}
    env.update(OPENROUTER_API_KEY=fake.api_key, OPENROUTER_BASE_URL=fake.base_url, OUTPUT_DIR=str(out),
               ENABLE_DATABASE_WRITES="false", LOG_LEVEL="INFO")
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", str(SAMPLE.relative_to(REPO)), "--brand", brand,
         "--engine", "openrouter", "--run-id", run_id, *extra],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert fake.api_key not in result.stdout + result.stderr
    summary: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return summary


def test_the_cli_reports_usage_and_reuses_stages_for_a_second_brand(fake, tmp_path):
    first = _cli(fake, tmp_path, "c1", "decathlon")
    second = _cli(fake, tmp_path, "c2", "mccormick-usa")
    third = _cli(fake, tmp_path, "c3", "mccormick-usa", "--no-cache")

    assert first["status"] == second["status"] == third["status"] == "COMPLETED"
    assert stages_asked(fake) == [1, 2, 3, 4, 5, 4, 5, 1, 2, 3, 4, 5]
    assert (first["cache_hits"], second["cache_hits"], third["cache_hits"]) == ([], [1, 2, 3], [])
    usage = first["usage"]
    assert isinstance(usage, dict) and usage["calls"] == 5 and usage["cost_usd"] > 0
    assert all(r.body["model"] == "google/gemini-2.5-flash" for r in fake.completions)
    assert (tmp_path / "c2" / "report.md").read_text().startswith("# ")


# ---- the stage cache in PostgreSQL ------------------------------------------------------------

@pytest.mark.parametrize("file_fallback", [False, True], ids=["DATABASE_ONLY", "DUAL_WRITE"])
def test_the_stage_cache_lives_in_the_table_per_mode(fake, tmp_path, database_url, file_fallback):
    settings = settings_for(fake, tmp_path, enable_database_writes=True, database_url=database_url,
                            database_url_non_pooling=database_url, enable_file_fallback=file_fallback)
    services = services_for(settings)
    try:
        run(services, "p1", "decathlon")
        second = run(services, "p2", "mccormick-usa")
    finally:
        services.store.close()

    assert second.cache_hits == (1, 2, 3) and stages_asked(fake) == [1, 2, 3, 4, 5, 4, 5]
    with psycopg.connect(database_url) as conn:
        rows = conn.execute('SELECT stage, model FROM "StageCache" ORDER BY stage').fetchall()
    assert rows == [(1, "google/gemini-2.5-flash"), (2, "google/gemini-2.5-flash"), (3, "google/gemini-2.5-flash")]
    assert (tmp_path / ".stage-cache").is_dir() is file_fallback


def test_a_cache_that_cannot_be_reached_is_a_miss_not_a_failure(fake, tmp_path):
    settings = settings_for(fake, tmp_path, enable_database_writes=True, enable_file_fallback=True,
                            database_url="postgresql://postgres@127.0.0.1:1/nowhere")
    services = replace(services_for(settings_for(fake, tmp_path)),
                       stage_cache=PostgresStageCache(settings.database_url or ""))

    outcome = run(services, "r1", "decathlon")

    assert outcome.status is RunStatus.COMPLETED and stages_asked(fake) == [1, 2, 3, 4, 5]


# ---- usage on record: run.json, the run row, the status API -----------------------------------

def test_run_json_names_engine_model_usage_per_stage_and_the_cached_stages(fake, tmp_path):
    services = services_for(settings_for(fake, tmp_path))
    first = run(services, "r1", "decathlon")
    run(services, "r2", "mccormick-usa")

    doc = json.loads((tmp_path / "r1" / "run.json").read_text())
    assert (doc["engine"], doc["model"]) == ("openrouter", "google/gemini-2.5-flash")
    assert sorted(doc["usage"]["stages"]) == ["1", "2", "3", "4", "5"]
    assert first.total_usage is not None and doc["usage"]["total"] == first.total_usage.as_dict()
    assert doc["cache"] == {"stages": []}
    head = (tmp_path / "r1" / "report.md").read_text().splitlines()[:5]
    assert "- **Engine:** openrouter, model `google/gemini-2.5-flash`" in head
    second = json.loads((tmp_path / "r2" / "run.json").read_text())
    assert second["cache"] == {"stages": [1, 2, 3]} and second["usage"]["total"]["calls"] == 2
    body = run_status(services.store, "r2")
    assert body["usage"] == {k: second["usage"]["total"][k]
                             for k in ("calls", "prompt_tokens", "completion_tokens", "cost_usd")}


def test_usage_adds_up_over_attempts_and_the_ceiling_counts_earlier_attempts(fake, tmp_path):
    services = services_for(settings_for(fake, tmp_path))
    fake.script(fake_api.valid(), fake_api.valid(), *[fake_api.status(503)] * FAST.attempts)
    first = run(services, "r1", "decathlon")
    assert first.interrupted and first.total_usage is not None
    spent = first.total_usage.cost_usd
    store = cast(FileStore, services.store)
    assert store.requeue("r1", 1, "provider down")

    capped = services_for(settings_for(fake, tmp_path, llm_max_cost_per_run=spent + 0.0001))
    asked = len(fake.completions)
    refused = run(capped, "r1", "decathlon", attempt=2)
    assert refused.error is not None and refused.error.code == "LLM_BUDGET_EXCEEDED"
    assert len(fake.completions) == asked  # the earlier attempt's spend already fills the ceiling

    resumed = run(services, "r1", "decathlon", attempt=3)
    assert resumed.status is RunStatus.COMPLETED
    doc = json.loads((tmp_path / "r1" / "run.json").read_text())
    assert doc["usage"]["total"]["calls"] == 5
    assert all(doc["usage"]["stages"][n]["calls"] == 1 for n in "12345")


def test_an_offline_run_names_its_engine_and_has_no_usage(tmp_path):
    settings = Settings(enable_database_writes=False, output_dir=tmp_path, pipeline_engine="offline")
    app = bootstrap(settings, quiet=True)
    request = RunRequest(run_id="off", company_id="decathlon", user_id="test", document_url=str(SAMPLE))
    app.services.store.create_run(request)
    outcome = execute_run(app.services, request, attempt=1)

    doc = json.loads((tmp_path / "off" / "run.json").read_text())
    assert outcome.usage is None and (doc["engine"], doc["model"], doc["usage"], doc["cache"]) == (
        "offline", None, None, None)
    assert run_status(app.services.store, "off")["usage"] is None


def test_the_run_row_carries_usage_columns(fake, tmp_path, database_url):
    settings = settings_for(fake, tmp_path, enable_database_writes=True, database_url=database_url,
                            database_url_non_pooling=database_url, enable_file_fallback=False)
    services = services_for(settings)
    try:
        first = run(services, "d1", "decathlon")
        run(services, "d2", "mccormick-usa")
        body = run_status(services.store, "d2")
    finally:
        services.store.close()

    with psycopg.connect(database_url) as conn:
        rows = conn.execute('SELECT id, engine, model, "llmCalls", "promptTokens", "completionTokens", '
                            '"costUsd", "cachedStages", usage FROM "PipelineRun" ORDER BY id').fetchall()
    (d1, engine, model, calls, prompt, completion, cost, cached, usage), d2 = rows
    total = first.total_usage
    assert total is not None and (engine, model, calls) == ("openrouter", "google/gemini-2.5-flash", 5)
    assert (prompt, completion, float(cost)) == (total.prompt_tokens, total.completion_tokens,
                                                 pytest.approx(total.cost_usd))
    assert cached == [] and sorted(usage["stages"]) == ["1", "2", "3", "4", "5"]
    assert d2[3] == 2 and d2[7] == [1, 2, 3]
    assert body["usage"] is not None and body["usage"]["calls"] == 2
