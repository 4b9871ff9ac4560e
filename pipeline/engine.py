"""The Engine port: what produces each stage's JSON. Offline heuristics or an LLM.

Each method returns a plain JSON-shaped dict for one stage (contract §8); ``pipeline.stages``
validates it and wraps engine failures in ``StageError``. Engines must not do persistence, and
the offline engine must be deterministic: same inputs, same output, byte for byte.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from pipeline.brands import BrandProfile
from pipeline.document import Document

StageOutput = Mapping[str, Any]


class Engine(Protocol):
    """Produces the five stage outputs."""

    name: str

    def input_processing(self, document: Document) -> dict[str, Any]:
        """Stage 1: summary, core mechanism and 1-3 inspirations with evidence quotes."""

    def signal_amplification(self, document: Document, stage1: StageOutput) -> dict[str, Any]:
        """Stage 2: market signals that amplify the inspirations."""

    def general_translation(self, stage1: StageOutput, stage2: StageOutput) -> dict[str, Any]:
        """Stage 3: brand-neutral insights that transfer across industries."""

    def brand_contextualization(self, stage3: StageOutput, brand: BrandProfile) -> dict[str, Any]:
        """Stage 4: the insights re-read against one brand's priorities, portfolio and customers."""

    def opportunity_generation(
        self, stage4: StageOutput, brand: BrandProfile, document: Document
    ) -> dict[str, Any]:
        """Stage 5: exactly five opportunity cards, one per innovation type."""
