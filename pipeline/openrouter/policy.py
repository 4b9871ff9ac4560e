"""How hard and how long the OpenRouter engine tries: one frozen value, production defaults."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LlmPolicy:
    """Timeouts, retry bounds and prompt budget for every chat completion. Tests shrink it."""

    connect_timeout_s: float = 5.0
    read_timeout_s: float = 120.0  # between two socket reads: a long generation is still one answer
    attempts: int = 4  # first try included
    total_s: float = 420.0  # no new attempt starts past this, counted from the first try
    first_wait_s: float = 1.0  # base of the exponential backoff
    jitter_s: float = 1.0  # up to this much added at random, so parallel runs do not retry in step
    max_wait_s: float = 30.0  # cap on any one wait, a server's Retry-After included
    max_document_chars: int = 60_000  # ~15k tokens: leaves room in a 64k context for the answer
    temperature: float = 0.0  # reproducible runs: the same prompt should give the same answer
    max_tokens: int | None = None  # None: the model's own limit

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("LlmPolicy.attempts must be at least 1")
        if self.max_document_chars < 1_000:
            raise ValueError("LlmPolicy.max_document_chars must be at least 1000")
        for name in ("connect_timeout_s", "read_timeout_s", "total_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"LlmPolicy.{name} must be positive")
        for name in ("first_wait_s", "jitter_s", "max_wait_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"LlmPolicy.{name} must not be negative")
