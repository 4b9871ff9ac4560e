"""``cron validate`` checks the LLM configuration against (a strict fake of) OpenRouter: key, models, limits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fake_openrouter import FakeOpenRouter, start_fake_openrouter
from tests.integration.test_cron import SECRETS, checks_by_name, cron


@pytest.fixture(name="fake")
def _fake() -> Iterator[FakeOpenRouter]:
    fake = start_fake_openrouter()
    try:
        yield fake
    finally:
        fake.close()


def _env(fake: FakeOpenRouter, **extra: str) -> dict[str, str]:
    return {**SECRETS, "ENABLE_DATABASE_WRITES": "false", "OPENROUTER_API_KEY": fake.api_key,
            "OPENROUTER_BASE_URL": fake.base_url, **extra}


def test_a_good_configuration_passes_every_llm_check(fake, tmp_path):
    code, summary, output = cron("validate", output_dir=tmp_path,
                                 env=_env(fake, LLM_FALLBACK_MODELS="openai/gpt-4.1-mini",
                                          LLM_MAX_COST_PER_RUN="0.50"))

    checks = checks_by_name(summary)
    assert checks["OpenRouter key"]["status"] == "ok"
    assert checks["LLM_MODEL google/gemini-2.5-flash"]["status"] == "ok"
    assert checks["LLM_FALLBACK_MODELS openai/gpt-4.1-mini"]["status"] == "ok"
    assert checks["LLM_MAX_COST_PER_RUN"]["value"] == 0.5
    assert fake.api_key not in output


def test_a_wrong_key_an_unknown_model_and_one_without_structured_outputs_fail(fake, tmp_path):
    fake.set_model("old/model", structured=False)
    fake.set_model("tiny/model", context_length=8_192)
    code, summary, _ = cron("validate", output_dir=tmp_path,
                            env=_env(fake, OPENROUTER_API_KEY="sk-or-v1-wrong", LLM_MODEL="nobody/nothing",
                                     LLM_FALLBACK_MODELS="old/model,tiny/model"))

    checks = checks_by_name(summary)
    assert code == 1
    assert checks["OpenRouter key"]["status"] == "failed" and "401" in checks["OpenRouter key"]["message"]
    assert "does not list" in checks["LLM_MODEL nobody/nothing"]["message"]
    assert "structured outputs" in checks["LLM_FALLBACK_MODELS old/model"]["message"]
    assert checks["LLM_FALLBACK_MODELS tiny/model"]["status"] == "failed"
    assert checks["LLM_FALLBACK_MODELS tiny/model"]["value"] == 8_192
