"""The document as numbered passages, so a model cites evidence by id and the code inserts the text.

A quote a model retypes can drift (curly quotes, markdown, case, a paraphrase); an id cannot:
the LLM engine shows each passage as ``[P12] text``, the request schema allows only the ids
shown, and the stored evidence is the passage's exact text. Passages are paragraphs, long ones
split at sentence ends, so each is a quotable unit of a few sentences. The split is a pure
function of the text: the same document always gets the same ids (cache keys rely on it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_PARAGRAPH = re.compile(r"\n[ \t\r\f\v]*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
MAX_PASSAGE_CHARS = 700  # a long paragraph is split at sentence ends past this
MIN_PASSAGE_CHARS = 25  # shorter fragments (page numbers, stray headings) are no evidence


@dataclass(frozen=True)
class Passage:
    """One numbered unit of the document (ids start at 1, in reading order)."""

    id: int
    text: str

    def render(self) -> str:
        """The passage as shown to a model."""
        return f"[P{self.id}] {self.text}"


def _pieces(paragraph: str) -> Iterable[str]:
    """A paragraph as whitespace-normalised chunks of at most about MAX_PASSAGE_CHARS."""
    text = " ".join(paragraph.split())
    if len(text) <= MAX_PASSAGE_CHARS:
        yield text
        return
    chunk = ""
    for sentence in _SENTENCE_END.split(text):
        if chunk and len(chunk) + 1 + len(sentence) > MAX_PASSAGE_CHARS:
            yield chunk
            chunk = sentence
        else:
            chunk = f"{chunk} {sentence}" if chunk else sentence
        while len(chunk) > 2 * MAX_PASSAGE_CHARS:  # one endless "sentence": cut at a word
            cut = chunk.rfind(" ", 0, MAX_PASSAGE_CHARS) if " " in chunk[:MAX_PASSAGE_CHARS] else MAX_PASSAGE_CHARS
            yield chunk[:cut]
            chunk = chunk[cut:].strip()
    if chunk:
        yield chunk


def split_passages(text: str) -> list[Passage]:
    """``text`` as numbered passages; fragments shorter than MIN_PASSAGE_CHARS are left out."""
    passages: list[Passage] = []
    for paragraph in _PARAGRAPH.split(text):
        for piece in _pieces(paragraph):
            if len(piece) >= MIN_PASSAGE_CHARS:
                passages.append(Passage(len(passages) + 1, piece))
    return passages


def render(passages: Iterable[Passage]) -> str:
    """Passages one per line, as a prompt carries them."""
    return "\n".join(p.render() for p in passages)


def rendered_chars(passages: Iterable[Passage]) -> int:
    """How many characters :func:`render` produces."""
    items = list(passages)
    return sum(len(p.render()) for p in items) + max(0, len(items) - 1)


def sections(passages: Sequence[Passage], budget_chars: int) -> list[list[Passage]]:
    """Consecutive runs of passages whose rendering fits ``budget_chars`` each (a passage is never split)."""
    out: list[list[Passage]] = []
    current: list[Passage] = []
    size = 0
    for passage in passages:
        length = len(passage.render()) + 1
        if current and size + length > budget_chars:
            out.append(current)
            current, size = [], 0
        current.append(passage)
        size += length
    if current:
        out.append(current)
    return out


def texts(passages: Sequence[Passage], ids: Iterable[int]) -> list[str]:
    """The exact texts of ``ids`` (unknown ids skipped, repeats kept once, order kept)."""
    by_id = {p.id: p.text for p in passages}
    seen: list[int] = []
    for i in ids:
        if i in by_id and i not in seen:
            seen.append(i)
    return [by_id[i] for i in seen]
