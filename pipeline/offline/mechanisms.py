"""The ten innovation mechanisms of contract §8, their keyword lexicons and classification."""

from __future__ import annotations

from pipeline.offline.text import stem, tokens
from pipeline.vocabulary import MECHANISM_MEANINGS, MECHANISM_TYPES

# Used when nothing in the text points anywhere: "the same thing, seen differently".
FALLBACK = "REFRAMED"

LABELS = {
    "UNBUNDLED": "Unbundled", "COMBINED": "Combined", "REMOVED_FRICTION": "Removed friction",
    "CHANGED_MODEL": "Changed model", "REFRAMED": "Reframed", "DEMOCRATIZED": "Democratized",
    "PREMIUMIZED": "Premiumized", "DIGITIZED_ANALOG": "Digitized analog",
    "HUMANIZED_DIGITAL": "Humanized digital", "TIME_SHIFTED": "Time-shifted",
}

# What the mechanism does, phrased to follow "The innovation ..." in a description.
GLOSS = MECHANISM_MEANINGS

# Title templates for stage 1; {phrase} is the document's own phrase for the subject.
TITLES = {
    "UNBUNDLED": "Unbundling {phrase}",
    "COMBINED": "Combining {phrase} into one offer",
    "REMOVED_FRICTION": "Taking the friction out of {phrase}",
    "CHANGED_MODEL": "A new way to pay for {phrase}",
    "REFRAMED": "Reframing {phrase}",
    "DEMOCRATIZED": "Bringing {phrase} to everyone",
    "PREMIUMIZED": "Premiumizing {phrase}",
    "DIGITIZED_ANALOG": "A digital layer for {phrase}",
    "HUMANIZED_DIGITAL": "Putting the human back into {phrase}",
    "TIME_SHIFTED": "Shifting when {phrase} happens",
}

# Trailing "*" marks a prefix, "_" joins a two-word phrase; other entries match a light stem.
_LEXICON = {
    "UNBUNDLED": "unbundl* single-serve single-use sachet* portion* a-la-carte standalone "
                 "stand-alone modular individual separately pay-per-use mini minis piece component "
                 "by-the-glass split",
    "COMBINED": "combin* hybrid* bundl* fusion mashup mash-up collab* partner* pair* integrat* "
                "all-in-one kit blend* crossover cross-over co-brand* merg* together",
    "REMOVED_FRICTION": "friction* hassle* effortless easy easier simplif* seamless* one-click "
                        "instant* quick* fast faster convenien* automat* skip* shortcut* "
                        "streamlin* pre-made ready-to-use ready-to-cook no-fuss",
    "CHANGED_MODEL": "subscri* rental rent renting resale resell* second-hand secondhand "
                     "membership* lease leasing refill* reus* circular take-back trade-in marketplace* "
                     "direct-to-consumer dtc d2c recurring refurbish* repair* sharing freemium "
                     "pay-as-you-go business_model",
    "REFRAMED": "refram* reposition* rebrand* redefin* rethink* reimagin* perception* narrative* "
                "storytell* guilt* identity meaning purpose ritual* lifestyle self-care stigma* "
                "normaliz* mindset status symbol seen_as",
    "DEMOCRATIZED": "democrati* affordab* access accessib* inclusiv* everyone mass budget* cheap* "
                    "low-cost entry-level value-priced open-source diy beginner* private-label "
                    "discount* for_all",
    "PREMIUMIZED": "premium* luxur* artisan* craft* gourmet exclusiv* limited-edition heritage "
                   "provenance upscale high-end indulg* specialty prestig* curat* small-batch "
                   "single-origin elevat* upgrad* trade-up trading_up",
    "DIGITIZED_ANALOG": "digit* app apps online e-commerce ecommerce smartphone* mobile qr sensor* "
                        "connected smart ai algorithm* virtual* augmented scan scann* internet iot "
                        "software track* wearable*",
    "HUMANIZED_DIGITAL": "human* personal* creator* influencer* handmade hand-made in-person "
                         "face-to-face empath* authentic* concierge coach* expert* advice stylist* "
                         "conversation* community communities experiential in-store workshop* "
                         "real_people",
    "TIME_SHIFTED": "on-demand anytime 24/7 overnight pre-order preorder advance schedul* "
                    "meal-prep make-ahead ready-to-eat shelf-stable frozen seasonal* weekend* "
                    "late-night on-the-go later on_demand buy_now",
}


def _build() -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]], tuple[tuple[str, str], ...]]:
    """Index the lexicon once: exact stems, prefixes and multi-word phrases."""
    exact: dict[str, list[str]] = {}
    prefix: dict[str, list[str]] = {}
    phrases: list[tuple[str, str]] = []
    for mechanism in MECHANISM_TYPES:
        words = _LEXICON[mechanism].split()
        for word in words:
            if "_" in word:
                phrases.append((word.replace("_", " "), mechanism))
            elif word.endswith("*"):
                prefix.setdefault(word[:-1], []).append(mechanism)
            else:
                exact.setdefault(stem(word), []).append(mechanism)
    return ({k: tuple(v) for k, v in exact.items()}, {k: tuple(v) for k, v in prefix.items()},
            tuple(phrases))


_EXACT, _PREFIX, _PHRASES = _build()
_PREFIX_LENGTHS = tuple(sorted({len(p) for p in _PREFIX}))


def mechanism_scores(text: str) -> dict[str, float]:
    """How strongly ``text`` points at each mechanism (counts of lexicon hits, in fixed order)."""
    scores = dict.fromkeys(MECHANISM_TYPES, 0.0)
    lows = [tok.casefold() for tok in tokens(text)]
    for low in lows:
        hits = list(_EXACT.get(stem(low), ()))
        for size in _PREFIX_LENGTHS:
            if size <= len(low):
                hits.extend(_PREFIX.get(low[:size], ()))
        for mechanism in dict.fromkeys(hits):
            scores[mechanism] += 1.0
    padded = " " + " ".join(lows) + " "
    for phrase, mechanism in _PHRASES:
        if f" {phrase} " in padded:
            scores[mechanism] += 1.5
    return scores


def cues(text: str, mechanism: str) -> list[str]:
    """The words of ``text`` (as written) that point at ``mechanism``, in order: the evidence for it."""
    found: list[str] = []
    for tok in tokens(text):
        low = tok.casefold()
        hit = mechanism in _EXACT.get(stem(low), ()) or any(
            mechanism in _PREFIX.get(low[:size], ()) for size in _PREFIX_LENGTHS if size <= len(low))
        if hit and tok not in found:
            found.append(tok)
    padded = " " + " ".join(t.casefold() for t in tokens(text)) + " "
    found += [phrase for phrase, m in _PHRASES if m == mechanism and f" {phrase} " in padded]
    return found


def best_of(scores: dict[str, float], avoid: tuple[str, ...] = ()) -> str:
    """The top-scoring mechanism; one in ``avoid`` yields to a runner-up scoring at least half."""
    ordered = sorted(MECHANISM_TYPES, key=lambda m: (-scores.get(m, 0.0), MECHANISM_TYPES.index(m)))
    best = ordered[0]
    if scores.get(best, 0.0) <= 0:
        return FALLBACK
    if best in avoid:
        for mechanism in ordered[1:]:
            # Distinct mechanisms make the inspirations more useful, but not at any price.
            if mechanism not in avoid and scores[mechanism] >= scores[best] / 2:
                return mechanism
    return best


def classify(text: str, avoid: tuple[str, ...] = ()) -> str:
    """The best mechanism for ``text`` (see :func:`best_of`), or FALLBACK when nothing matches."""
    return best_of(mechanism_scores(text), avoid)


def label(mechanism: str) -> str:
    """Human label of a mechanism type, e.g. "Removed friction"."""
    return LABELS.get(mechanism, mechanism.replace("_", " ").capitalize())
