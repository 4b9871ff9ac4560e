"""The LLM engine's variables: parsed once, every problem named with how to fix it."""

from __future__ import annotations

import pytest

from config.errors import ConfigError
from config.settings import Settings


def test_llm_variables_are_parsed():
    settings = Settings.from_env({"LLM_FALLBACK_MODELS": "openai/gpt-4.1-mini, anthropic/claude-sonnet-4.5",
                                  "LLM_MAX_COST_PER_RUN": "$0.50", "LLM_STAGE_CACHE": "off",
                                  "REPORT_LANGUAGE": "French", "OPENROUTER_APP_URL": "https://app.example",
                                  "OPENROUTER_APP_TITLE": "Acme Insights"})
    assert settings.llm_fallback_models == ("openai/gpt-4.1-mini", "anthropic/claude-sonnet-4.5")
    assert settings.llm_max_cost_per_run == 0.5 and settings.llm_stage_cache is False
    assert (settings.report_language, settings.openrouter_app_url, settings.openrouter_app_title) == (
        "French", "https://app.example", "Acme Insights")


def test_defaults_have_no_ceiling_and_the_cache_on():
    settings = Settings.from_env({})
    assert settings.llm_model == "google/gemini-2.5-flash" and settings.llm_fallback_models == ()
    assert settings.llm_max_cost_per_run is None and settings.llm_stage_cache is True
    assert settings.report_language is None and settings.openrouter_app_title == "Innovation Pipeline Runner"


@pytest.mark.parametrize("name, value, told", [
    ("LLM_FALLBACK_MODELS", "gpt4", "not an OpenRouter model id"),
    ("LLM_MAX_COST_PER_RUN", "-1", "positive amount in USD"),
    ("LLM_MAX_COST_PER_RUN", "nan", "positive amount in USD"),
    ("LLM_MAX_COST_PER_RUN", "lots", "positive amount in USD"),
    ("LLM_STAGE_CACHE", "sometimes", "is not a boolean"),
    ("OPENROUTER_APP_URL", "app.example", "must be a URL"),
])
def test_bad_values_are_named(name, value, told):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})
    assert any(p.startswith(name) and told in p for p in caught.value.problems)
