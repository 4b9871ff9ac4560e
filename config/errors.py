"""The runner's error tree: every error we raise on purpose is one of these.

    RunnerError
     ├── ConfigError        settings or flags are wrong; nothing started      (CLI exit 2)
     ├── InvalidInput       a document, brand, run id or payload is unusable  (CLI exit 2 or 1)
     ├── NotFound           an unknown run or brand
     ├── Conflict           a run id reused with another payload              (HTTP 409)
     ├── Superseded         a write from an attempt that lost the run to a newer one
     ├── StageError         a stage could not produce a valid output          (run FAILED)
     └── StoreError         persistence failed
          ├── StoreUnavailable   the database cannot be reached or is too slow (transient)
          └── SchemaMismatch     the database schema is not the one the code writes

Document codes raised by the input gate (``pipeline.gate``) and the offline engine, each an
``InvalidInput`` or ``StageError`` that fails the run at stage 1 (CLI exit 1):
``DOCUMENT_NOT_PROSE`` (tables, code, symbols, drawing operators, one line repeated),
``DOCUMENT_PLACEHOLDER`` (lorem ipsum), ``DOCUMENT_TOO_SHORT`` (a cover, masthead or one-word
scan), ``DOCUMENT_LANGUAGE_UNSUPPORTED`` (the offline engine reads English only). There is no
``DOCUMENT_OFF_TOPIC``: a document with little market signal completes, its relevance stated.

Each error carries a stable ``code`` (for run.json, the status API and log search) and a
message that says what is wrong and how to fix it. Always ``raise ... from exc``.

Codes a run can end with that no exception class names (the constants below):
``DOCUMENT_TOO_COMPLEX`` (a PDF over the extraction budget: fails once, never retried),
``STAGE_TIMEOUT`` (the dispatcher's watchdog stopped a stage) and ``PROCESS_DIED`` (the run
process died; the message says how: signal, out of memory, stage, document).
"""

from __future__ import annotations

DOCUMENT_NOT_PROSE = "DOCUMENT_NOT_PROSE"
DOCUMENT_PLACEHOLDER = "DOCUMENT_PLACEHOLDER"
DOCUMENT_TOO_SHORT = "DOCUMENT_TOO_SHORT"
DOCUMENT_LANGUAGE_UNSUPPORTED = "DOCUMENT_LANGUAGE_UNSUPPORTED"
DOCUMENT_TOO_COMPLEX = "DOCUMENT_TOO_COMPLEX"
STAGE_TIMEOUT = "STAGE_TIMEOUT"
PROCESS_DIED = "PROCESS_DIED"


class RunnerError(Exception):
    """Base of every error the runner raises deliberately."""

    code = "RUNNER_ERROR"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class ConfigError(RunnerError):
    """One or more settings are missing or malformed; ``problems`` lists each of them."""

    code = "CONFIG_INVALID"

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"configuration error ({len(self.problems)} problem(s)):\n{lines}")


class InvalidInput(RunnerError):
    """An input (document, brand, run id, payload) is unusable as given."""

    code = "INVALID_INPUT"


class NotFound(RunnerError):
    """The thing asked for does not exist."""

    code = "NOT_FOUND"


class StageError(RunnerError):
    """A stage failed; ``stage`` is its number (0 for document intake)."""

    code = "STAGE_FAILED"

    def __init__(self, stage: int, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.stage = stage


class StoreError(RunnerError):
    """Persistence failed in a way that is not known to be transient."""

    code = "STORE_ERROR"


class StoreUnavailable(StoreError):
    """The store cannot be reached, timed out, or refused: worth a retry or the spool."""

    code = "STORE_UNAVAILABLE"


class NotDurable(StoreError):
    """The system of record cannot take a write now, and no durable place may hold it meanwhile.

    ``retry_after_s`` tells the sender when to try again (HTTP Retry-After). Raised above the
    store (never inside it), so no retry or spool logic ever mistakes it for a transient failure.
    """

    code = "NOT_DURABLE"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SchemaMismatch(StoreError):
    """The database schema differs from what the code writes: trips the breaker at once."""

    code = "SCHEMA_MISMATCH"


class Conflict(RunnerError):
    """The same run id was already used with a different payload."""

    code = "RUN_CONFLICT"


class Superseded(RunnerError):
    """A write came from an attempt older than the one that now owns the run (fencing)."""

    code = "ATTEMPT_SUPERSEDED"


class ProviderUnavailable(StageError):
    """The LLM provider did not answer after bounded retries, or its breaker is open: try the run later.

    The run is not failed: it goes back to QUEUED and resumes from its last finished stage after
    ``retry_in_s`` seconds (the provider breaker's cool-down).
    """

    code = "LLM_UNAVAILABLE"

    def __init__(self, stage: int, message: str, *, retry_in_s: float) -> None:
        super().__init__(stage, message, code="LLM_UNAVAILABLE")
        self.retry_in_s = retry_in_s


# Codes of the LLM engine (contract §10), each with what to fix; listed so docs and tests share them.
LLM_ERROR_CODES = {
    "LLM_AUTH": "OpenRouter refused the key (401): set OPENROUTER_API_KEY",
    "LLM_CREDITS": "the account or key is out of credits (402): add credits",
    "LLM_MODERATION": "the model's moderation flagged the input (403)",
    "LLM_MODEL_UNSUPPORTED": "LLM_MODEL (or its routes) cannot honour strict structured outputs: choose another",
    "LLM_BUDGET_EXCEEDED": "the run would cost more than LLM_MAX_COST_PER_RUN",
    "LLM_UNAVAILABLE": "the provider is down: the run is requeued and resumes later",
    "LLM_BAD_RESPONSE": "the answer was not a usable chat completion",
    "LLM_REFUSED": "the model refused to answer",
    "LLM_REQUEST_REJECTED": "OpenRouter rejected the request (other 4xx)",
}
