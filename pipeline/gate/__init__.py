"""The input gate, called on every document before stage 1 (by ``pipeline.documents.parse_document``).

``admit(document)`` strips what is not prose (:mod:`.clean`), measures what is left
(:mod:`.measure`), refuses what is not a report with its own code (:mod:`.rules`), and returns
the document with clean text, its language and its relevance (:mod:`.relevance`). Engines then
read only prose: no front matter, markup, page furniture or drawing operators reach evidence.
"""

from __future__ import annotations

from dataclasses import replace

from config.log import get_logger
from pipeline.document import Document
from pipeline.gate.clean import clean
from pipeline.gate.measure import measure, top_line
from pipeline.gate.relevance import assess
from pipeline.gate.rules import check

__all__ = ["admit"]

log = get_logger(__name__)


def admit(document: Document) -> Document:
    """The document with non-prose stripped, language and relevance set; InvalidInput if it is no report."""
    cleaned = clean(document.text)
    measures = measure(cleaned.text)
    check(document.name, cleaned, measures, top_line(document.text))
    relevance = assess(cleaned.text, measures.language)
    log.info("document_admitted", document=document.name, language=measures.language,
             relevance=relevance.level, prose_sentences=measures.prose_sentences, words=measures.words,
             removed=list(cleaned.removed))
    return replace(document, text=cleaned.text, language=measures.language, relevance=relevance,
                   cleaned=cleaned.removed)
