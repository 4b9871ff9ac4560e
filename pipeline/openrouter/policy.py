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
    max_document_chars: int = 60_000  # used only when the model's context length cannot be learned
    # The prompt budget: this share of the model's context_length, capped, converted at chars_per_token.
    context_share: float = 0.6  # the rest is for instructions, the answer and tokenizer slack
    max_prompt_tokens: int = 150_000  # a single call beyond this is slow and costly: map-reduce instead
    chars_per_token: float = 3.5  # conservative for English prose; other scripts tokenize denser
    fallback_context_tokens: int = 32_768  # when the models endpoint cannot be read
    map_concurrency: int = 4  # sections of a long document asked at once
    # Extraction is cold (the same passages, the same answer); ideation warmer.
    temperatures: tuple[float, float, float, float, float] = (0.0, 0.1, 0.3, 0.4, 0.7)
    max_tokens: int | None = None  # None: the model's own limit

    def temperature(self, stage: int) -> float:
        """The sampling temperature of ``stage`` (1-5)."""
        return self.temperatures[stage - 1]

    def prompt_budget_chars(self, context_length: int | None) -> int:
        """How many characters of passages one prompt may carry for a model with ``context_length`` tokens."""
        if context_length is None:
            return self.max_document_chars
        tokens = min(int(context_length * self.context_share), self.max_prompt_tokens)
        return max(1_000, int(tokens * self.chars_per_token))

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("LlmPolicy.attempts must be at least 1")
        if self.map_concurrency < 1:
            raise ValueError("LlmPolicy.map_concurrency must be at least 1")
        if self.max_document_chars < 1_000:
            raise ValueError("LlmPolicy.max_document_chars must be at least 1000")
        for name in ("connect_timeout_s", "read_timeout_s", "total_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"LlmPolicy.{name} must be positive")
        for name in ("first_wait_s", "jitter_s", "max_wait_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"LlmPolicy.{name} must not be negative")
