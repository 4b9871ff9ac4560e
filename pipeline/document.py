"""The document a run works on, as text: a frozen value the stages read and never change."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Document:
    """A trend report reduced to text, with where it came from.

    ``truncated`` is true when the text was cut to the runner's limit; ``original_chars`` then
    says how long it was, so reports can say so instead of hiding it.
    """

    name: str
    source: str
    media_type: str
    text: str
    original_chars: int
    truncated: bool = False

    @property
    def sha256(self) -> str:
        """Hex digest of the text, to tell documents apart in logs."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def words(self) -> int:
        """How many words the text holds."""
        return len(self.text.split())
