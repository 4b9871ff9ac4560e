"""Validate's checks of the LLM configuration against OpenRouter itself: the key, each model, its limits.

Run only when the stages use OpenRouter. The key is checked with ``GET /key`` (a 401 means a
wrong or revoked key); each of LLM_MODEL and LLM_FALLBACK_MODELS must be listed by ``GET /models``,
support strict structured outputs (``structured_outputs`` and ``response_format`` among its
``supported_parameters``) and have a context long enough for a trend report. Never prints the key.
"""

from __future__ import annotations

import requests

from config.settings import Settings
from handlers.cron_jobs.checks import Checks
from pipeline.openrouter.models import STRUCTURED, ModelCatalogue, ModelInfo
from pipeline.openrouter.responses import SUGGESTED_MODEL

TIMEOUT_S = 10.0
MIN_CONTEXT_TOKENS = 32_000  # below this, most reports are read in many sections
GOOD_CONTEXT_TOKENS = 128_000  # a 300-page report in a few sections


def check_llm(settings: Settings, checks: Checks, *, session: requests.Session | None = None) -> None:
    """The key and every configured model, asked of OpenRouter."""
    if settings.engine != "openrouter" or not settings.openrouter_api_key:
        return
    session = session or requests.Session()
    checks.step("openrouter key")
    _key(settings, checks, session)
    checks.step("openrouter models")
    catalogue = ModelCatalogue(session, settings.openrouter_base_url, settings.openrouter_api_key, timeout_s=TIMEOUT_S)
    try:
        catalogue.load()
    except (requests.RequestException, ValueError) as exc:
        checks.failed("LLM models", f"GET {catalogue.url} failed ({type(exc).__name__}): the models cannot be checked "
                                    "and runs fall back to a small prompt budget; check OPENROUTER_BASE_URL")
        return
    for variable, model in [("LLM_MODEL", settings.llm_model),
                            *(("LLM_FALLBACK_MODELS", m) for m in settings.llm_fallback_models)]:
        _model(checks, variable, model, catalogue.get(model))
    ceiling = settings.llm_max_cost_per_run
    checks.ok("LLM_MAX_COST_PER_RUN", f"${ceiling:g} per run" if ceiling else "unset: no ceiling on a run's cost",
              value=ceiling)


def _key(settings: Settings, checks: Checks, session: requests.Session) -> None:
    url = settings.openrouter_base_url.rstrip("/") + "/key"
    try:
        response = session.get(url, headers={"Authorization": f"Bearer {settings.openrouter_api_key}"},
                               timeout=TIMEOUT_S, allow_redirects=False)
    except requests.RequestException as exc:
        checks.failed("OpenRouter key", f"GET {url} failed ({type(exc).__name__}): check OPENROUTER_BASE_URL and "
                                        "the network")
        return
    if response.status_code == 401:
        checks.failed("OpenRouter key", "OpenRouter refused OPENROUTER_API_KEY (401): copy a valid key from "
                                        "openrouter.ai/keys")
        return
    if response.status_code != 200:
        checks.warning("OpenRouter key", f"GET {url} answered HTTP {response.status_code}; the key could not be "
                                         "checked")
        return
    try:
        data = response.json().get("data") or {}
    except (ValueError, AttributeError):
        data = {}
    remaining = data.get("limit_remaining") if isinstance(data, dict) else None
    if isinstance(remaining, (int, float)) and remaining <= 0:
        checks.failed("OpenRouter key", "the key's credit limit is used up: runs fail with LLM_CREDITS; raise the "
                                        "limit or add credits", value=remaining)
        return
    shown = f", ${remaining:g} left on its limit" if isinstance(remaining, (int, float)) else ""
    checks.ok("OpenRouter key", f"accepted by OpenRouter{shown}", value=remaining)


def _model(checks: Checks, variable: str, model: str, info: ModelInfo | None) -> None:
    name = f"{variable} {model}"
    if info is None:
        checks.failed(name, f"OpenRouter does not list {model!r}: runs would fail with LLM_MODEL_UNSUPPORTED; "
                            f"use an id from openrouter.ai/models, e.g. {SUGGESTED_MODEL}")
        return
    if not info.strict_outputs:
        missing = ", ".join(p for p in STRUCTURED if p not in info.supported_parameters)
        checks.failed(name, f"does not support strict structured outputs (missing {missing}): runs would fail "
                            f"with LLM_MODEL_UNSUPPORTED; choose e.g. {SUGGESTED_MODEL}")
        return
    context = info.context_length or 0
    if context < MIN_CONTEXT_TOKENS:
        checks.failed(name, f"context length {context:,} tokens is under {MIN_CONTEXT_TOKENS:,}: choose a "
                            "long-context model", value=context, threshold=MIN_CONTEXT_TOKENS)
    elif context < GOOD_CONTEXT_TOKENS:
        checks.warning(name, f"context length {context:,} tokens: long reports are read in several sections "
                             "(more calls); a 128k+ model reads them in one", value=context,
                       threshold=GOOD_CONTEXT_TOKENS)
    else:
        checks.ok(name, f"strict structured outputs, context {context:,} tokens", value=context,
                  threshold=MIN_CONTEXT_TOKENS)
