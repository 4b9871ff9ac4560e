"""The document text a prompt may carry: whole when it fits, else cut at a paragraph, and said so.

A model's context is finite and an over-long prompt fails (HTTP 400) or gets silently clipped by
the provider. Cutting here, at a paragraph boundary, keeps the text readable and the cut visible:
every cut is logged as ``llm_document_truncated`` with the characters kept and the total.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from config.log import get_logger
from pipeline.document import Document

log = get_logger(__name__)

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")
_SENTENCE_END = re.compile(r"[.!?…](?=\s)")
# A boundary earlier than this share of the budget wastes too much: fall back to a finer one.
_MIN_SHARE = 0.5


@dataclass(frozen=True)
class PromptText:
    """The text sent to the model and whether (and where) it was cut."""

    text: str
    total_chars: int
    truncated: bool
    boundary: str  # "none", "paragraph", "line", "sentence", "word" or "hard"


def _last_match_start(pattern: re.Pattern[str], text: str) -> int | None:
    """Where the last match of ``pattern`` in ``text`` starts (the cut goes before it)."""
    last = None
    for match in pattern.finditer(text):
        last = match
    return None if last is None else last.start()


def cut_at_boundary(text: str, budget: int) -> tuple[str, str]:
    """``text`` cut to at most ``budget`` characters at the coarsest boundary past half the budget."""
    if len(text) <= budget:
        return text, "none"
    window = text[:budget + 1]  # one extra character: a break right at the budget still counts
    floor = int(budget * _MIN_SHARE)
    candidates = (
        ("paragraph", _last_match_start(_PARAGRAPH_BREAK, window)),
        ("line", window.rfind("\n")),
        ("sentence", _sentence_cut(window[:budget])),
        ("word", window.rfind(" ")),
    )
    for boundary, at in candidates:
        if at is not None and floor <= at <= budget:
            return text[:at].rstrip(), boundary
    return text[:budget], "hard"


def _sentence_cut(window: str) -> int | None:
    """Just after the last sentence end in ``window``."""
    last = None
    for match in _SENTENCE_END.finditer(window):
        last = match.end()
    return last


def document_for_prompt(document: Document, budget: int, *, stage: int) -> PromptText:
    """The document's text within ``budget`` characters; a cut is logged, never silent."""
    text, boundary = cut_at_boundary(document.text, budget)
    total = len(document.text)
    if boundary != "none":
        log.warning("llm_document_truncated", stage=stage, document=document.name, chars_kept=len(text),
                    chars_total=total, boundary=boundary, budget=budget)
    return PromptText(text=text, total_chars=total, truncated=boundary != "none", boundary=boundary)
