"""Measure cleaned text: how much of it is prose, in which language, how repetitive, how placeholder-like.

Pure and linear: every figure comes from one pass over at most MEASURE_CHARS of the text, so a
very long document costs no more than a long one.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from pipeline.gate import languages

MEASURE_CHARS = 200_000
_TOKEN = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")
_SENTENCE = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+|(?<=[。！？])|\n")
_TERMINAL = re.compile(r"[.!?…:;。！？][\"'”’)\]]*$")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
_PLAIN = set(".,;:!?'\"’‘“”()-–—%$€£¥/&…")
_CODE_LINE = re.compile(
    r"[{};]\s*$|^\s*(?:def|class|import|from|return|if|for|while|public|private|static|const|let|var|"
    r"function|#include|package|func|fn|SELECT|INSERT|UPDATE)\b|=>|->|::|==|!=|\w\(\)|\w+\s*=\s*[\w\"'\[({]"
)
_LOREM_WORDS = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et "
    "dolore magna aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris nisi aliquip ex ea "
    "commodo consequat duis aute irure in reprehenderit voluptate velit esse cillum fugiat nulla pariatur "
    "excepteur sint occaecat cupidatat non proident sunt culpa qui officia deserunt mollit anim id est "
    "laborum vestibulum curabitur pellentesque nunc nisl mauris viverra sapien quam aenean felis"
)
LOREM = frozenset(_LOREM_WORDS.split())


@dataclass(frozen=True)
class Measures:
    """What the gate's rules decide on; every count is of the cleaned text."""

    words: int  # tokens with a letter
    numbers: int  # tokens of digits only
    language: str
    function_share: float  # share of words that are function words of ``language``
    sentences: int
    prose_sentences: int  # long enough, ends like a sentence, has function words, few symbols
    prose_words: int
    prose_share: float  # share of sentence characters inside prose sentences
    distinct_prose: int  # prose sentences, repeats counted once
    symbol_share: float  # characters that are neither letters, digits nor ordinary punctuation
    code_share: float  # share of lines that look like source code
    lorem_share: float  # share of words from placeholder Latin

    @property
    def tokens(self) -> int:
        """Words and numbers together."""
        return self.words + self.numbers


def _is_prose(sentence: str, words: list[str], language: str) -> bool:
    """A sentence a person wrote: enough words, some function words, sentence punctuation."""
    if language in languages.SCRIPT_NAMES:
        return len(_CJK.findall(sentence)) >= 8 or (len(words) >= 5 and _TERMINAL.search(sentence) is not None)
    if len(words) < 5 or _TERMINAL.search(sentence) is None:
        return False
    if sum(1 for ch in sentence if not ch.isalnum() and not ch.isspace() and ch not in _PLAIN) > 0.08 * len(sentence):
        return False
    needed = 2 if len(words) >= 8 else 1
    return languages.function_share(words, language) * len(words) >= needed


def measure(text: str) -> Measures:
    """Every measure the gate rules use, from the first MEASURE_CHARS of ``text``."""
    text = text[:MEASURE_CHARS]
    tokens = _TOKEN.findall(text)
    words = [t.casefold() for t in tokens if not t.isdigit() and any(ch.isalpha() for ch in t)]
    cjk = len(_CJK.findall(text))
    language, share = languages.detect(text, words)
    sentences = [s.strip() for s in _SENTENCE.split(text) if s and s.strip()]
    prose: list[str] = []
    prose_words = 0
    for sentence in sentences:
        own = [t.casefold() for t in _TOKEN.findall(sentence) if any(ch.isalpha() for ch in t)]
        if _is_prose(sentence, own, language):
            prose.append(" ".join(sentence.split()).casefold())
            prose_words += len(own) or len(_CJK.findall(sentence)) // 2
    visible = [ch for ch in text if not ch.isspace()]
    odd = sum(1 for ch in visible if not ch.isalnum() and ch not in _PLAIN)
    lines = [line for line in text.split("\n") if line.strip()]
    code = sum(1 for line in lines if _CODE_LINE.search(line))
    sentence_chars = sum(len(s) for s in sentences) or 1
    return Measures(
        words=len(words) + cjk // 2, numbers=sum(1 for t in tokens if t.isdigit()),
        language=language, function_share=round(share, 4),
        sentences=len(sentences), prose_sentences=len(prose), prose_words=prose_words,
        prose_share=round(sum(len(s) for s in prose) / sentence_chars, 4), distinct_prose=len(set(prose)),
        symbol_share=round(odd / max(len(visible), 1), 4), code_share=round(code / max(len(lines), 1), 4),
        lorem_share=round(sum(1 for w in words if w in LOREM) / max(len(words), 1), 4),
    )


def top_line(text: str) -> tuple[str, int, int]:
    """The most repeated non-blank line, how often it occurs, and how many non-blank lines there are."""
    lines = [" ".join(line.split()) for line in text[:MEASURE_CHARS].split("\n") if line.strip()]
    if not lines:
        return "", 0, 0
    line, count = min(Counter(lines).items(), key=lambda item: (-item[1], item[0]))
    return line, count, len(lines)
