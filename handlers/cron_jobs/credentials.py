"""Validate's checks of the secrets and the LLM settings: present, well-shaped, never printed.

Only lengths, prefixes and hosts are ever reported; a secret's value never reaches a message,
a log line or the summary.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from config.errors import ConfigError
from config.settings import Settings
from handlers.cron_jobs.checks import Checks
from handlers.webhook_signature import SECRET_PREFIX as WHSEC_PREFIX
from handlers.webhook_signature import secret_key

MIN_WHSEC_BYTES = 24  # decoded key of the webhook secret
MIN_API_TOKEN_CHARS = 32
OPENROUTER_KEY_PREFIX = "sk-or-"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
GENERATE_WHSEC = ("generate one with `python -c \"import base64, os; "
                  "print('whsec_' + base64.b64encode(os.urandom(32)).decode())\"`")
GENERATE = "generate one with `python -c \"import secrets; print(secrets.token_urlsafe(32))\"`"


def check_webhook_secret(settings: Settings, checks: Checks) -> None:
    """WEBHOOK_SECRET: base64 (``whsec_`` prefix and ``=`` padding optional) of at least 24 bytes."""
    name = "WEBHOOK_SECRET"
    secret = settings.webhook_secret
    if not secret:
        checks.failed(name, "unset: the web service answers POST /run with 503 until it is set to the secret the "
                            f"frontend signs with (Standard Webhooks, whsec_<base64>); {GENERATE_WHSEC}")
        return
    try:
        key = secret_key(secret)
    except ConfigError as exc:
        checks.failed(name, str(exc))
        return
    if len(key) < MIN_WHSEC_BYTES:
        checks.failed(name, f"secret decodes to {len(key)} bytes, fewer than {MIN_WHSEC_BYTES}: "
                            f"a short HMAC key can be guessed; {GENERATE_WHSEC} and set it at the sender too",
                      value=len(key), threshold=MIN_WHSEC_BYTES)
        return
    form = "whsec_" if secret.startswith(WHSEC_PREFIX) else "bare base64"
    checks.ok(name, f"{form} secret set ({len(key)}-byte key)", value=len(key), threshold=MIN_WHSEC_BYTES)


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
