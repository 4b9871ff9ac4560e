"""Stage 1 offline: a summary, the core mechanism and 1-3 inspirations, each a claim of the document.

Each inspiration is named after the thing its claim describes ("Heat scale", "Dinner kits"), its
mechanism comes from the cue words of the claim (kept in ``cue``), and its evidence is the claim
plus up to two sentences that speak of the same thing.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from config.errors import DOCUMENT_LANGUAGE_UNSUPPORTED, StageError
from pipeline.document import Document
from pipeline.gate.languages import name as language_name
from pipeline.offline.analysis import Analysis, analyse
from pipeline.offline.claims import Claim, claims, lower_thing
from pipeline.offline.mechanisms import GLOSS, label
from pipeline.offline.ranking import similarity
from pipeline.offline.text import MAX_SCAN_CHARS, has_number_fact, join_names, shorten

# What each mechanism did to the thing, to follow "<Thing>: " in a title.
MOVES = {
    "UNBUNDLED": "sold in parts people want", "COMBINED": "two needs met in one offer",
    "REMOVED_FRICTION": "the effort taken out", "CHANGED_MODEL": "a new way to pay for it or get it",
    "REFRAMED": "a new meaning for a familiar product", "DEMOCRATIZED": "opened up to many more people",
    "PREMIUMIZED": "made worth trading up for", "DIGITIZED_ANALOG": "a digital layer on a physical routine",
    "HUMANIZED_DIGITAL": "the human touch put back", "TIME_SHIFTED": "moved to a better moment",
}
_MAX_INSPIRATIONS = 3


def _distinct(picked: list[Claim], claim: Claim) -> bool:
    """A claim about a thing no earlier pick covers (no shared stem, different sentence)."""
    return all(not set(claim.thing_keys) & set(p.thing_keys) and p.index != claim.index for p in picked)


def pick_inspirations(found: tuple[Claim, ...], limit: int = _MAX_INSPIRATIONS) -> list[Claim]:
    """The strongest claims about distinct things, preferring a mechanism not yet picked."""
    picked: list[Claim] = []
    for _ in range(limit):
        mechanisms = {p.mechanism for p in picked}
        pool = [c for c in found[:40] if _distinct(picked, c)]
        if not pool:
            break
        picked.append(min(pool, key=lambda c: (-(c.strength - (0.35 if c.mechanism in mechanisms else 0.0)),
                                               c.index)))
    return picked


def _support(a: Analysis, claim: Claim, used: set[int], limit: int) -> list[str]:
    """Up to ``limit`` more sentences about the same thing, most central first."""
    scored = []
    for i in a.ranked[:150]:
        if i in used:
            continue
        sentence = a.sentence(i)
        shared = similarity(claim.thing_keys, sentence.keys, a.weights)
        if shared > 0:
            scored.append((-(shared + a.scores[i]), i))
    chosen = [i for _, i in sorted(scored)[:limit]]
    used.update(chosen)
    return [a.sentence(i).text for i in chosen]


def _summary(document: Document, a: Analysis, found: tuple[Claim, ...]) -> str:
    """Topic, central claim and key figure, in the document's own words."""
    things = list(dict.fromkeys(lower_thing(c.thing) for c in found[:8]))[:4] or [p.text for p in a.phrases[:3]]
    top = a.sentence(a.ranked[0])
    text = (f"“{document.name}” ({document.words:,} words) covers {join_names(things) or 'its subject'}. "
            f"Its most central statement: “{shorten(top.text, 40)}”")
    fact = next((a.sentence(i) for i in a.ranked[1:20] if has_number_fact(a.sentence(i).text)), None)
    if fact is not None:
        text += f" A key figure: “{shorten(fact.text, 30)}”"
    if document.truncated:
        text += f" The document was cut to {len(document.text):,} of {document.original_chars:,} characters."
    if len(document.text) > MAX_SCAN_CHARS:
        text += f" Only its first {MAX_SCAN_CHARS:,} characters were analysed."
    return text


def _core(picked: list[Claim], found: tuple[Claim, ...]) -> str:
    """The mechanism most of the document's cued claims point at, and how many do."""
    cued = [c for c in found[:30] if not c.cue.startswith("no cue")]
    counts = Counter(c.mechanism for c in cued)
    allowed = [p.mechanism for p in picked]
    if not counts or not any(counts[m] for m in allowed):
        lead = picked[0]
        return (f"{label(lead.mechanism)} ({lead.mechanism}): no one mechanism dominates the document's claims; "
                f"the clearest case is {lead.thing}, where the innovation {GLOSS[lead.mechanism]}.")
    core = max(allowed, key=lambda m: (counts[m], -allowed.index(m)))
    lead = next(p for p in picked if p.mechanism == core)
    return (f"{label(core)} ({core}): {counts[core]} of the document's {len(cued)} strongest claims with a cue "
            f"word point here; the innovation {GLOSS[core]}, most clearly in {lead.thing}.")


def _fallback_claim(a: Analysis) -> Claim:
    """A claim for a document too short or too odd for any phrase: its most central sentence."""
    i = a.ranked[0]
    text = a.sentence(i).text
    return Claim(i, text, shorten(text, 4).rstrip("…").strip(".,;:"), a.sentence(i).keys[:2], None, "REFRAMED",
                 "no cue word nearby; classified as REFRAMED by default", "Consumer behaviour", None, 0.0, ())


def input_processing(document: Document) -> dict[str, Any]:
    """Stage 1: summary, core mechanism and 1-3 inspirations with verbatim evidence and their cue."""
    if document.language != "en":
        raise StageError(1, f"document {document.name!r} is in {language_name(document.language)}; the offline "
                            "engine reads English only: set OPENROUTER_API_KEY to use the LLM engine, which reads "
                            "any language, or upload an English version", code=DOCUMENT_LANGUAGE_UNSUPPORTED)
    a = analyse(document.text)
    if not a.ranked:
        raise StageError(1, f"document {document.name!r} holds no readable text to analyse", code="DOCUMENT_EMPTY")
    found = claims(document.text)
    picked = pick_inspirations(found) or [_fallback_claim(a)]
    used = {p.index for p in picked}
    # Supporting quotes only when the document has claims to spare: stage 2 needs some left for signals.
    spare = len(found) - len(picked)
    limit = 2 if spare >= 12 else 1 if spare >= 6 else 0
    inspirations = []
    for claim in picked:
        evidence = [claim.text, *_support(a, claim, used, limit)]
        figure = f" ({claim.figure})" if claim.figure else ""
        inspirations.append({
            "title": f"{claim.thing}: {MOVES[claim.mechanism]}",
            "description": (f"{claim.thing}{figure}: “{shorten(claim.text, 32)}” Read as "
                            f"{label(claim.mechanism).lower()}: the innovation {GLOSS[claim.mechanism]}."),
            "mechanism_type": claim.mechanism,
            "evidence": evidence,
            "cue": claim.cue,
        })
    return {"summary": _summary(document, a, found), "core_mechanism": _core(picked, found),
            "inspirations": inspirations}
