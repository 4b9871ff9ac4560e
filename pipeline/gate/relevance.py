"""How much of a document speaks of markets, consumers or products: its relevance to the pipeline.

Chosen behaviour (README, "The input gate"): a document with little or no such signal is NOT
refused. It completes, and the report's first lines state its low relevance with the count
behind it. A compiler paper can still teach a food brand something (stage 3 translates across
industries); a refusal would throw that away on a word count. Junk is refused by the prose rules.
"""

from __future__ import annotations

import re

from pipeline.document import Relevance

# The words (regex fragments) that name a market, consumer or product; any may take -s, -es, -ed, -ing.
_WORDS = (
    "consumer customer shopper buyer household client user patient diner guest traveller traveler "
    "market sales? sold sell selling demand price pricing priced brand product retail retailer store "
    "shop grocer grocery supermarket launch launched purchase purchas spend spending revenue category "
    "segment adoption subscription subscriber premium trend menu restaurant shelf shelves channel "
    "e-commerce ecommerce online competitor share_of trial repeat loyalty margin volume packaging "
    "flavou?r format offer offering service rental resale industry sector company companies business"
)
MARKET_WORDS = tuple(word.replace("_", " ") for word in _WORDS.split())  # "share_of" is two words


def _by_first_letter(fragments: tuple[str, ...] | list[str]) -> str:
    """One alternation grouped by first letter: the same words, tried once per position instead of once per word."""
    groups: dict[str, list[str]] = {}
    for fragment in fragments:
        groups.setdefault(fragment[0], []).append(fragment[1:])
    return "|".join(f"{re.escape(first)}(?:{'|'.join(rest)})" for first, rest in groups.items())


_MARKET = re.compile(r"\b(?:" + _by_first_letter(MARKET_WORDS) + r")(?:e?s|ed|ing)?\b", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?…])\s+|\n")
HIGH, MEDIUM = 0.3, 0.12  # shares of sentences with a market, consumer or product word


def assess(text: str, language: str) -> Relevance:
    """The share of sentences naming a market, consumer or product (English vocabulary only)."""
    sentences = [s for s in _SENTENCE.split(text[:200_000]) if len(s.split()) >= 4]
    if language != "en":
        return Relevance("unknown", 0, len(sentences))
    hits = sum(1 for s in sentences if _MARKET.search(s))
    share = hits / max(len(sentences), 1)
    level = "high" if share >= HIGH else "medium" if share >= MEDIUM else "low"
    return Relevance(level, hits, len(sentences))
