"""Stage 5 offline: five cards, each one claim of this document mapped onto one product line of the brand.

Claims and innovation types are paired greedily, best pair first: a type's affinity with the
claim's words and category, the claim's strength, and how well a product line fits the claim.
Each card gets a different claim (and so a different thing in its title) while the document has
five; product lines are spread over the cards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pipeline.document import Document
from pipeline.offline.analysis import Analysis, analyse
from pipeline.offline.brand_fit import best_match, profile_of, short_customer
from pipeline.offline.cards import CardPlan, write_card
from pipeline.offline.claims import Claim, claims, common_keys
from pipeline.offline.inspirations import _fallback_claim
from pipeline.offline.text import content_keys, stem
from pipeline.vocabulary import INNOVATION_TYPES

if TYPE_CHECKING:
    from pipeline.brands import BrandProfile

_TYPE_WORDS = {
    "Better-For-You": "health healthy wellness protein organic natural light reduced sodium salt sugar fat "
                      "nutrition clean plant vegan probiotic fitness gut fresh free wellbeing fibre fiber "
                      "blood pressure calorie diet lactose allergen",
    "Premium": "premium luxury artisan craft gourmet specialty aged heritage reserve quality chef origin "
               "single-origin provenance sourcing farm harvest price trade restaurant limited technical",
    "Convenience": "convenience easy quick ready instant busy weeknight simple kit time minutes shortcut "
                   "effort step app delivery prep batch one-tap washing faster",
    "Format": "pack packaging format size pouch sachet jar grinder bottle stick spray portion refill "
              "refillable concentrate powder cup tube box tray scale label multipack shredded sliced",
    "Occasion": "occasion holiday season seasonal summer winter weekend breakfast lunch dinner party "
                "gathering travel camping hiking outdoor grilling barbecue festival game school snack "
                "pizza eggs night",
}
_TYPE_KEYS = {t: frozenset(content_keys(w)) for t, w in _TYPE_WORDS.items()}
_TYPE_CATEGORY = {"Better-For-You": "Health & wellness", "Premium": "Pricing & value",
                  "Convenience": "Technology", "Format": "Sustainability", "Occasion": "Culture & lifestyle"}
_TYPE_MECHANISMS = {
    "Better-For-You": ("REFRAMED",), "Premium": ("PREMIUMIZED", "HUMANIZED_DIGITAL"),
    "Convenience": ("REMOVED_FRICTION", "TIME_SHIFTED", "DIGITIZED_ANALOG"),
    "Format": ("UNBUNDLED", "COMBINED", "CHANGED_MODEL"), "Occasion": ("TIME_SHIFTED", "REFRAMED", "DEMOCRATIZED"),
}
_OCCASIONS = {
    "breakfast": "breakfast", "brunch": "brunch", "lunch": "lunch boxes", "dinner": "weeknight dinners",
    "snack": "snacking", "weekend": "weekends", "holiday": "the holidays", "summer": "summer",
    "winter": "winter", "party": "parties", "gathering": "gatherings", "travel": "travel",
    "camping": "camping trips", "hiking": "hiking days", "picnic": "picnics", "barbecue": "barbecues",
    "grilling": "grilling season", "festival": "festivals", "tailgate": "tailgates", "school": "back-to-school",
    "workout": "workouts", "race": "race day", "ski": "ski trips", "pizza": "pizza night",
}
_OCCASION_KEYS = {stem(word): text for word, text in _OCCASIONS.items()}
_POOL = 24  # the strongest claims considered for cards


def _affinity(kind: str, claim: Claim) -> float:
    """How much the claim speaks to the innovation type: its words, category and mechanism."""
    keys = set(content_keys(claim.text))
    score = float(len(keys & _TYPE_KEYS[kind]))
    score += 1.5 if claim.category == _TYPE_CATEGORY[kind] else 0.0
    score += 1.0 if claim.mechanism in _TYPE_MECHANISMS[kind] else 0.0
    return min(score, 4.0)


def _occasion(a: Analysis, claim: Claim, brand: BrandProfile) -> str:
    """The occasion the claim names, else the one document and brand mention most together."""
    for key in (*content_keys(claim.text), *claim.context):
        if key in _OCCASION_KEYS:
            return _OCCASION_KEYS[key]
    counts = dict.fromkeys(_OCCASION_KEYS, 0)
    for sentence in a.sentences:
        for key in sentence.keys:
            if key in counts:
                counts[key] += 1
    for key in content_keys(" ".join((*brand.target_customers, *brand.strategic_priorities))):
        if key in counts:
            counts[key] += 3  # an occasion the brand already serves is one it can act on
    best = max(counts, key=lambda k: (counts[k], -list(counts).index(k)))
    return _OCCASION_KEYS[best] if counts[best] else "everyday moments"


def _channel(claim: Claim, customer: str, brand: BrandProfile) -> str:
    """Where the claim places the trend, else the brand's own route to the customer."""
    if claim.channel:
        return claim.channel
    retail = next((c for c in brand.target_customers if any(w in c.lower() for w in ("retail", "store", "grocer"))),
                  None)
    return retail or f"the route that reaches {short_customer(customer)} today"


def _specific(keys: Sequence[str], common: frozenset[str]) -> list[str]:
    """The keys without the document's background words ("food" in a food report)."""
    return [k for k in dict.fromkeys(keys) if k not in common]


def _pairs(found: Sequence[Claim], brand: BrandProfile, common: frozenset[str]) -> list[tuple[str, Claim]]:
    """Innovation type and claim, best pair first: a different claim and thing per card while they last."""
    profile = profile_of(brand)
    fit = {c.index: best_match(brand.product_portfolio, _specific(content_keys(c.text), common),
                               _specific(c.context, common), profile=profile).score for c in found}
    scored = sorted(((-(1.5 * _affinity(kind, c) + c.strength + 0.5 * max(fit[c.index], 0.0)), t, c.index, kind, c)
                     for t, kind in enumerate(INNOVATION_TYPES) for c in found), key=lambda row: row[:3])
    chosen: dict[str, Claim] = {}
    # First pass: a different thing on every card; then, for a document with too few things, any claim.
    for distinct in (True, False):
        for *_, kind, claim in scored:
            if kind in chosen:
                continue
            if distinct and any(set(claim.thing_keys) & set(c.thing_keys) or claim.index == c.index
                                for c in chosen.values()):
                continue
            if not distinct and any(claim.index == c.index for c in chosen.values()) and len(found) >= 5:
                continue
            chosen[kind] = claim
    return [(kind, chosen[kind]) for kind in INNOVATION_TYPES]


def _insight_for(claim: Claim, insights: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """The stage 4 insight sharing most words with the claim (the first when none do)."""
    keys = set(claim.thing_keys) | set(content_keys(claim.text))
    best = max(enumerate(insights), key=lambda pair: (
        len(keys & set(content_keys(f"{pair[1].get('title', '')} {pair[1].get('description', '')}"))), -pair[0]))[1]
    return str(best.get("id", "B1")), str(best.get("title", ""))


def opportunity_generation(stage4: Mapping[str, Any], brand: BrandProfile, document: Document) -> dict[str, Any]:
    """Stage 5: exactly five cards (Better-For-You, Premium, Convenience, Format, Occasion)."""
    a = analyse(document.text)
    found = list(claims(document.text)[:_POOL]) or [_fallback_claim(a)]
    insights = [i for i in stage4.get("insights", []) if isinstance(i, Mapping)] or [{"id": "B1", "title": ""}]
    profile = profile_of(brand)
    product_uses: dict[str, int] = {}
    customer_uses: dict[str, int] = {}
    cards = []
    common = common_keys(document.text)
    for number, (kind, claim) in enumerate(_pairs(found, brand, common), start=1):
        keys = _specific((*claim.thing_keys, *content_keys(claim.text)), common)
        context = _specific(claim.context, common)
        # The thing's own words count double: the card is about the thing, not the rest of its sentence.
        product = best_match(brand.product_portfolio, keys, context, product_uses, profile,
                             focus=claim.thing_keys).item
        product_uses[product] = product_uses.get(product, 0) + 1
        customer = best_match(brand.target_customers, keys + list(content_keys(product)), context,
                              customer_uses).item
        customer_uses[customer] = customer_uses.get(customer, 0) + 1
        insight_id, insight_title = _insight_for(claim, insights)
        plan = CardPlan(kind, claim, product, customer, _channel(claim, customer, brand),
                        _occasion(a, claim, brand), insight_id, insight_title, stretch=_affinity(kind, claim) < 1.0)
        cards.append(write_card(number, plan, brand))
    return {"opportunities": cards}
