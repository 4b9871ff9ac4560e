"""Stage 4 offline: re-read each insight against one brand's priorities, portfolio and customers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.offline.insights import PRINCIPLES
from pipeline.offline.mechanisms import FALLBACK, MECHANISM_TYPES
from pipeline.offline.text import content_keys, join_names, stem, tokens

if TYPE_CHECKING:
    from pipeline.brands import BrandProfile

# Words a brand profile uses when it means the same thing as a mechanism: the bridge between
# a document's vocabulary and a brand's, so even unrelated wording yields a reasoned fit.
AFFINITY = {
    "UNBUNDLED": "portion single serve snack mini individual size pack trial piece",
    "COMBINED": "kit bundle blend pairing meal system layering combo collaboration set",
    "REMOVED_FRICTION": "convenience convenient easy quick ready simple fast busy on-the-go time",
    "CHANGED_MODEL": "subscription rental resale repair direct online circular membership second-hand service",
    "REFRAMED": "occasion snack ritual lifestyle wellness experience identity everyday",
    "DEMOCRATIZED": "affordable value accessible family everyone beginner entry price budget",
    "PREMIUMIZED": "premium quality artisan craft specialty gourmet heritage technical performance aged",
    "DIGITIZED_ANALOG": "digital online app e-commerce data connected smart technology",
    "HUMANIZED_DIGITAL": "community experience personal store expert coaching service local",
    "TIME_SHIFTED": "ready meal prep frozen breakfast snack on-the-go season weekend",
}
_AFFINITY_KEYS = {m: tuple(dict.fromkeys(content_keys(words))) for m, words in AFFINITY.items()}


@dataclass(frozen=True)
class Match:
    """The brand item an insight fits best, how well, and the words they share."""

    item: str
    score: float
    shared: tuple[str, ...]


def short_name(item: str) -> str:
    """A portfolio entry without its detail, for titles: "ground spices ... in jars" -> "ground spices"."""
    for cut in (" (", ", ", " – ", " - ", ": ", "; ", " in ", " for ", " with ", " who ", " that "):
        head = item.split(cut, 1)[0]
        item = head if head.strip() else item
    return item.strip()


def short_customer(item: str) -> str:
    """A customer segment without its clause: "bakers using vanilla extract" -> "bakers"."""
    words = short_name(item).split()
    for i, word in enumerate(words[1:], start=1):
        if word.endswith("ing") and len(word) >= 5:
            return " ".join(words[:i])
    return " ".join(words)


def best_match(items: Sequence[str], keys: Sequence[str], mechanism: str, slot: int,
               uses: Mapping[str, int] | None = None) -> Match:
    """The item sharing most with ``keys`` (direct words count double the mechanism's affinity)."""
    direct = set(keys)
    related = set(_AFFINITY_KEYS.get(mechanism, ()))
    best: Match | None = None
    for position, item in enumerate(items):
        item_keys = list(dict.fromkeys(content_keys(item)))
        hits = [k for k in item_keys if k in direct]
        near = [k for k in item_keys if k in related and k not in direct]
        score = (len(hits) + 0.5 * len(near)) / (1 + 0.15 * len(item_keys))
        score -= 0.25 * (uses or {}).get(item, 0)  # spread insights over the portfolio
        matched = set(hits + near)  # membership only; words keep the item's own order
        words = tuple(t.casefold() for t in tokens(item) if stem(t.casefold()) in matched)
        candidate = Match(item, round(score, 6), tuple(dict.fromkeys(words)))
        if best is None or candidate.score > best.score:
            best = candidate
    assert best is not None
    if best.score <= 0 and items:
        # Nothing overlaps: rotate by insight so every insight lands somewhere different.
        return Match(items[slot % len(items)], 0.0, ())
    return best


def _fit_text(score: float, priority: Match, product: Match) -> str:
    """The fit as a level, a score and the reason, for a person to read."""
    level = "strong" if score >= 0.5 else "moderate" if score >= 0.2 else "exploratory"
    if priority.shared:
        reason = f"matches the priority “{priority.item}” on {join_names(list(priority.shared))}"
    else:
        reason = f"no direct overlap with stated priorities; closest is “{priority.item}”"
    if product.shared:
        reason += f", and the portfolio line “{product.item}” on {join_names(list(product.shared))}"
    return f"{level} ({score:.2f}): {reason}"


def brand_contextualization(stage3: Mapping[str, Any], brand: BrandProfile) -> dict[str, Any]:
    """Stage 4: each insight mapped onto the brand's best-fitting priority, product line and customer."""
    uses: dict[str, int] = {}
    out = []
    for n, insight in enumerate(stage3.get("insights", []), start=1):
        mechanism = insight.get("mechanism_type")
        mechanism = mechanism if mechanism in MECHANISM_TYPES else FALLBACK
        terms = [str(insight.get("key_phrase", "")), *map(str, insight.get("key_terms", [])),
                 str(insight.get("title", ""))]
        keys = list(dict.fromkeys(content_keys(" ".join(terms)) + _AFFINITY_KEYS[mechanism]))
        priority = best_match(brand.strategic_priorities, keys, mechanism, n - 1)
        product = best_match(brand.product_portfolio, keys, mechanism, n - 1, uses)
        uses[product.item] = uses.get(product.item, 0) + 1
        customer = best_match(brand.target_customers, keys, mechanism, n - 1)
        recent = best_match(brand.recent_innovations, keys, mechanism, n - 1)
        value = best_match(brand.brand_values, keys, mechanism, n - 1)
        raw = priority.score + product.score + 0.5 * (customer.score + recent.score) + 0.3 * value.score
        score = round(min(max(raw / 3, 0.0), 1.0), 2)
        principle = str(insight.get("principle") or PRINCIPLES[mechanism])
        source_title = str(insight.get("title", principle))
        out.append({
            "id": f"B{n}",
            "title": (f"{brand.brand_name}: {principle[:1].lower()}{principle[1:]}, "
                      f"starting with {short_name(product.item)}"),
            "description": (f"{brand.brand_name} can apply insight {insight.get('id', f'I{n}')} "
                            f"(“{source_title}”) to {product.item}. It serves the priority "
                            f"“{priority.item}”, speaks to {customer.item}, and builds on "
                            f"{recent.item}. Holding to the value “{value.item}” keeps it on-brand."),
            "brand_fit": _fit_text(score, priority, product),
            "insight_ids": [str(insight.get("id", f"I{n}"))],
            "fit_score": score,
            "mechanism_type": mechanism,
            "key_phrase": str(insight.get("key_phrase", "")),
            "principle": principle,
            "source_insight": source_title,
            "priority": priority.item,
            "product_line": product.item,
            "target_customer": customer.item,
            "recent_innovation": recent.item,
            "brand_value": value.item,
        })
    return {"brand_id": brand.brand_id, "insights": out}
