"""The offline engine: deterministic extractive heuristics, no network, no randomness.

It writes an extractive draft: every quote is a sentence of the document, every card is one
claim of the document mapped by rules onto one product line of the brand. It reads English only
(other languages fail stage 1 with DOCUMENT_LANGUAGE_UNSUPPORTED).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pipeline.document import Document
from pipeline.offline.brand_fit import brand_contextualization
from pipeline.offline.insights import general_translation
from pipeline.offline.inspirations import input_processing
from pipeline.offline.opportunities import opportunity_generation
from pipeline.offline.signals import signal_amplification

if TYPE_CHECKING:
    from pipeline.brands import BrandProfile


class OfflineEngine:
    """Implements the Engine protocol from the document's own sentences and the brand profile."""

    name = "offline"
    model: str | None = None  # no model: an extractive draft written by rules

    def input_processing(self, document: Document) -> dict[str, Any]:
        """Stage 1: summary, core mechanism and 1-3 inspirations with verbatim evidence and cues."""
        return input_processing(document)

    def signal_amplification(self, document: Document, stage1: Mapping[str, Any]) -> dict[str, Any]:
        """Stage 2: the document's other strong claims as categorised signals, per inspiration."""
        return signal_amplification(document, stage1)

    def general_translation(self, stage1: Mapping[str, Any], stage2: Mapping[str, Any]) -> dict[str, Any]:
        """Stage 3: one industry-neutral principle per mechanism, grouping its signals."""
        return general_translation(stage1, stage2)

    def brand_contextualization(self, stage3: Mapping[str, Any], brand: BrandProfile) -> dict[str, Any]:
        """Stage 4: insights mapped onto the brand's product lines, priorities and customers."""
        return brand_contextualization(stage3, brand)

    def opportunity_generation(self, stage4: Mapping[str, Any], brand: BrandProfile,
                               document: Document) -> dict[str, Any]:
        """Stage 5: five cards, each one claim of the document on one product line of the brand."""
        return opportunity_generation(stage4, brand, document)
