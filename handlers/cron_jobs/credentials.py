"""Validate's checks of the secrets and the LLM settings: present, well-shaped, never printed.

Only lengths, prefixes and hosts are ever reported; a secret's value never reaches a message,
a log line or the summary.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import urlsplit

from config.settings import Settings
from handlers.cron_jobs.checks import Checks

WHSEC_PREFIX = "whsec_"
MIN_WHSEC_BYTES = 24  # decoded key of a whsec_ secret
MIN_RAW_SECRET_CHARS = 32
MIN_API_TOKEN_CHARS = 32
OPENROUTER_KEY_PREFIX = "sk-or-"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
GENERATE = "generate one with `python -c \"import secrets; print(secrets.token_urlsafe(32))\"`"


def check_webhook_secret(settings: Settings, checks: Checks) -> None:
    """WEBHOOK_SECRET: whsec_ + base64 of at least 24 bytes, or a raw secret of at least 32 characters."""
    name = "WEBHOOK_SECRET"
    secret = settings.webhook_secret
    if not secret:
        checks.failed(name, "unset: the web service answers POST /run with 503 until it is set to the secret the "
                            f"frontend signs with (Standard Webhooks, whsec_<base64> or raw); {GENERATE}")
        return
    if secret.startswith(WHSEC_PREFIX):
        try:
            key = base64.b64decode(secret[len(WHSEC_PREFIX):], validate=True)
        except (binascii.Error, ValueError):
            checks.failed(name, "starts with whsec_ but the rest is not valid base64: copy the secret again "
                                "from the sender's dashboard")
            return
        if len(key) < MIN_WHSEC_BYTES:
            checks.failed(name, f"whsec_ secret decodes to {len(key)} bytes, fewer than {MIN_WHSEC_BYTES}: "
                                "a short HMAC key can be guessed; generate a new secret at the sender",
                          value=len(key), threshold=MIN_WHSEC_BYTES)
            return
        checks.ok(name, f"whsec_ secret set ({len(key)}-byte key)", value=len(key), threshold=MIN_WHSEC_BYTES)
        return
    if len(secret) < MIN_RAW_SECRET_CHARS:
        checks.failed(name, f"raw secret of {len(secret)} characters, fewer than {MIN_RAW_SECRET_CHARS}: "
                            f"use a longer one (set the same value at the frontend); {GENERATE}",
                      value=len(secret), threshold=MIN_RAW_SECRET_CHARS)
        return
    checks.ok(name, f"raw secret set ({len(secret)} characters)", value=len(secret), threshold=MIN_RAW_SECRET_CHARS)


def check_api_token(settings: Settings, checks: Checks) -> None:
    """API_TOKEN: set and at least 32 characters."""
    token = settings.api_token
    if not token:
        checks.failed("API_TOKEN", "unset: GET /api/pipeline/<run_id>/status answers 503 until it is set (the "
                                   f"frontend sends it as 'Authorization: Bearer …'); {GENERATE}")
        return
    if len(token) < MIN_API_TOKEN_CHARS:
        checks.failed("API_TOKEN", f"{len(token)} characters, fewer than {MIN_API_TOKEN_CHARS}: a short bearer token "
                                   f"can be guessed; {GENERATE} and set it at the frontend too",
                      value=len(token), threshold=MIN_API_TOKEN_CHARS)
        return
    checks.ok("API_TOKEN", f"set ({len(token)} characters)", value=len(token), threshold=MIN_API_TOKEN_CHARS)


def check_openrouter(settings: Settings, checks: Checks) -> None:
    """The OpenRouter key, base URL and model, when the stages use that engine."""
    if settings.engine != "openrouter":
        note = " (OPENROUTER_API_KEY is set but unused)" if settings.openrouter_api_key else ""
        checks.ok("engine", f"offline engine (PIPELINE_ENGINE={settings.pipeline_engine}): no OpenRouter settings "
                            f"needed{note}", value="offline")
        return
    checks.ok("engine", f"OpenRouter engine (PIPELINE_ENGINE={settings.pipeline_engine})", value="openrouter")
    key = settings.openrouter_api_key or ""
    if not key.startswith(OPENROUTER_KEY_PREFIX):
        checks.failed("OPENROUTER_API_KEY", f"does not look like an OpenRouter key ({len(key)} characters, expected "
                                            f"'{OPENROUTER_KEY_PREFIX}…'): copy it from openrouter.ai/keys, or set "
                                            "PIPELINE_ENGINE=offline")
    else:
        checks.ok("OPENROUTER_API_KEY", f"set, shaped like an OpenRouter key ({len(key)} characters)")
    parts = urlsplit(settings.openrouter_base_url)
    host = parts.hostname or ""
    if parts.scheme == "https" or (parts.scheme == "http" and host in LOCAL_HOSTS):
        checks.ok("OPENROUTER_BASE_URL", f"{parts.scheme}://{host}{parts.path}")
    else:
        checks.failed("OPENROUTER_BASE_URL", f"{parts.scheme}://{host} is not https: the API key would cross the "
                                             "network in clear text; use https (http only for 127.0.0.1/localhost)")
    model = settings.llm_model.strip()
    if not model:
        checks.failed("LLM_MODEL", "empty: unset it for the default google/gemini-2.5-flash or name an "
                                   "OpenRouter model")
    elif "/" not in model:
        checks.warning("LLM_MODEL", f"{model!r} has no vendor prefix: OpenRouter models are named 'vendor/model' "
                                    "(e.g. google/gemini-2.5-flash)", value=model)
    else:
        checks.ok("LLM_MODEL", model, value=model)
