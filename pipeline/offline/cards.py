"""The words of one opportunity card, written from its claim, product line, customer and channel.

Every sentence names the card's thing and draws on its claim: the concept follows the claim,
the pilot goes where the claim places the trend, and the go/no-go is the claim's own figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.offline.brand_fit import short_customer, short_name
from pipeline.offline.claims import Claim, lower_thing
from pipeline.offline.text import join_names, shorten

if TYPE_CHECKING:
    from pipeline.brands import BrandProfile

# Per innovation type: how the title joins thing and line, the offer, the concept step, the metric.
_TITLE = {
    "Better-For-You": "{Thing} as a better-for-you line of {line}",
    "Premium": "{Thing} as a premium tier of {line}",
    "Convenience": "{Thing} as a ready-to-use shortcut in {line}",
    "Format": "{Thing} in a new format for {line}",
    "Occasion": "{Thing} for {occasion}, with {line}",
}
_OFFER = {
    "Better-For-You": "a version with one measurable better-for-you claim",
    "Premium": "a premium tier with the quality or provenance cue the document credits",
    "Convenience": "a ready-to-use version that saves a step",
    "Format": "a new pack, size or form",
    "Occasion": "a range built for {occasion}",
}
_CONCEPT = {
    "Better-For-You": "Write a {thing} concept for {item} that makes one measurable better-for-you claim, and "
                      "test it with {who} against the current {item}.",
    "Premium": "Build a premium {item} concept around {thing}, carrying the quality or provenance cue the "
               "document credits, and test willingness to pay with {who}.",
    "Convenience": "Prototype {thing} as a ready-to-use {item} and count the steps and minutes it saves {who} "
                   "against their routine today.",
    "Format": "Mock up {thing} as a new {item} pack, size or form and test trial and shelf stand-out with {who}.",
    "Occasion": "Build a {occasion} range of {item} around {thing} and test it with {who} before the season.",
}
_METRIC = {
    "Better-For-You": "repeat purchase among {who}", "Premium": "the share of buyers trading up",
    "Convenience": "repeat purchase and minutes saved", "Format": "trial of the new format",
    "Occasion": "sales lift around {occasion}",
}
_NAMES = {"Better-For-You": "health or wellbeing", "Premium": "quality or price", "Convenience": "time or effort",
          "Format": "pack or format", "Occasion": "occasion"}
_LABEL = {"Better-For-You": "better-for-you", "Premium": "premium", "Convenience": "ready-to-use",
          "Format": "new-format", "Occasion": "{occasion}"}
_PRICE = {
    "Better-For-You": "at parity with core {item}, so the healthier choice costs nothing extra",
    "Premium": "above core {item}{anchor}",
    "Convenience": "a small premium over core {item} for the step it saves",
    "Format": "an entry price below the core {item} pack, to earn trial",
    "Occasion": "core {item} pricing, sold as a limited seasonal range",
}


@dataclass(frozen=True)
class CardPlan:
    """What a card is built from: one claim of the document on one line of the brand."""

    kind: str
    claim: Claim
    product: str
    customer: str
    channel: str
    occasion: str
    insight_id: str
    insight_title: str
    stretch: bool  # the claim says nothing of this innovation type: the card stretches it


def line_label(product: str) -> str:
    """A product line as a title names it: its sub-brands when it lists them, else its short name."""
    short = short_name(product)
    if "(" in product and product.rstrip().endswith(")"):
        brands = [b.strip() for b in product.rsplit("(", 1)[1].rstrip(")").split(",") if b.strip()]
        if brands and len(" ".join(brands)) <= 40:
            return f"{short} ({join_names(brands)})"
    return short


def possessive(name: str) -> str:
    """"McCormick's", but "Acme Foods'"."""
    return f"{name}'" if name.endswith("s") else f"{name}'s"


def _in_country(country: str) -> str:
    """"in France", but "in the United States"."""
    needs_article = country.startswith(("United ", "Netherlands", "Philippines", "Czech"))
    return f"in the {country}" if needs_article else f"in {country}"


def write_card(number: int, plan: CardPlan, brand: BrandProfile) -> dict[str, Any]:
    """One opportunity card: title, description, three steps and two prompts, all from ``plan``."""
    claim, kind = plan.claim, plan.kind
    item, who = short_name(plan.product), short_customer(plan.customer)
    fields = {"Thing": claim.thing, "thing": lower_thing(claim.thing), "line": line_label(plan.product), "item": item,
              "who": who, "occasion": plan.occasion}
    figure_note = f" ({claim.figure})" if claim.figure else ""
    quote = shorten(claim.text, 40)
    metric = _METRIC[kind].format(**fields)
    if claim.figure:
        measure = (f"Set the go/no-go against the document's own benchmark, {claim.figure} "
                   f"(“{shorten(claim.text, 18)}”): {metric} should at least match it.")
    else:
        measure = (f"Size it before investing: the document gives no figure for {fields['thing']}, so measure "
                   f"{metric} in a small test first.")
    anchor = f": the document's example moved {claim.figure}" if claim.figure and "price" in claim.text.lower() \
        else "; the document gives no price figure to anchor it, so test two price points"
    pilot = f"Pilot the {_LABEL[kind].format(**fields)} {fields['thing']} {_in_country(brand.country)}"
    if claim.channel:
        pilot += f" through {plan.channel}, where the document places this trend."
    else:
        pilot += (f" with {who} through {plan.channel}; the document names no channel for it, so pick the one "
                  "where a test is cheapest to read.")
    return {
        "number": number,
        "title": _TITLE[kind].format(**fields),
        "innovation_type": kind,
        "description": (f"The document reports{figure_note}: “{quote}” {brand.brand_name} could turn "
                        f"{fields['thing']} into {_OFFER[kind].format(**fields)} in {plan.product}, for "
                        f"{plan.customer}. It builds on {plan.insight_id} (“{plan.insight_title}”)."
                        + (f" The document makes no {_NAMES[kind]} claim about {fields['thing']}: this card "
                           "stretches it, so test the premise first." if plan.stretch else "")),
        "actionability": [
            _CONCEPT[kind].format(**fields),
            pilot,
            measure,
        ],
        "follow_up_prompts": [
            f"What would make {who} choose {possessive(brand.brand_name)} {fields['thing']} over what they use "
            f"today, and at what price?",
            f"The document says “{shorten(claim.text, 20)}” Does that hold for {possessive(brand.brand_name)} "
            f"customers {_in_country(brand.country)}, and what evidence would disprove it?",
        ],
        "evidence": [claim.text],
        "product_line": plan.product,
        "channel": plan.channel,
        "price_point": _PRICE[kind].format(anchor=anchor, **fields),
        "why_now": (f"{claim.figure}: “{shorten(claim.text, 30)}”" if claim.figure
                    else f"“{shorten(claim.text, 30)}” (the document gives no figure)"),
    }
