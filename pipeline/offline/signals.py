"""Stage 2 offline: market signals from the document that amplify each inspiration."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.document import Document
from pipeline.offline.analysis import Analysis, analyse
from pipeline.offline.ranking import similarity
from pipeline.offline.text import content_keys, join_names, normalise, number_fact, shorten, stem, tokens

_POOL = 300  # ranked sentences considered per inspiration: bounded, whatever the document size
_PER_INSPIRATION = 2

# Signal categories in tie-break order; trailing "*" marks a prefix, other words a light stem.
CATEGORIES = {
    "Market growth": "grow* growth market markets sales revenue* billion* million* share cagr increas* "
                     "rise rising rose surg* doubl* expand* declin* fell",
    "Consumer behaviour": "consumer* shopper* customer* people household* buyer* prefer* habit* "
                          "behavio* adopt* millennial* gen parent* famil* user*",
    "Technology": "technolog* digital* app apps ai online platform* data software sensor* "
                  "ecommerce e-commerce algorithm* automat*",
    "Sustainability": "sustainab* recycl* waste carbon climate circular reus* refill* packaging "
                      "plastic* eco* environment* renewab* repair*",
    "Health & wellness": "health* wellness protein* sugar* nutri* diet* organic natural clean-label "
                         "fitness calori* probiotic* gut plant-based vegan wellbeing",
    "Pricing & value": "price* pricing afford* cost* cheap* value discount* inflation budget* "
                       "spend* premium*",
    "Retail & channel": "retail* store* shelf shelves supermarket* grocer* channel* deliver* "
                        "shop shops outlet* direct-to-consumer dtc marketplace* wholesale*",
    "Culture & lifestyle": "culture* lifestyle* social* community communities travel* outdoor* "
                           "experience* identity fashion* ritual*",
}
_FALLBACK_CATEGORY = "Consumer behaviour"


def _matches(low: str, entries: list[str]) -> bool:
    """True when a lowercase token matches one lexicon entry (prefix or stem)."""
    return any(low.startswith(e[:-1]) if e.endswith("*") else stem(low) == stem(e) for e in entries)


_ENTRIES = {name: words.split() for name, words in CATEGORIES.items()}


def categorise(text: str) -> str:
    """The signal category whose lexicon ``text`` hits most (first listed wins ties)."""
    lows = [t.casefold() for t in tokens(text)]
    counts = {name: sum(1 for low in lows if _matches(low, entries)) for name, entries in _ENTRIES.items()}
    best = max(counts, key=lambda name: (counts[name], -list(CATEGORIES).index(name)))
    return best if counts[best] > 0 else _FALLBACK_CATEGORY


def _levels(strengths: list[float]) -> list[str]:
    """high / medium / low by rank within this document: the top third of signals is "high"."""
    order = sorted(range(len(strengths)), key=lambda i: (-strengths[i], i))
    levels = [""] * len(strengths)
    for rank, i in enumerate(order):
        share = rank / max(len(strengths), 1)
        levels[i] = "high" if share < 1 / 3 else "medium" if share < 2 / 3 else "low"
    return levels


def _relevance(level: str, fact: str | None, shared: list[str], central: bool) -> str:
    """The level and the reasons for it, for a person to read."""
    reasons = []
    if fact:
        reasons.append(f"quantified ({fact})")
    if shared:
        reasons.append(f"shares {join_names(shared)} with the inspiration")
    if central:
        reasons.append("one of the document's most central passages")
    return f"{level}: " + ("; ".join(reasons) if reasons else "related by topic")


def _candidates(a: Analysis, terms: tuple[str, ...], excluded: set[str]) -> list[tuple[float, float, int]]:
    """(-strength, similarity, index) for sentences sharing terms with the inspiration."""
    self_sim = similarity(terms, terms, a.weights) or 1.0
    out = []
    for i in a.ranked[:_POOL]:
        s = a.sentence(i)
        if s.text in excluded:
            continue
        sim = min(similarity(terms, s.keys, a.weights) / self_sim, 1.0)
        if sim <= 0:
            continue
        strength = 0.5 * sim + 0.3 * a.scores[i] + (0.2 if number_fact(s.text) else 0.0)
        out.append((-round(strength, 6), sim, i))
    out.sort()
    return out


def signal_amplification(document: Document, stage1: Mapping[str, Any]) -> dict[str, Any]:
    """Stage 2: per inspiration, the document's strongest related facts as categorised signals."""
    a = analyse(document.text)
    inspirations = list(stage1.get("inspirations", []))
    excluded = {normalise(q) for insp in inspirations for q in insp.get("evidence", [])}
    signals: list[dict[str, Any]] = []
    for insp in inspirations:
        title = str(insp.get("title", ""))
        evidence = [normalise(q) for q in insp.get("evidence", [])]
        terms = content_keys(" ".join([str(insp.get("key_phrase", "")), title, *evidence]))
        picks = [(-s, sim, i) for s, sim, i in _candidates(a, terms, excluded)[:_PER_INSPIRATION]]
        quotes = [(a.sentence(i).text, strength, a.scores[i]) for strength, _, i in picks]
        if not quotes:
            # A short document has nothing left to quote: amplify the inspiration's own evidence.
            quotes = [(q, 0.3, 0.0) for q in evidence[:1]]
        for text, strength, centrality in quotes:
            excluded.add(text)
            shared = [p.text for p in a.phrases_in(list(set(terms) & set(content_keys(text))), 2)]
            category = categorise(text)
            signals.append({
                "id": f"S{len(signals) + 1}",
                "category": category,
                "description": (f"“{shorten(text, 35)}” — a {category.lower()} signal that "
                                f"strengthens “{title}”."),
                "relevance": (number_fact(text), sorted(shared), centrality >= 0.7),
                "inspiration": title,
                "evidence": text,
                "strength": round(strength, 3),
            })
    for signal, level in zip(signals, _levels([s["strength"] for s in signals])):
        signal["relevance"] = _relevance(level, *signal["relevance"])
    return {"signals": signals}
