"""One chat completion over HTTP, with bounded, jittered, logged retries (tenacity).

Every request asks for strict structured outputs (``response_format`` json_schema, strict) and
``provider.require_parameters`` so no provider silently ignores the schema; fallback models go
as OpenRouter's ``models``; ``HTTP-Referer`` and ``X-OpenRouter-Title`` attribute the app.

Retried, and only these: 408, 429 (waiting what ``Retry-After`` asks, capped by the policy), 5xx,
connection errors and read timeouts. Everything else is an answer, and asking again would not
change it. A ``Retry-After`` longer than the time left is not waited for. When the tries or the
time run out, the host-wide provider breaker opens and ``ProviderUnavailable`` (LLM_UNAVAILABLE)
is raised: the runner requeues the run. While the breaker is open no call is made at all.
The API key travels only in the Authorization header and is redacted from every message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

from config.errors import ProviderUnavailable, StageError
from config.log import get_logger
from pipeline.openrouter.breaker import ProviderBreaker
from pipeline.openrouter.policy import LlmPolicy
from pipeline.openrouter.responses import Completion, Transient, read_completion, redact
from pipeline.usage import RunMeter, Usage

log = get_logger(__name__)

Message = Mapping[str, str]
# A dropped connection mid-body (ChunkedEncodingError) is a connection error too.
EXPECTED_ANSWER_TOKENS = 1_500  # a stage's JSON answer, for the cost estimate when max_tokens is unset
NETWORK_ERRORS = (requests.ConnectionError, requests.ReadTimeout, requests.exceptions.ChunkedEncodingError)


def is_transient(exc: BaseException) -> bool:
    """True for failures worth another try: 429/5xx, connection errors and read timeouts (not TLS)."""
    if isinstance(exc, requests.exceptions.SSLError):
        return False  # a certificate problem does not fix itself between tries
    return isinstance(exc, (Transient, *NETWORK_ERRORS))


class ChatClient:
    """POSTs chat completions to ``{base_url}/chat/completions`` for one model and key."""

    def __init__(self, session: requests.Session, *, base_url: str, model: str, api_key: str,
                 policy: LlmPolicy, app_title: str | None = None, app_url: str | None = None,
                 fallback_models: tuple[str, ...] = (), breaker: ProviderBreaker | None = None) -> None:
        if not api_key:
            raise ValueError("an OpenRouter API key is required (OPENROUTER_API_KEY)")
        self.session = session
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.fallback_models = tuple(m for m in fallback_models if m != model)
        self.policy = policy
        self.breaker = breaker or ProviderBreaker()
        self.meter = RunMeter()
        # (prompt, completion) USD per token from the models endpoint, for the cost ceiling's estimate
        self.prices: tuple[float, float] | None = None
        self._api_key = api_key
        self._attribution = {"X-OpenRouter-Title": app_title} if app_title else {}
        if app_url:
            self._attribution["HTTP-Referer"] = app_url

    def __repr__(self) -> str:
        return f"ChatClient(url={self.url!r}, model={self.model!r})"  # never the key

    def body(self, messages: Sequence[Message], *, schema_name: str, schema: Mapping[str, Any],
             temperature: float) -> dict[str, Any]:
        """The request body: strict schema, require_parameters, fallback models."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(m) for m in messages],
            "temperature": temperature,
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": schema_name, "strict": True, "schema": dict(schema)}},
            "provider": {"require_parameters": True},
        }
        if self.fallback_models:
            body["models"] = [self.model, *self.fallback_models]
        if self.policy.max_tokens is not None:
            body["max_tokens"] = self.policy.max_tokens
        return body

    def complete(self, stage: int, messages: Sequence[Message], *, schema_name: str, schema: Mapping[str, Any],
                 temperature: float = 0.0) -> Completion:
        """One chat completion for ``stage``, retried within the policy; raises StageError on failure."""
        waiting = self.breaker.open_for()
        if waiting > 0:
            raise ProviderUnavailable(stage, f"stage {stage}: OpenRouter is marked down on this host for another "
                                             f"{waiting:.0f}s (provider breaker); the run resumes later",
                                      retry_in_s=waiting)
        body = self.body(messages, schema_name=schema_name, schema=schema, temperature=temperature)
        self.meter.check(stage, self.estimate_usd(messages))
        started = time.monotonic()
        retrying = self._retrying(stage, started)
        try:
            completion = retrying(self._post_once, stage, body)
        except Transient as exc:
            raise self._unavailable(stage, retrying, started, f"last answer HTTP {exc.status}: {exc.message}",
                                    exc.retry_after or 0.0) from exc
        except requests.exceptions.SSLError as exc:
            raise StageError(stage, f"stage {stage}: TLS to {self.url} failed ({redact(str(exc), self._api_key)}): "
                                    "check OPENROUTER_BASE_URL", code="LLM_UNAVAILABLE") from exc
        except NETWORK_ERRORS as exc:
            what = ("no answer within the read timeout" if isinstance(exc, requests.ReadTimeout)
                    else "the connection failed")
            reason = f"last error {type(exc).__name__}: {what} ({redact(str(exc), self._api_key)})"
            raise self._unavailable(stage, retrying, started, reason) from exc
        except requests.RequestException as exc:  # InvalidURL, MissingSchema...: the request could not be sent
            raise StageError(stage, f"stage {stage}: could not send the request to {self.url} "
                                    f"({type(exc).__name__}: {redact(str(exc), self._api_key)}): "
                                    "check OPENROUTER_BASE_URL", code="LLM_UNAVAILABLE") from exc
        self.breaker.reset()
        usage = Usage.of_call(completion.usage)
        self.meter.record(stage, usage)
        log.info("llm_completion", stage=stage, schema=schema_name, model=completion.model or self.model,
                 id=completion.id, attempts=retrying.statistics.get("attempt_number", 1),
                 finish_reason=completion.finish_reason, usage=usage.as_dict(),
                 seconds=round(time.monotonic() - started, 3))
        return completion

    def estimate_usd(self, messages: Sequence[Message]) -> float:
        """What a call will cost, about: its prompt at ~4 characters a token, and an answer of EXPECTED tokens."""
        prompt_price, completion_price = self.prices or (0.0, 0.0)
        prompt_tokens = sum(len(m.get("content", "")) for m in messages) / 4
        answer_tokens = self.policy.max_tokens or EXPECTED_ANSWER_TOKENS
        return prompt_tokens * prompt_price + answer_tokens * completion_price

    def _post_once(self, stage: int, body: Mapping[str, Any]) -> Completion:
        """One HTTP exchange, read into a Completion (or Transient / StageError)."""
        headers = {"Authorization": f"Bearer {self._api_key}", "Content-Type": "application/json",
                   "Accept": "application/json", "User-Agent": "innovation-pipeline-runner", **self._attribution}
        response = self.session.post(
            self.url, json=body, headers=headers, allow_redirects=False,  # a redirect would resend the key
            timeout=(self.policy.connect_timeout_s, self.policy.read_timeout_s),
        )
        try:
            return read_completion(stage, response, model=self.model, secret=self._api_key)
        finally:
            response.close()

    def _retrying(self, stage: int, started: float) -> Retrying:
        """A fresh controller for one completion: the time budget starts now."""
        policy = self.policy
        backoff = wait_exponential_jitter(multiplier=policy.first_wait_s, max=policy.max_wait_s, jitter=policy.jitter_s)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, Transient) and exc.retry_after is not None:
                return min(exc.retry_after, policy.max_wait_s)  # the server knows best, within our cap
            return backoff(state)

        class AsksTooLong(stop_base):
            """A Retry-After past the time left is not waited for: fail fast, the run is requeued."""

            def __call__(self, state: RetryCallState) -> bool:
                exc = state.outcome.exception() if state.outcome else None
                if not isinstance(exc, Transient) or exc.retry_after is None:
                    return False
                left = policy.total_s - (time.monotonic() - started)
                return exc.retry_after > left

        asks_too_long = AsksTooLong()

        return Retrying(
            stop=stop_after_attempt(policy.attempts) | stop_before_delay(policy.total_s) | asks_too_long,
            wait=wait,
            retry=retry_if_exception(is_transient),
            reraise=True,
            before_sleep=self._log_retry(stage),
        )

    def _log_retry(self, stage: int) -> Callable[[RetryCallState], None]:
        """The before_sleep hook: one ``llm_retry`` warning per retry."""
        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "llm_retry", stage=stage, model=self.model, attempt=state.attempt_number,
                wait_s=round(state.upcoming_sleep, 3), status=getattr(exc, "status", None),
                retry_after_s=getattr(exc, "retry_after", None), error=type(exc).__name__ if exc else None,
                reason=redact(str(exc), self._api_key) if exc else None,
            )

        return before_sleep

    def _unavailable(self, stage: int, retrying: Retrying, started: float, reason: str,
                     retry_after: float = 0.0) -> ProviderUnavailable:
        """LLM_UNAVAILABLE after the last try, saying how hard we tried; opens the host's breaker."""
        tries = retrying.statistics.get("attempt_number", 1)
        cooldown = self.breaker.trip(retry_after)
        return ProviderUnavailable(
            stage,
            f"stage {stage}: OpenRouter ({self.model}) did not answer after {tries} tr{'y' if tries == 1 else 'ies'} "
            f"in {time.monotonic() - started:.1f}s; {reason}: the run resumes in {cooldown:.0f}s",
            retry_in_s=cooldown,
        )
