"""Stage 1 evidence must be the document's own words: each quote is checked against its text.

A model paraphrases, merges sentences or invents plausible ones. A quote is kept only when it is
a substring of the whitespace-normalised document; the others are dropped with a logged warning.
An inspiration left with no quote at all raises ``LLM_EVIDENCE_NOT_IN_DOCUMENT``, whose message
names every quote that was not found, so the engine can ask the model to fix exactly those.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from config.errors import StageError
from config.log import get_logger

log = get_logger(__name__)

# Models often wrap a quote in quotation marks the document does not have.
_WRAPPING_QUOTES = "\"'“”‘’«»„ "
# One or two words occur almost anywhere and prove nothing.
MIN_QUOTE_WORDS = 3
_SHOWN_CHARS = 400


def normalise(text: str) -> str:
    """Collapse every whitespace run to one space and strip the ends."""
    return " ".join(text.split())


def find_verbatim(quote: object, haystack: str) -> str | None:
    """The quote as it appears in ``haystack`` (a normalised document), or None when it does not."""
    if not isinstance(quote, str):
        return None
    text = normalise(quote)
    for candidate in (text, text.strip(_WRAPPING_QUOTES)):
        if len(candidate.split()) >= MIN_QUOTE_WORDS and candidate in haystack:
            return candidate
    return None


def _shown(quote: object) -> str:
    text = normalise(str(quote))
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…"


def keep_verbatim_evidence(output: Mapping[str, Any], document_text: str) -> dict[str, Any]:
    """``output`` (a shape-valid stage 1) with only verbatim quotes; StageError if an inspiration has none left."""
    haystack = normalise(document_text)
    missing: list[tuple[int, str, object]] = []
    inspirations = []
    for i, inspiration in enumerate(output["inspirations"]):
        kept: list[str] = []
        for quote in inspiration["evidence"]:
            found = find_verbatim(quote, haystack)
            if found is None:
                missing.append((i, str(inspiration.get("title", "")), quote))
            elif found not in kept:
                kept.append(found)
        inspirations.append({**inspiration, "evidence": kept})
    if missing:
        log.warning("llm_evidence_dropped", stage=1, dropped=len(missing),
                    quotes=[_shown(quote)[:120] for _, _, quote in missing])
    empty = [i for i, inspiration in enumerate(inspirations) if not inspiration["evidence"]]
    if empty:
        listed = "; ".join(f'inspirations[{i}] ("{title}"): "{_shown(quote)}"' for i, title, quote in missing)
        emptied = ", ".join(f"inspirations[{i}]" for i in empty)
        raise StageError(
            1, f"stage 1: {emptied} kept no evidence: these {len(missing)} quote(s) are not in the document "
               f"verbatim (whole sentences of at least {MIN_QUOTE_WORDS} words): {listed}",
            code="LLM_EVIDENCE_NOT_IN_DOCUMENT",
        )
    return {**output, "inspirations": inspirations}
