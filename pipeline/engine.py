"""The Engine port: what produces each stage's JSON. Offline heuristics or an LLM.

Each method returns a plain JSON-shaped dict for one stage (contract §8); ``pipeline.stages``
validates it and wraps engine failures in ``StageError``. Engines must not do persistence, and
the offline engine must be deterministic: same inputs, same output, byte for byte.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pipeline.brands import BrandProfile
from pipeline.document import Document

if TYPE_CHECKING:
    from pipeline.usage import RunMeter

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


@dataclass(frozen=True)
class Grounding:
    """What stages 4 and 5 may cite: the passages stages 1-2 cited (id -> exact text), and the language."""

    evidence: Mapping[int, str]
    language: str | None = None


def grounding_of(stage1: Mapping[str, Any] | None, stage2: Mapping[str, Any] | None) -> Grounding:
    """The digest of cited evidence in stages 1 and 2 (items carrying ``passage_ids`` beside ``evidence``)."""
    evidence: dict[int, str] = {}
    items = [*((stage1 or {}).get("inspirations") or []), *((stage2 or {}).get("signals") or [])]
    for item in items:
        ids, quotes = item.get("passage_ids"), item.get("evidence")
        if isinstance(ids, list) and isinstance(quotes, list) and len(ids) == len(quotes):
            evidence.update({pid: q for pid, q in zip(ids, quotes, strict=True)
                             if isinstance(pid, int) and isinstance(q, str)})
    language = (stage1 or {}).get("language")
    return Grounding(evidence, language if isinstance(language, str) else None)


@runtime_checkable
class GroundedEngine(Protocol):
    """An engine whose stages 4 and 5 read the evidence stages 1-2 cited (the LLM engine)."""

    def brand_contextualization_grounded(self, stage3: StageOutput, brand: BrandProfile,
                                         grounding: Grounding) -> dict[str, Any]:
        """Stage 4 with the cited evidence."""

    def opportunity_generation_grounded(self, stage4: StageOutput, brand: BrandProfile, document: Document,
                                        grounding: Grounding) -> dict[str, Any]:
        """Stage 5 with the cited evidence."""


@runtime_checkable
class CostedEngine(Protocol):
    """An engine whose calls cost money and depend on a model (the LLM engine): metered and cacheable."""

    name: str

    @property
    def model(self) -> str:
        """The model asked first."""

    @property
    def cache_scope(self) -> str:
        """What cached stage outputs depend on besides the document (model, prompt version...)."""

    def begin_run(self, meter: RunMeter) -> None:
        """Meter this run's calls (and hold them to its ceiling)."""
