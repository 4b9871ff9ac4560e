"""One pass over a document's text: sentences, term weights, ranking and key phrases.

Stages 1, 2 and 5 all read the same document, so the analysis is cached per text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

from pipeline.offline.phrases import Phrase, extract_phrases
from pipeline.offline.ranking import rank, term_weights
from pipeline.offline.text import MAX_SCAN_CHARS, Sentence, split_sentences


@dataclass(frozen=True)
class Analysis:
    """Everything the offline stages need to know about a document, read-only."""

    sentences: tuple[Sentence, ...]
    scores: tuple[float, ...]
    ranked: tuple[int, ...]
    weights: Mapping[str, float]
    phrases: tuple[Phrase, ...]
    partial: bool  # only the first MAX_SCAN_CHARS were read: never true of a short file

    def sentence(self, index: int) -> Sentence:
        """The sentence at ``index`` in reading order."""
        return self.sentences[index]

    def phrases_in(self, keys: tuple[str, ...] | list[str], limit: int = 3) -> list[Phrase]:
        """Top document phrases whose words all occur in ``keys``, best first."""
        present = set(keys)  # membership only; output order comes from self.phrases
        return [p for p in self.phrases if all(k in present for k in p.key)][:limit]


@lru_cache(maxsize=8)
def analyse(text: str) -> Analysis:
    """Analyse ``text`` once; repeated calls with the same text return the cached result."""
    sentences = tuple(split_sentences(text))
    weights = term_weights(sentences)
    scores, ranked = rank(sentences, weights)
    phrases = extract_phrases(sentences)
    return Analysis(sentences, scores, ranked, MappingProxyType(weights), phrases,
                    partial=len(text) > MAX_SCAN_CHARS)
