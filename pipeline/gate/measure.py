"""Measure cleaned text: how much of it is prose, in which language, how repetitive, how placeholder-like.

Pure and linear: every figure comes from one pass over at most MEASURE_CHARS of the text, so a
very long document costs no more than a long one.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from pipeline.gate import languages

MEASURE_CHARS = 200_000
_TOKEN = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")
_SENTENCE = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+|(?<=[。！？])|\n")
_TERMINAL = re.compile(r"[.!?…:;。！？][\"'”’)\]]*$")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
_PLAIN = set(".,;:!?'\"’‘“”()-–—%$€£¥/&…")
# A character that is neither alphanumeric, nor space, nor ordinary punctuation. The regex's \w
# and \s are str.isalnum (plus "_") and str.isspace code point for code point, so counting its
# matches equals counting with those methods, in C (tests/unit/test_gate_measures.py checks all).
_ODD = re.compile("[^\\w\\s" + "".join(re.escape(ch) for ch in sorted(_PLAIN)) + "]|_")
# A line of source code. The assignment branch starts only at a word's start and takes the word
# whole (possessive): "\w+\s*=" can only match that way, and it no longer retries every suffix
# of every word, which made the plain pattern quadratic in word length.
_CODE_START = re.compile(
    r"\s*(?:def|class|import|from|return|if|for|while|public|private|static|const|let|var|"
    r"function|#include|package|func|fn|SELECT|INSERT|UPDATE)\b"
)
_CODE_ANYWHERE = re.compile(r"[{};]\s*$|=>|->|::|==|!=|\w\(\)|(?<!\w)\w++\s*=\s*[\w\"'\[({]")
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


def odd_chars(text: str) -> int:
    """How many characters of ``text`` are neither alphanumeric, nor space, nor ordinary punctuation."""
    return len(_ODD.findall(text))


def code_line(line: str) -> bool:
    """True for a line that looks like source code (a keyword first, an operator, a call, an assignment)."""
    return _CODE_START.match(line) is not None or _CODE_ANYWHERE.search(line) is not None


@lru_cache(maxsize=65_536)
def _has_letter(token: str) -> bool:
    # Memoised: a document repeats its words, and this runs for every token before stage 1.
    return any(map(str.isalpha, token))


def _is_prose(sentence: str, words: list[str], language: str) -> bool:
    """A sentence a person wrote: enough words, some function words, sentence punctuation."""
    if language in languages.SCRIPT_NAMES:
        return len(_CJK.findall(sentence)) >= 8 or (len(words) >= 5 and _TERMINAL.search(sentence) is not None)
    if len(words) < 5 or _TERMINAL.search(sentence) is None:
        return False
    if odd_chars(sentence) > 0.08 * len(sentence):
        return False
    needed = 2 if len(words) >= 8 else 1
    return languages.function_share(words, language) * len(words) >= needed


def measure(text: str) -> Measures:
    """Every measure the gate rules use, from the first MEASURE_CHARS of ``text``."""
    text = text[:MEASURE_CHARS]
    sentences = [s.strip() for s in _SENTENCE.split(text) if s and s.strip()]
    # Sentence splits fall on whitespace and punctuation, never inside a token, so the text's
    # tokens are its sentences' tokens in order: the text is tokenised once.
    tokens_of = [_TOKEN.findall(sentence) for sentence in sentences]
    tokens = [t for own in tokens_of for t in own]
    words = [t.casefold() for t in tokens if not t.isdigit() and _has_letter(t)]
    cjk = len(_CJK.findall(text))
    language, share = languages.detect(text, words)
    prose: list[str] = []
    prose_words = 0
    for sentence, sentence_tokens in zip(sentences, tokens_of, strict=True):
        own = [t.casefold() for t in sentence_tokens if _has_letter(t)]
        if _is_prose(sentence, own, language):
            prose.append(" ".join(sentence.split()).casefold())
            prose_words += len(own) or len(_CJK.findall(sentence)) // 2
    visible = len(text) - sum(map(str.isspace, text))
    lines = [line for line in text.split("\n") if line.strip()]
    code = sum(map(code_line, lines))
    sentence_chars = sum(map(len, sentences)) or 1
    return Measures(
        words=len(words) + cjk // 2, numbers=sum(map(str.isdigit, tokens)),
        language=language, function_share=round(share, 4),
        sentences=len(sentences), prose_sentences=len(prose), prose_words=prose_words,
        prose_share=round(sum(map(len, prose)) / sentence_chars, 4), distinct_prose=len(set(prose)),
        symbol_share=round(odd_chars(text) / max(visible, 1), 4), code_share=round(code / max(len(lines), 1), 4),
        lorem_share=round(sum(map(LOREM.__contains__, words)) / max(len(words), 1), 4),
    )


def top_line(text: str) -> tuple[str, int, int]:
    """The most repeated non-blank line, how often it occurs, and how many non-blank lines there are."""
    lines = [" ".join(line.split()) for line in text[:MEASURE_CHARS].split("\n") if line.strip()]
    if not lines:
        return "", 0, 0
    line, count = min(Counter(lines).items(), key=lambda item: (-item[1], item[0]))
    return line, count, len(lines)
