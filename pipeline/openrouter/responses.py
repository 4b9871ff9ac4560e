"""What one OpenRouter HTTP answer means: a completion, a transient failure, or a final StageError.

    408, 429, 5xx, or a 200 whose body reports one -> Transient (the transport retries it)
    401 -> LLM_AUTH · 402 -> LLM_CREDITS · 403 -> LLM_MODERATION (flagged input)
    404 (no endpoint honours the parameters), 400 naming the model or response_format
                                                   -> LLM_MODEL_UNSUPPORTED
    other 4xx                                      -> StageError LLM_REQUEST_REJECTED
    3xx, or a 200 that is not a chat completion    -> StageError LLM_BAD_RESPONSE

Messages quote OpenRouter's own ``error.message`` with the API key redacted from it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from config.errors import StageError

_MAX_MESSAGE_CHARS = 300
SUGGESTED_MODEL = "google/gemini-2.5-flash"
# A 404 "No endpoints found that can handle the requested parameters" (require_parameters) or a
# 400 naming the model or the response format: the model or its route cannot do what we ask.
_UNSUPPORTED = re.compile(r"not a valid model|no endpoints found|response_format|json_schema|structured output",
                          re.IGNORECASE)
# Hints per rejected status: what the operator should change.
_REJECTED_HINTS = {
    402: "the OpenRouter account or key is out of credits: add credits, then retry the run",
    413: "the prompt is too large for the model: lower max_document_chars or choose a larger-context LLM_MODEL",
}


class Transient(Exception):
    """A 429 or 5xx answer, raised so the transport retries it; never leaves this package."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True)
class Completion:
    """The parts of a chat completion the engine uses."""

    content: str | None
    finish_reason: str | None = None
    # native_finish_reason etc. are not needed; refusal is: a model may refuse instead of answering
    refusal: str | None = None
    usage: Mapping[str, Any] = field(default_factory=dict)
    model: str | None = None
    id: str | None = None


def redact(text: str, secret: str | None) -> str:
    """``text`` without ``secret`` in it, shortened for a log line or an error message."""
    if secret:
        text = text.replace(secret, "[redacted]")
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE_CHARS else text[:_MAX_MESSAGE_CHARS] + "…"


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds asked for by a Retry-After header (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass  # not a number of seconds: an HTTP date is the other form the header may take
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:  # "-0000" parses naive; HTTP dates are always GMT
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, moment.timestamp() - time.time())


def _json_body(response: requests.Response) -> object:
    """The body as JSON, or None when it is not JSON."""
    try:
        return response.json()
    except requests.exceptions.JSONDecodeError:
        return None


def error_message(response: requests.Response, secret: str | None) -> str:
    """OpenRouter's ``error.message`` (or the start of the body), redacted."""
    body = _json_body(response)
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        message = body["error"].get("message")
        if isinstance(message, str) and message.strip():
            return redact(message, secret)
    text = response.text.strip() if response.text else ""
    return redact(text, secret) if text else f"{response.reason or 'no message'} (empty body)"


def _unsupported(stage: int, status: int, message: str, model: str) -> StageError:
    return StageError(
        stage, f"stage {stage}: no provider of LLM_MODEL={model!r} honours strict structured outputs "
               f"(HTTP {status}: {message}): choose a model whose OpenRouter page lists structured_outputs, "
               f"e.g. LLM_MODEL={SUGGESTED_MODEL}, or set LLM_FALLBACK_MODELS; `python -m handlers.cron validate` "
               "checks each model", code="LLM_MODEL_UNSUPPORTED")


def read_completion(stage: int, response: requests.Response, *, model: str, secret: str | None) -> Completion:
    """Interpret one HTTP answer: return its Completion, raise Transient, or raise the final StageError."""
    status = response.status_code
    if status == 429 or 500 <= status <= 599 or status == 408:
        raise Transient(status, error_message(response, secret),
                        retry_after_seconds(response.headers.get("Retry-After")))
    if status == 401:
        raise StageError(stage, f"stage {stage}: OpenRouter refused the API key (HTTP 401: "
                                f"{error_message(response, secret)}): set OPENROUTER_API_KEY to a valid key "
                                "from openrouter.ai/keys", code="LLM_AUTH")
    if status == 402:
        raise StageError(stage, f"stage {stage}: the OpenRouter account or key is out of credits (HTTP 402: "
                                f"{error_message(response, secret)}): add credits or raise the key's limit, "
                                "then retry the run", code="LLM_CREDITS")
    if status == 403:
        raise StageError(stage, f"stage {stage}: the model's moderation flagged the input (HTTP 403: "
                                f"{error_message(response, secret)}): choose an LLM_MODEL without moderation, "
                                "or check the document", code="LLM_MODERATION")
    message = error_message(response, secret)
    if status == 404 or (status == 400 and _UNSUPPORTED.search(message)):
        raise _unsupported(stage, status, message, model)
    if 400 <= status <= 499:
        hint = _REJECTED_HINTS.get(status, f"check that LLM_MODEL={model!r} names a model OpenRouter serves "
                                           "and that the request fits its context")
        raise StageError(stage, f"stage {stage}: OpenRouter rejected the request (HTTP {status}: "
                                f"{message}): {hint}", code="LLM_REQUEST_REJECTED")
    if status != 200:
        raise _bad(stage, f"HTTP {status} instead of 200 (check OPENROUTER_BASE_URL: redirects are not followed)")
    return _completion(stage, _json_body(response), secret)


def _completion(stage: int, body: object, secret: str | None) -> Completion:
    """A 200 body as a Completion; an error or a missing ``choices`` is not one."""
    if not isinstance(body, Mapping):
        raise _bad(stage, "the body is not a JSON object")
    error = body.get("error")
    if "choices" not in body and isinstance(error, Mapping):
        # A provider failed after OpenRouter had answered 200: its code says whether to try again.
        code = error.get("code")
        said = redact(str(error.get("message") or "no message"), secret)
        if isinstance(code, int) and (code == 429 or 500 <= code <= 599):
            raise Transient(code, said)
        raise _bad(stage, f"the body reports an error ({code}: {said})")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        raise _bad(stage, "the body has no choices")
    message = choices[0].get("message")
    if not isinstance(message, Mapping):
        raise _bad(stage, "choices[0] has no message")
    content = message.get("content")
    usage = body.get("usage")
    return Completion(
        content=content if isinstance(content, str) else None,
        refusal=_text_or_none(message.get("refusal")),
        finish_reason=_text_or_none(choices[0].get("finish_reason")),
        usage=dict(usage) if isinstance(usage, Mapping) else {},
        model=_text_or_none(body.get("model")),
        id=_text_or_none(body.get("id")),
    )


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _bad(stage: int, what: str) -> StageError:
    """LLM_BAD_RESPONSE: OpenRouter answered, but not with a chat completion."""
    return StageError(stage, f"stage {stage}: OpenRouter's answer is not a chat completion: {what}",
                      code="LLM_BAD_RESPONSE")
