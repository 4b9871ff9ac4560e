"""Stage 5 offline: five opportunity cards, one per innovation type, grounded in brand and document."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pipeline.document import Document
from pipeline.offline.analysis import Analysis, analyse
from pipeline.offline.brand_fit import best_match, short_customer, short_name
from pipeline.offline.mechanisms import FALLBACK, MECHANISM_TYPES, mechanism_scores
from pipeline.offline.ranking import similarity
from pipeline.offline.text import content_keys, has_number_fact, shorten, stem
from pipeline.vocabulary import INNOVATION_TYPES

if TYPE_CHECKING:
    from pipeline.brands import BrandProfile


_TYPE_WORDS = {
    "Better-For-You": "health healthy wellness protein organic natural light reduced sodium salt sugar "
                      "nutrition clean plant vegan probiotic fitness active family children gut fresh "
                      "free wellbeing vitality",
    "Premium": "premium luxury artisan craft gourmet specialty aged heritage reserve quality chef "
               "enthusiast expert performance technical professional sourcing origin",
    "Convenience": "convenience easy quick ready instant busy on-the-go weeknight simple mix kit "
                   "time commuter beginner",
    "Format": "pack packaging format size pouch sachet jar grinder bottle stick spray portion refill "
              "refillable concentrate powder cup tube box kit",
    "Occasion": "occasion holiday season summer winter weekend breakfast lunch dinner party "
                "gathering travel camping hiking outdoor grilling barbecue festival game school",
}
_TYPE_KEYS = {t: tuple(dict.fromkeys(content_keys(w))) for t, w in _TYPE_WORDS.items()}
# Which mechanisms naturally feed which innovation type (missing pairs score 0).
_MECHANISM_FIT = {
    "Better-For-You": {"REFRAMED": 1.0, "DEMOCRATIZED": 0.6, "UNBUNDLED": 0.4, "HUMANIZED_DIGITAL": 0.4},
    "Premium": {"PREMIUMIZED": 1.0, "HUMANIZED_DIGITAL": 0.6, "REFRAMED": 0.5, "COMBINED": 0.3},
    "Convenience": {"REMOVED_FRICTION": 1.0, "TIME_SHIFTED": 0.8, "DIGITIZED_ANALOG": 0.6, "CHANGED_MODEL": 0.4},
    "Format": {"UNBUNDLED": 1.0, "COMBINED": 0.8, "CHANGED_MODEL": 0.6, "DIGITIZED_ANALOG": 0.4},
    "Occasion": {"TIME_SHIFTED": 1.0, "REFRAMED": 0.7, "COMBINED": 0.5, "DEMOCRATIZED": 0.3},
}
# Format ideas that fit any industry, used when neither document nor brand names a format.
_DEFAULT_FORMAT = {
    "UNBUNDLED": "a smaller, single-use version", "COMBINED": "an all-in-one kit",
    "REMOVED_FRICTION": "a ready-to-use version", "CHANGED_MODEL": "a rental or subscription version",
    "REFRAMED": "a giftable, story-led edition", "DEMOCRATIZED": "an entry-level starter version",
    "PREMIUMIZED": "a limited collector's edition", "DIGITIZED_ANALOG": "a connected version with a digital companion",
    "HUMANIZED_DIGITAL": "a make-it-together kit", "TIME_SHIFTED": "a pre-prepared, make-ahead version",
}
# Occasion words and how a card title names them when no document phrase does it better.
_OCCASIONS = {
    "breakfast": "breakfast", "brunch": "brunch", "lunch": "lunch", "dinner": "weeknight dinners",
    "snack": "snacking moments", "weekend": "weekends", "holiday": "the holidays",
    "christmas": "Christmas", "summer": "summer", "winter": "winter", "party": "parties",
    "gathering": "gatherings", "celebration": "celebrations", "travel": "travel",
    "commute": "the daily commute", "camping": "camping trips", "hiking": "hiking days",
    "picnic": "picnics", "barbecue": "barbecues", "grilling": "grilling season",
    "festival": "festivals", "tailgate": "tailgates", "school": "back-to-school",
    "workout": "workouts", "race": "race day", "ski": "ski trips",
}
_OCCASION_KEYS = {stem(word): text for word, text in _OCCASIONS.items()}
_FORMAT_WORDS = set(content_keys(
    "pouch sachet jar grinder pack bottle bar stick cup kit box capsule pod tube "
    "spray concentrate powder portion single-serve"))


def _format_idea(a: Analysis, default: str) -> tuple[str, str]:
    """A format the document names ("in single-serve sachets"), else a default ("as an all-in-one kit")."""
    named = [p for p in a.phrases if len(p.key) > 1 and any(k in _FORMAT_WORDS for k in p.key)]
    # A format that comes with a mechanism ("single-serve sachets") beats a plain one ("full jar").
    novel = [p for p in named if any(mechanism_scores(p.text).values())]
    if novel or named:
        return "in", (novel or named)[0].text
    return "as", default


def _occasion(a: Analysis, brand: BrandProfile) -> str:
    """The occasion both document and brand point at most (the brand's word counts triple)."""
    counts = dict.fromkeys(_OCCASION_KEYS, 0)
    for sentence in a.sentences:
        for key in sentence.keys:
            if key in counts:
                counts[key] += 1
    brand_text = " ".join((*brand.target_customers, *brand.strategic_priorities, *brand.recent_innovations,
                           *brand.product_portfolio))
    for key in content_keys(brand_text):
        if key in counts:
            counts[key] += 3  # an occasion the brand already serves is one it can act on
    best = max(counts, key=lambda k: (counts[k], -list(counts).index(k)))
    if counts[best] == 0:
        return "everyday moments"
    for phrase in a.phrases:
        if len(phrase.key) > 1 and best in phrase.key:
            return phrase.text
    return _OCCASION_KEYS[best]


def _in_country(country: str) -> str:
    """"in France", but "in the United States"."""
    needs_article = country.startswith(("United ", "Netherlands", "Philippines", "Czech"))
    return f"in the {country}" if needs_article else f"in {country}"


def _pick_insight(kind: str, insights: Sequence[Mapping[str, Any]], uses: dict[str, int]) -> Mapping[str, Any]:
    """The brand insight that best feeds this innovation type, spreading cards over insights."""
    def score(pair: tuple[int, Mapping[str, Any]]) -> tuple[float, int]:
        """Sort key: best fit first, then earlier insight."""
        position, insight = pair
        mechanism = insight.get("mechanism_type", FALLBACK)
        fit = _MECHANISM_FIT[kind].get(mechanism, 0.0)
        fit += 0.5 * float(insight.get("fit_score", 0.0) or 0.0)
        fit -= 0.6 * uses.get(str(insight.get("id")), 0)
        return (-round(fit, 6), position)
    return min(enumerate(insights), key=score)[1]


def _fact(a: Analysis, keys: Sequence[str], used: set[int]) -> str:
    """A verbatim document sentence backing the card: related, central, preferably a figure."""
    best: tuple[float, int] | None = None
    for i in a.ranked[:200]:
        s = a.sentence(i)
        value = similarity(keys, s.keys, a.weights) + a.scores[i] + (1.0 if has_number_fact(s.text) else 0.0)
        value -= 2.0 if i in used else 0.0
        if best is None or round(value, 6) > best[0]:
            best = (round(value, 6), i)
    index = best[1] if best else a.ranked[0]
    used.add(index)
    return a.sentence(index).text


# Per innovation type: title, the offer ("lead"), the pilot's success metric and a follow-up prompt.
# Fields: {name} brand, {item}/{Item} short product line, {who} short segment, {extra} format/occasion.
_TEMPLATES = {
    "Better-For-You": (
        "Better-for-you {item} for {who}",
        "a version that is measurably better for people's health and wellbeing",
        "repeat purchase among {who}",
        "Which health or wellbeing claim could {name} credibly make for {item}, and what would prove it?"),
    "Premium": (
        "A premium reserve tier of {item}",
        "a premium tier with a visible quality story, priced clearly above the core range",
        "the share of buyers trading up from the core range",
        "How much more would {who} pay for a reserve tier of {item}, and which cue signals the upgrade?"),
    "Convenience": (
        "{Item}, made effortless for {who}",
        "a version that removes at least one step from buying or using it",
        "steps or minutes saved per use, and repeat purchase",
        "Which step in buying or using {item} do {who} skip or resent most today?"),
    "Format": (
        "{Item} {extra}",
        "a new format ({extra_bare})",
        "trial of the new format against the core pack",
        "Which channel would sell {item} {extra} best, and what would it cost per unit?"),
    "Occasion": (
        "{Item} for {extra}",
        "a limited range designed around {extra}",
        "sales lift around {extra} against the rest of the year",
        "How do {who} experience {extra} today, and where could {item} fit in?"),
}


def _card(kind: str, number: int, insight: Mapping[str, Any], brand: BrandProfile, product: str,
          customer: str, extra: str, quote: str) -> dict[str, Any]:
    """One opportunity card: title, description, three steps and two follow-up prompts."""
    item = short_name(product)
    fields = {"name": brand.brand_name, "item": item, "Item": item[:1].upper() + item[1:],
              "who": short_customer(customer), "extra": extra, "extra_bare": extra.split(" ", 1)[-1]}
    title, lead, metric, prompt = (template.format(**fields) for template in _TEMPLATES[kind])
    principle = str(insight.get("principle") or insight.get("title", ""))
    priority = str(insight.get("priority") or brand.strategic_priorities[0])
    recent = str(insight.get("recent_innovation") or brand.recent_innovations[0])
    value = str(insight.get("brand_value") or brand.brand_values[0])
    phrase = str(insight.get("key_phrase") or "the document's trend")
    name, who = brand.brand_name, fields["who"]
    return {
        "number": number,
        "title": title,
        "innovation_type": kind,
        "description": (f"{name} could offer {lead} in {product}, aimed at {customer}. It builds on "
                        f"insight {insight.get('id')}, “{principle}”, learnt from {phrase}, and serves the "
                        f"priority “{priority}”. From the document: “{shorten(quote, 40)}”"),
        "actionability": [
            f"Prototype two or three {item} concepts as {lead} and test them with {who}.",
            f"Start from what {name} already has — {recent} — and check each concept against "
            f"“{priority}” and the value “{value}”.",
            f"Run an eight-week pilot {_in_country(brand.country)} with one success metric fixed up front: "
            f"{metric}.",
        ],
        "follow_up_prompts": [
            prompt,
            f"Where else could {name} apply “{principle}”, and what does the evidence on {phrase} "
            f"leave unanswered?",
        ],
        "insight_id": str(insight.get("id", "")),
        "product_line": product,
        "target_customer": customer,
        "evidence": [quote],
    }


def opportunity_generation(stage4: Mapping[str, Any], brand: BrandProfile, document: Document) -> dict[str, Any]:
    """Stage 5: exactly five cards (Better-For-You, Premium, Convenience, Format, Occasion)."""
    a = analyse(document.text)
    insights = list(stage4.get("insights", [])) or [{"id": "B1", "mechanism_type": FALLBACK}]
    insight_uses: dict[str, int] = {}
    product_uses: dict[str, int] = {}
    customer_uses: dict[str, int] = {}
    used_quotes: set[int] = set()
    cards = []
    for number, kind in enumerate(INNOVATION_TYPES, start=1):
        insight = _pick_insight(kind, insights, insight_uses)
        insight_uses[str(insight.get("id"))] = insight_uses.get(str(insight.get("id")), 0) + 1
        mechanism = insight.get("mechanism_type")
        mechanism = mechanism if mechanism in MECHANISM_TYPES else FALLBACK
        keys = list(dict.fromkeys(_TYPE_KEYS[kind] + content_keys(
            f"{insight.get('key_phrase', '')} {insight.get('product_line', '')}")))
        product = best_match(brand.product_portfolio, keys, mechanism, number - 1, product_uses).item
        product_uses[product] = product_uses.get(product, 0) + 1
        customer = best_match(brand.target_customers, keys, mechanism, number - 1, customer_uses).item
        customer_uses[customer] = customer_uses.get(customer, 0) + 1
        extra = ""
        if kind == "Format":
            extra = " ".join(_format_idea(a, _DEFAULT_FORMAT[mechanism]))
        elif kind == "Occasion":
            extra = _occasion(a, brand)
        quote = _fact(a, content_keys(f"{insight.get('key_phrase', '')} {product}"), used_quotes)
        cards.append(_card(kind, number, insight, brand, product, customer, extra, quote))
    return {"opportunities": cards}
