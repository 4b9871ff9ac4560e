"""Stage 3 offline: brand-neutral insights, one per mechanism, grouping the signals that show it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.offline.mechanisms import FALLBACK, GLOSS, MECHANISM_TYPES, label
from pipeline.offline.text import join_names

# The transferable principle behind each mechanism, as an imperative a team could act on.
PRINCIPLES = {
    "UNBUNDLED": "Sell the part people actually want",
    "COMBINED": "Solve two needs with one offer",
    "REMOVED_FRICTION": "Take out the step customers resent",
    "CHANGED_MODEL": "Change how customers pay, not just what they buy",
    "REFRAMED": "Change what the product means to people",
    "DEMOCRATIZED": "Open an exclusive experience to everyone",
    "PREMIUMIZED": "Make an everyday purchase worth trading up for",
    "DIGITIZED_ANALOG": "Give a physical routine a digital layer",
    "HUMANIZED_DIGITAL": "Put a human touch back into a digital journey",
    "TIME_SHIFTED": "Move the effort to a better moment",
}
# Where else the principle applies: completes "It transfers to any category where ...".
CONDITIONS = {
    "UNBUNDLED": "customers pay for more than they use",
    "COMBINED": "people juggle two products to get one job done",
    "REMOVED_FRICTION": "buying or using the product takes avoidable effort",
    "CHANGED_MODEL": "the upfront price or ownership holds people back",
    "REFRAMED": "the product is stuck in one habitual use",
    "DEMOCRATIZED": "the best version is still reserved for experts or big budgets",
    "PREMIUMIZED": "a loyal core would pay more for visible quality",
    "DIGITIZED_ANALOG": "a physical routine leaves people guessing",
    "HUMANIZED_DIGITAL": "a digital journey feels anonymous",
    "TIME_SHIFTED": "the moment of preparation clashes with the moment of need",
}
# Mechanisms that rely on little industry-specific know-how travel furthest.
_PORTABLE = ("REMOVED_FRICTION", "UNBUNDLED", "TIME_SHIFTED", "CHANGED_MODEL", "COMBINED")


def thing_of(text: str) -> str:
    """The thing a stage 1 title or stage 2 description names: the part before its separator."""
    for separator in (" — ", ": "):
        if separator in text:
            return text.split(separator, 1)[0].strip()
    return text.strip()


def _transferability(mechanism: str, signals: list[Mapping[str, Any]]) -> str:
    """A level and its reasons: portable mechanisms backed by varied signals travel best."""
    categories = sorted({str(s.get("category", "")) for s in signals if s.get("category")})
    points = (2 if mechanism in _PORTABLE else 1) + min(len(categories), 2) + (1 if len(signals) > 1 else 0)
    level = "high" if points >= 4 else "medium" if points >= 2 else "low"
    spread = (f"{len(signals)} signal{'s' if len(signals) != 1 else ''} across "
              f"{len(categories)} categor{'ies' if len(categories) != 1 else 'y'}")
    kind = "does not depend on the source industry" if mechanism in _PORTABLE else \
        "needs some adaptation to the target category"
    return f"{level}: the mechanism ({label(mechanism).lower()}) {kind}; backed by {spread}"


def general_translation(stage1: Mapping[str, Any], stage2: Mapping[str, Any]) -> dict[str, Any]:
    """Stage 3: inspirations sharing a mechanism become one insight citing all their signals."""
    signals = [s for s in stage2.get("signals", []) if isinstance(s, Mapping)]
    inspirations = [i for i in stage1.get("inspirations", []) if isinstance(i, Mapping)]
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for insp in inspirations:
        mechanism = insp.get("mechanism_type")
        groups.setdefault(mechanism if mechanism in MECHANISM_TYPES else FALLBACK, []).append(insp)
    insights = []
    for n, (mechanism, members) in enumerate(groups.items(), start=1):
        titles = [str(m.get("title", "")) for m in members]
        own = [s for s in signals if s.get("inspiration") in titles]
        if not own:
            # Signals from another engine may not name their inspiration: spread them in order.
            own = [s for i, s in enumerate(signals) if i % len(groups) == n - 1] or signals[:1]
        things = list(dict.fromkeys([thing_of(t) for t in titles] + [thing_of(str(s.get("description", "")))
                                                                     for s in own]))[:4]
        categories = list(dict.fromkeys(str(s.get("category", "")).lower() for s in own))
        insights.append({
            "id": f"I{n}",
            "title": f"{PRINCIPLES[mechanism]}: {join_names(things[:2])}",
            "description": (f"Across industries the move is the same: the innovation {GLOSS[mechanism]}. "
                            f"The document shows it in {join_names(things)}, backed by {len(own)} "
                            f"{join_names(categories) or 'market'} signal{'s' if len(own) != 1 else ''}. "
                            f"It transfers to any category where {CONDITIONS[mechanism]}."),
            "transferability": _transferability(mechanism, own),
            "signal_ids": [str(s["id"]) for s in own if "id" in s],
        })
    return {"insights": insights}
