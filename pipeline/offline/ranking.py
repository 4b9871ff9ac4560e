"""Sentence ranking: centroid (TF-IDF-like) centrality plus bonuses for facts and position.

Linear in the number of sentences: each sentence is scored against document-wide term weights,
never against every other sentence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from pipeline.offline.text import Sentence, has_number_fact

# Words that mark a sentence as being about change in the market, the stuff of trend reports.
_CUES = tuple(
    "trend shift grow demand consumer customer shopper launch adopt rise increas emerg "
    "prefer switch popular innovat".split()
)
_MARKUP = set("*_#|`[]<>{}")
# Front-matter and fine print: central-looking (it names everything) but no one's evidence.
_BOILERPLATE = tuple(
    "illustrative composite sample methodolog survey disclaim copyright reserved confidential "
    "cookie privacy unsubscrib newsletter click author".split()
)


def term_weights(sentences: Sequence[Sentence]) -> dict[str, float]:
    """Centroid weight per stem: log term frequency times inverse sentence frequency."""
    tf: dict[str, int] = {}
    df: dict[str, int] = {}
    for sentence in sentences:
        for key in sentence.keys:
            tf[key] = tf.get(key, 0) + 1
        for key in dict.fromkeys(sentence.keys):
            df[key] = df.get(key, 0) + 1
    n = max(len(sentences), 1)
    return {key: math.log1p(tf[key]) * math.log(1 + n / df[key]) for key in tf}


def _length_factor(words: int) -> float:
    """Very short or very long sentences make poor evidence."""
    if words < 6:
        return 0.4
    if words < 10:
        return 0.8
    if words > 40:
        return 0.8
    return 1.0


def is_boilerplate(sentence: Sentence) -> bool:
    """True for fine print ("figures are illustrative", "all rights reserved")."""
    return sum(1 for key in dict.fromkeys(sentence.keys) if key.startswith(_BOILERPLATE)) >= 2


def score_sentence(sentence: Sentence, weights: Mapping[str, float], total: int) -> float:
    """How central and quotable one sentence is (unnormalised)."""
    unique = list(dict.fromkeys(sentence.keys))
    if not unique:
        return 0.0
    base = sum(weights.get(key, 0.0) for key in unique) / math.sqrt(len(unique))
    factor = _length_factor(len(sentence.text.split()))
    if has_number_fact(sentence.text):
        factor *= 1.3  # a quoted figure makes a signal concrete
    if sentence.index < max(total * 0.15, 3):
        factor *= 1.1  # reports put their thesis up front
    if any(key.startswith(_CUES) for key in unique):
        factor *= 1.1
    if sum(ch in _MARKUP for ch in sentence.text) > 4:
        factor *= 0.6
    if sentence.text.endswith(":"):  # a list intro says what follows, not what happened
        factor *= 0.5
    if sentence.text.endswith("?"):
        factor *= 0.8
    if sentence.heading:
        factor *= 0.3
    return base * factor


def rank(sentences: Sequence[Sentence], weights: Mapping[str, float]) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """Scores scaled to 0-1 and the candidate sentence indices, best first."""
    raw = [score_sentence(s, weights, len(sentences)) for s in sentences]
    top = max(raw, default=0.0) or 1.0
    scores = tuple(round(value / top, 6) for value in raw)
    usable = [s.index for s in sentences
              if not s.heading and len(s.text.split()) >= 4 and not is_boilerplate(s)]
    if not usable:
        usable = [s.index for s in sentences]  # a tiny or unpunctuated document: take what exists
    ordered = sorted(usable, key=lambda i: (-scores[i], i))
    return scores, tuple(ordered)


def similarity(a: Sequence[str], b: Sequence[str], weights: Mapping[str, float]) -> float:
    """Weighted overlap of two stem sequences (0 when they share nothing)."""
    others = set(b)  # membership only: the sum below runs in a's order, so it is deterministic
    shared = [key for key in dict.fromkeys(a) if key in others]
    return sum(weights.get(key, 1.0) for key in shared)
