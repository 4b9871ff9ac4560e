"""Text primitives for the offline engine: whitespace, sentences, tokens and stems.

Every sentence this module returns is a contiguous slice of the document with its whitespace
collapsed, so it is always a verbatim substring of ``normalise(document.text)``: evidence quotes
built from it can be checked against the document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from pipeline.offline.wordlists import STOPWORDS

# Only the start of a very long document is analysed: ranking stays fast and near-linear.
MAX_SCAN_CHARS = 300_000
MAX_SENTENCES = 4_000
# Pieces longer than this (no punctuation, run-on PDF text) are cut into word windows.
MAX_SENTENCE_WORDS = 70
_WINDOW_WORDS = 40
MAX_SENTENCE_CHARS = 400

_TOKEN = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")
_NUMBER_FACT = re.compile(
    r"[$€£¥]\s?\d[\d.,]*(?:\s?(?:million|billion|bn|k)\b)?"
    r"|\d[\d.,]*\s*(?:%|percent\b|per cent\b|million\b|billion\b|bn\b|x\b|times\b)|\b(?:19|20)\d\d\b",
    re.IGNORECASE,
)
_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+•·▪◦]|\d{1,3}[.)])\s+")
_HEADING = re.compile(r"^\s*#{1,6}\s")
# A sentence ends at . ! ? or … (plus closing quotes) followed by whitespace; CJK stops need none.
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+|(?<=[。！？])")
_ABBREVIATION_WORDS = (
    "e.g i.e etc vs mr mrs ms dr prof inc ltd co corp st no fig approx est dept jan feb mar apr jun "
    "jul aug sep sept oct nov dec u.s u.k"
)
_ABBREVIATIONS = frozenset(_ABBREVIATION_WORDS.split())
_EDGE_MARKUP = "#*_>`|~ \t"
_WORD_CHAR = re.compile(r"[^\W_]")
_CLOSED = re.compile(r"[.!?…。！？\"”’)\]]\s*$")


@dataclass(frozen=True)
class Sentence:
    """One sentence (or word window) of the document, in reading order."""

    index: int
    text: str
    keys: tuple[str, ...]
    heading: bool


def normalise(text: str) -> str:
    """Collapse every whitespace run to one space and strip the ends."""
    return " ".join(text.split())


def tokens(text: str) -> list[str]:
    """Word tokens of ``text`` as written (letters/digits of any script, inner ' and -)."""
    return _TOKEN.findall(text)


def token_runs(text: str) -> list[list[str]]:
    """Tokens grouped into runs not broken by punctuation: "tents, bikes" is two runs."""
    runs: list[list[str]] = [[]]
    end = 0
    for match in _TOKEN.finditer(text):
        if runs[-1] and text[end:match.start()].strip():
            runs.append([])
        runs[-1].append(match.group(0))
        end = match.end()
    return [run for run in runs if run]


# British and American spellings of the same word are one word (brand profiles use both).
_SPELLING = {"flavour": "flavor", "flavours": "flavors", "colour": "color", "colours": "colors",
             "savoury": "savory", "favourite": "favorite", "favourites": "favorites", "yoghurt": "yogurt",
             "yoghurts": "yogurts", "fibre": "fiber", "centre": "center", "centres": "centers",
             "behaviour": "behavior", "catalogue": "catalog", "organisation": "organization"}


@lru_cache(maxsize=65_536)  # a document's vocabulary is small next to its token count
def stem(word: str) -> str:
    """A light, deterministic stem: casefold and strip common English inflections."""
    w = word.casefold().replace("’", "'")
    w = _SPELLING.get(w, w)
    if w.endswith("'s"):
        w = w[:-2]
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 5 and w.endswith("ing"):
        return w[:-3]
    if len(w) > 4 and w.endswith("ed") and not w.endswith("eed"):
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


def content_keys(text: str) -> tuple[str, ...]:
    """Stems of the non-stopword, non-numeric tokens of ``text``, in order."""
    out = []
    for tok in tokens(text):
        low = tok.casefold()
        if low in STOPWORDS or low.isdigit() or len(low) < 2:
            continue
        out.append(stem(low))
    return tuple(out)


def has_number_fact(text: str) -> bool:
    """True when the text states a figure: a percentage, an amount, a multiple or a year."""
    return _NUMBER_FACT.search(text) is not None


def number_fact(text: str) -> str | None:
    """The first figure stated in ``text`` (e.g. "18 percent"), if any."""
    match = _NUMBER_FACT.search(text)
    return match.group(0).strip() if match else None


def _segments(text: str) -> list[tuple[str, bool]]:
    """Paragraph-level pieces: blank lines, headings and list items start a new piece."""
    out: list[tuple[str, bool]] = []
    for block in _BLANK_LINE.split(text):
        current: list[str] = []
        for line in block.split("\n"):
            heading = _HEADING.match(line) is not None
            if heading or _LIST_MARKER.match(line):
                if current:
                    out.append(("\n".join(current), False))
                current = []
                if heading:
                    out.append((line, True))
                    continue
            current.append(line)
        if current:
            out.append(("\n".join(current), False))
    return out


def _split_sentences(segment: str) -> list[str]:
    """Cut a segment at sentence ends, keeping abbreviations like "e.g." and "U.S." whole."""
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(segment):
        end = match.start()
        # Only the last word matters; a bounded look-back keeps this linear on "a. b. c. ..." text.
        head = segment[max(start, end - 40):end].rstrip("\"'”’)]")
        last = head.rsplit(None, 1)[-1] if head.split() else ""
        word = last.rstrip(".").casefold()
        if last.endswith(".") and (word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())):
            continue
        if segment[match.end():match.end() + 1].islower():
            continue  # "3 p.m. slump": a sentence does not start in lower case
        pieces.append(segment[start:match.end()])
        start = match.end()
    pieces.append(segment[start:])
    return pieces


def _windows(piece: str) -> list[str]:
    """Cut an over-long piece into word windows, or character windows for unspaced scripts."""
    words = piece.split()
    if len(words) > MAX_SENTENCE_WORDS:
        # Cut after a clause mark (; : ,) near the window size, else mid-clause: still a substring.
        out, start = [], 0
        while start < len(words):
            end = min(start + _WINDOW_WORDS, len(words))
            if end < len(words):
                for cut in range(end, start + _WINDOW_WORDS // 2, -1):
                    if words[cut - 1].endswith((";", ":", ",")):
                        end = cut
                        break
            out.append(" ".join(words[start:end]))
            start = end
        return out
    if len(piece) > MAX_SENTENCE_CHARS:
        step = 200
        return [piece[i:i + step] for i in range(0, len(piece), step)]
    return [piece]


def _clean_edges(piece: str) -> str:
    """Normalise whitespace and drop list markers and markup at the edges only (stays a substring)."""
    text = normalise(piece)
    text = _LIST_MARKER.sub("", text, count=1)
    return text.strip(_EDGE_MARKUP)


def _looks_like_title(segment: str) -> bool:
    """A short line with no closing punctuation is a title or list intro, not a quotable sentence."""
    words = segment.split()
    return 0 < len(words) <= 14 and _CLOSED.search(segment) is None


def scan_window(text: str) -> str:
    """The part of the text that is analysed: MAX_SCAN_CHARS from the line of the first word."""
    first = _WORD_CHAR.search(text)
    if first is None:
        return ""
    # Leading junk (a page of dots, a binary preamble) must not use up the window.
    start = max(text.rfind("\n", 0, first.start()) + 1, first.start() - 200)
    return text[start:start + MAX_SCAN_CHARS]


def split_sentences(text: str) -> list[Sentence]:
    """The document's sentences in order, bounded by MAX_SCAN_CHARS and MAX_SENTENCES."""
    scan = scan_window(text).replace("\r\n", "\n").replace("\r", "\n")
    out: list[Sentence] = []
    for segment, heading in _segments(scan):
        heading = heading or _looks_like_title(segment)
        pieces = [segment] if heading else _split_sentences(segment)
        for piece in pieces:
            for window in _windows(piece):
                cleaned = _clean_edges(window)
                if not cleaned or not any(ch.isalnum() for ch in cleaned):
                    continue
                out.append(Sentence(len(out), cleaned, content_keys(cleaned), heading))
                if len(out) >= MAX_SENTENCES:
                    return out
    return out


def shorten(text: str, max_words: int = 28) -> str:
    """The text cut to ``max_words`` words, with an ellipsis when cut."""
    words = text.split()
    if len(words) <= max_words:
        return text
    return " ".join(words[:max_words]).rstrip(",;:") + "…"


def join_names(items: list[str]) -> str:
    """English list: "a", "a and b", "a, b and c"."""
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]
