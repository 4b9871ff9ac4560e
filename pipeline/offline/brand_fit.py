"""Stage 4 offline: each insight read against one brand's product lines, priorities and customers.

A product line is matched on its own words and on the words the brand's own profile puts next to
it (a priority or recent innovation sharing a word with the line): "hot sauces" also means
"heat" when the brand's priority is "heat and spicy flavour across condiments".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pipeline.offline.insights import PRINCIPLES
from pipeline.offline.mechanisms import classify
from pipeline.offline.phrases import GENERIC
from pipeline.offline.text import content_keys, join_names, tokens

if TYPE_CHECKING:
    from pipeline.brands import BrandProfile


@dataclass(frozen=True)
class Match:
    """The brand item that fits best, how well (0-1), and the words they share."""

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


def _keys(text: str) -> tuple[str, ...]:
    return tuple(k for k in dict.fromkeys(content_keys(text)) if k not in GENERIC)


@lru_cache(maxsize=32)
def brand_common(profile: tuple[str, ...]) -> frozenset[str]:
    """Words in three or more entries of the profile: the brand's background ("flavour" at a spice house)."""
    counts: dict[str, int] = {}
    for entry in profile:
        for key in _keys(entry):
            counts[key] = counts.get(key, 0) + 1
    return frozenset(k for k, n in counts.items() if n >= 3)


@lru_cache(maxsize=32)
def _neighbourhood(item: str, profile: tuple[str, ...]) -> tuple[str, ...]:
    """Words the brand's own profile uses next to ``item`` (entries sharing one of its specific words)."""
    common = brand_common(profile)
    own = set(_keys(item)) - common
    near: list[str] = []
    for entry in profile:
        words = _keys(entry)
        if entry != item and own & set(words):
            near += [w for w in words if w not in own and w not in common]
    return tuple(dict.fromkeys(near))


def profile_of(brand: BrandProfile) -> tuple[str, ...]:
    """Every entry of the brand's profile that describes what it sells and to whom."""
    return (brand.industry, *brand.strategic_priorities, *brand.recent_innovations, *brand.product_portfolio,
            *brand.target_customers)


def best_match(items: Sequence[str], keys: Sequence[str], context: Sequence[str] = (),
               uses: Mapping[str, int] | None = None, profile: tuple[str, ...] = (),
               focus: Sequence[str] = ()) -> Match:
    """The item sharing most with ``keys`` (its neighbourhood and ``context`` count less); ties in order.

    Words in ``focus`` (the thing a card is about) count double, directly or through the neighbourhood.
    """
    common = brand_common(profile) if profile else frozenset()
    direct, around = set(keys) - common, set(context) - common
    best: Match | None = None
    for item in items:
        own = tuple(k for k in _keys(item) if k not in common)
        near = _neighbourhood(item, profile) if profile else ()
        hits = [k for k in own if k in direct]
        score = len(hits) + 0.4 * sum(1 for k in own if k in around and k not in direct)
        score += 0.35 * sum(1 for k in near if k in direct) + 0.1 * sum(1 for k in near if k in around)
        score += sum(1 for k in own if k in focus) + 0.35 * sum(1 for k in near if k in focus)
        score = score / (1 + 0.1 * len(own)) - 0.3 * (uses or {}).get(item, 0)
        words = tuple(dict.fromkeys(t.casefold() for t in tokens(item) if content_keys(t) and content_keys(t)[0]
                                    in direct))
        candidate = Match(item, round(score, 6), words)
        if best is None or candidate.score > best.score:
            best = candidate
    assert best is not None, "a brand profile has at least three items per list"
    return best


def mechanism_of(title: str, description: str) -> str:
    """The mechanism behind an insight: its principle when stage 3 named one, else its cue words."""
    for mechanism, principle in PRINCIPLES.items():
        if title.startswith(principle):
            return mechanism
    return classify(f"{title} {description}")


def fit_level(score: float) -> str:
    """strong / moderate / low, from a 0-1 fit score."""
    return "strong" if score >= 0.5 else "moderate" if score >= 0.25 else "low"


def brand_contextualization(stage3: Mapping[str, Any], brand: BrandProfile) -> dict[str, Any]:
    """Stage 4: each insight mapped onto the brand's best product line, priority and customer, honestly scored."""
    profile = profile_of(brand)
    uses: dict[str, int] = {}
    out = []
    for n, insight in enumerate([i for i in stage3.get("insights", []) if isinstance(i, Mapping)], start=1):
        title, description = str(insight.get("title", "")), str(insight.get("description", ""))
        keys = _keys(f"{title} {description}")
        product = best_match(brand.product_portfolio, keys, uses=uses, profile=profile)
        uses[product.item] = uses.get(product.item, 0) + 1
        priority = best_match(brand.strategic_priorities, keys, profile=profile)
        customer = best_match(brand.target_customers, keys, profile=profile)
        score = round(min(max((max(product.score, 0) + max(priority.score, 0)) / 3, 0.0), 1.0), 2)
        level = fit_level(score)
        mechanism = mechanism_of(title, description)
        if product.shared or priority.shared:
            why = (f"shares {join_names(list(dict.fromkeys(product.shared + priority.shared)))} with the line "
                   f"“{product.item}” and the priority “{priority.item}”")
        else:
            why = (f"no product line or priority shares a word with it; the nearest line is “{product.item}”, "
                   "so treat this as a stretch")
        principle = PRINCIPLES[mechanism]
        out.append({
            "id": f"B{n}",
            "title": f"{brand.brand_name}: {principle[:1].lower()}{principle[1:]} in {short_name(product.item)}",
            "description": (f"Insight {insight.get('id', f'I{n}')} (“{title}”) applied to {product.item}, for "
                            f"{customer.item}, under the priority “{priority.item}”. Fit is {level}: {why}."),
            "brand_fit": f"{level} ({score:.2f}): {why}",
            "insight_ids": [str(insight.get("id", f"I{n}"))],
        })
    return {"brand_id": brand.brand_id, "insights": out}
