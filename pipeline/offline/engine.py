"""The offline engine: deterministic extractive heuristics, no network, no randomness."""

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

    def input_processing(self, document: Document) -> dict[str, Any]:
        """Stage 1: summary, core mechanism and 1-3 inspirations with verbatim evidence."""
        return input_processing(document)

    def signal_amplification(self, document: Document, stage1: Mapping[str, Any]) -> dict[str, Any]:
        """Stage 2: categorised signals quoted from the document, per inspiration."""
        return signal_amplification(document, stage1)

    def general_translation(self, stage1: Mapping[str, Any], stage2: Mapping[str, Any]) -> dict[str, Any]:
        """Stage 3: one industry-neutral principle per inspiration."""
        return general_translation(stage1, stage2)

    def brand_contextualization(self, stage3: Mapping[str, Any], brand: BrandProfile) -> dict[str, Any]:
        """Stage 4: insights mapped onto the brand's priorities, portfolio and customers."""
        return brand_contextualization(stage3, brand)

    def opportunity_generation(self, stage4: Mapping[str, Any], brand: BrandProfile,
                               document: Document) -> dict[str, Any]:
        """Stage 5: five opportunity cards, one per innovation type."""
        return opportunity_generation(stage4, brand, document)
