"""The document a run works on, as text: a frozen value the stages read and never change."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Relevance:
    """How much of a document speaks of markets, consumers or products (set by the input gate)."""

    level: str  # "high", "medium", "low", or "unknown" for languages the gate has no vocabulary for
    market_sentences: int
    sentences: int

    def describe(self) -> str:
        """One line for the report: the level and the count behind it."""
        if self.level == "unknown":
            return "not measured (market vocabulary is English only)"
        return (f"{self.level}: {self.market_sentences} of {self.sentences} sentences name a market, "
                f"consumer or product")


@dataclass(frozen=True)
class Document:
    """A trend report reduced to text, with where it came from.

    ``truncated`` is true when the text was cut to the runner's limit; ``original_chars`` then
    says how long it was, so reports can say so instead of hiding it. The input gate
    (``pipeline.gate``) sets ``language``, ``relevance`` and ``cleaned`` (what it stripped).
    """

    name: str
    source: str
    media_type: str
    text: str
    original_chars: int
    truncated: bool = False
    language: str = "en"
    relevance: Relevance | None = None
    cleaned: tuple[str, ...] = ()

    @property
    def sha256(self) -> str:
        """Hex digest of the text, to tell documents apart in logs."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def words(self) -> int:
        """How many words the text holds."""
        return len(self.text.split())
