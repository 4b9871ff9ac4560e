"""The contract's fixed vocabulary (§8): mechanism and innovation types, and what each means.

One place for both engines: the offline engine writes the meanings into descriptions, the LLM
engine puts them in its prompts, and the stage schema checks outputs against the names.
"""

from __future__ import annotations

# What each mechanism does, phrased to follow "The innovation ...".
MECHANISM_MEANINGS = {
    "UNBUNDLED": "breaks an all-in-one offer into parts people can buy or use on their own",
    "COMBINED": "joins two offers or needs that used to live apart into one",
    "REMOVED_FRICTION": "takes steps, waiting or effort out of something people already do",
    "CHANGED_MODEL": "changes how people pay for or get the product, not just what it is",
    "REFRAMED": "changes what an existing product means to people and when they reach for it",
    "DEMOCRATIZED": "opens something once costly or exclusive to many more people",
    "PREMIUMIZED": "turns an everyday purchase into something worth trading up for",
    "DIGITIZED_ANALOG": "gives a physical product or routine a digital layer",
    "HUMANIZED_DIGITAL": "puts people, craft and personal contact back into a digital experience",
    "TIME_SHIFTED": "moves the effort or the consumption to a more convenient moment",
}
MECHANISM_TYPES = tuple(MECHANISM_MEANINGS)

INNOVATION_MEANINGS = {
    "Better-For-You": "measurably better for health or wellbeing",
    "Premium": "worth trading up for: quality, craft, provenance",
    "Convenience": "saves time or effort",
    "Format": "a new pack, size, form or way of delivering the product",
    "Occasion": "wins a new moment, season or use",
}
INNOVATION_TYPES = tuple(INNOVATION_MEANINGS)
