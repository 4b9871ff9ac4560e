"""The gate's measures equal their plain definitions, on every sample, every junk kind and random text.

``pipeline.gate.measure`` is written for speed (it runs before stage 1 of every run): C-level
``map``/``sum`` and character-class regexes instead of per-character Python loops. This file keeps
the plain, obviously-right definitions of the same figures and checks that the fast code gives
exactly the same ``Measures``, so a gate decision can never change because of the speed-up.
"""

from __future__ import annotations

import functools
import random
import re
import sys
from pathlib import Path

import pytest

from bench.junk import JUNK
from pipeline.documents import media_type_for
from pipeline.gate import languages
from pipeline.gate.clean import clean
from pipeline.gate.measure import (
    _CJK,
    _PLAIN,
    _SENTENCE,
    _TOKEN,
    LOREM,
    MEASURE_CHARS,
    Measures,
    code_line,
    measure,
    odd_chars,
)
from pipeline.gate.relevance import MARKET_WORDS
from pipeline.pdf_text import extract_pdf_text

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"

# -- the plain definitions ------------------------------------------------------------------

_TERMINAL = re.compile(r"[.!?…:;。！？][\"'”’)\]]*$")
_CODE_LINE = re.compile(
    r"[{};]\s*$|^\s*(?:def|class|import|from|return|if|for|while|public|private|static|const|let|var|"
    r"function|#include|package|func|fn|SELECT|INSERT|UPDATE)\b|=>|->|::|==|!=|\w\(\)|\w+\s*=\s*[\w\"'\[({]"
)


def plain_function_share(words: list[str], code: str) -> float:
    if not words:
        return 0.0
    table = frozenset(languages.FUNCTION_WORDS[code].split())
    return sum(1 for w in words if w in table) / len(words)


def plain_detect(text: str, words: list[str]) -> tuple[str, float]:
    letters = sum(1 for ch in text if ch.isalpha())
    for code, pattern in languages._SCRIPTS:
        if letters and len(pattern.findall(text)) > 0.3 * letters:
            return code, 1.0
    shares = {code: plain_function_share(words, code) for code in languages.FUNCTION_WORDS}
    best = max(shares, key=lambda code: (shares[code], code == "en"))
    return best, shares[best]


def plain_is_prose(sentence: str, words: list[str], language: str) -> bool:
    if language in languages.SCRIPT_NAMES:
        return len(_CJK.findall(sentence)) >= 8 or (len(words) >= 5 and _TERMINAL.search(sentence) is not None)
    if len(words) < 5 or _TERMINAL.search(sentence) is None:
        return False
    if sum(1 for ch in sentence if not ch.isalnum() and not ch.isspace() and ch not in _PLAIN) > 0.08 * len(sentence):
        return False
    needed = 2 if len(words) >= 8 else 1
    return plain_function_share(words, language) * len(words) >= needed


def plain_measure(text: str) -> Measures:
    text = text[:MEASURE_CHARS]
    tokens = _TOKEN.findall(text)
    words = [t.casefold() for t in tokens if not t.isdigit() and any(ch.isalpha() for ch in t)]
    cjk = len(_CJK.findall(text))
    language, share = plain_detect(text, words)
    sentences = [s.strip() for s in _SENTENCE.split(text) if s and s.strip()]
    prose: list[str] = []
    prose_words = 0
    for sentence in sentences:
        own = [t.casefold() for t in _TOKEN.findall(sentence) if any(ch.isalpha() for ch in t)]
        if plain_is_prose(sentence, own, language):
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


# -- the corpora ----------------------------------------------------------------------------

def _text_of(name: str, data: bytes) -> str:
    if media_type_for(name, None, data) == "application/pdf":
        return extract_pdf_text(data).text
    return data.decode("utf-8", "replace")


@functools.cache
def corpus() -> dict[str, str]:
    """Every bundled sample and every junk kind, as the gate sees them (cleaned)."""
    texts = {p.name: p.read_bytes() for p in sorted(SAMPLES.iterdir())
             if p.is_file() and p.suffix in (".txt", ".md", ".pdf")}
    texts.update({junk.name: junk.build() for junk in JUNK.values()})
    return {name: clean(_text_of(name, data)).text for name, data in texts.items()}


_ALPHABET = ("abcdefghij ABC xyz 0123 42 ½ ² Ⅻ ٣ _ \t\n  .,;:!?'\"’‘“”()-–—%$€£¥/&… {}[]<>=#*@^~|\\ "
             "é ß ñ ç 中文字 한국 русский ελληνικά עברית हिन्दी ไทย العربية \u00a0\u2028\u3000 the of and le de der")


def random_texts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    pieces = _ALPHABET.split(" ") + [" ", " ", "\n", ". ", "\n\n", "x = 1", "f()", "def ", "a->b", "{", ";"]
    return ["".join(rng.choice(pieces) + rng.choice(["", " "]) for _ in range(rng.randint(0, 400)))
            for _ in range(count)]


# -- the checks -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(corpus()))
def test_measure_equals_its_plain_definition_on_every_sample_and_junk_kind(name):
    text = corpus()[name]
    assert measure(text) == plain_measure(text)


def test_measure_equals_its_plain_definition_on_random_text():
    for text in random_texts(400, seed=7):
        assert measure(text) == plain_measure(text), repr(text[:200])


def test_the_odd_character_class_is_exactly_not_alphanumeric_not_space_not_plain_punctuation():
    # Every code point: the regex's \w and \s must agree with str.isalnum and str.isspace.
    every = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF)
    expected = sum(1 for ch in every if not ch.isalnum() and not ch.isspace() and ch not in _PLAIN)
    assert odd_chars(every) == expected


def test_a_code_line_is_exactly_what_the_plain_pattern_finds():
    lines = [line for text in [*corpus().values(), *random_texts(200, seed=11)] for line in text.split("\n")]
    lines += ["x=1", "total  =  'a'", "a.b = (1)", "foo()", "def f", "  return x", "if x", "a => b", "end;  ",
              "word = ", "é=ü", "_=1", "x ==y", "__init__()", "price = 3 dollars", "SELECT *"]
    assert [code_line(line) for line in lines] == [_CODE_LINE.search(line) is not None for line in lines]


_MARKET = re.compile(
    r"\b(?:consumer|customer|shopper|buyer|household|client|user|patient|diner|guest|traveller|traveler|"
    r"market|sales?|sold|sell|selling|demand|price|pricing|priced|brand|product|retail|retailer|store|"
    r"shop|grocer|grocery|supermarket|launch|launched|purchase|purchas|spend|spending|revenue|category|"
    r"segment|adoption|subscription|subscriber|premium|trend|menu|restaurant|shelf|shelves|channel|"
    r"e-commerce|ecommerce|online|competitor|share of|trial|repeat|loyalty|margin|volume|packaging|"
    r"flavou?r|format|offer|offering|service|rental|resale|industry|sector|company|companies|business)"
    r"(?:e?s|ed|ing)?\b",
    re.IGNORECASE,
)


def test_relevance_finds_a_market_word_exactly_where_the_plain_pattern_does():
    from pipeline.gate.relevance import _MARKET as grouped

    words = [w.replace("?", "") for w in MARKET_WORDS] + ["sale", "flavor", "flavour", "ſhop", "Ⓢtore", "retailers"]
    probes = [f"{pre}{w.upper() if i % 3 == 0 else w}{suffix}{post}"
              for i, w in enumerate(words) for suffix in ("", "s", "es", "ed", "ing", "x", "-")
              for pre, post in (("", ""), ("a ", " b"), ("x", ""), ("", "_"), ("é", ""))]
    texts = probes + [s for text in [*corpus().values(), *random_texts(200, seed=3)] for s in text.split("\n")]
    assert [grouped.search(t) is not None for t in texts] == [_MARKET.search(t) is not None for t in texts]
