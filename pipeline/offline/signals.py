"""Stage 2 offline: the document's other strong claims, as categorised signals behind each inspiration."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.document import Document
from pipeline.offline.analysis import analyse
from pipeline.offline.claims import Claim, claims
from pipeline.offline.insights import thing_of
from pipeline.offline.ranking import similarity
from pipeline.offline.signals_lexicon import CATEGORIES, categorise
from pipeline.offline.text import content_keys, join_names, normalise, shorten

__all__ = ["CATEGORIES", "categorise", "signal_amplification"]

_MAX_SIGNALS = 8
_PER_INSPIRATION = 3


def _levels(strengths: list[float]) -> list[str]:
    """high / medium / low: the top third of this document's signals, capped by absolute strength.

    A weak claim is never "high" just because the document has nothing stronger.
    """
    order = sorted(range(len(strengths)), key=lambda i: (-strengths[i], i))
    levels = [""] * len(strengths)
    for rank, i in enumerate(order):
        share = rank / max(len(strengths), 1)
        by_rank = 0 if share < 1 / 3 else 1 if share < 2 / 3 else 2
        by_strength = 0 if strengths[i] >= 1.2 else 1 if strengths[i] >= 0.8 else 2
        levels[i] = ("high", "medium", "low")[max(by_rank, by_strength)]
    return levels


def _relevance(level: str, claim: Claim, shared: list[str]) -> str:
    """The level and the reasons for it, for a person to read."""
    reasons = []
    if claim.figure:
        reasons.append(f"quantified ({claim.figure})")
    if shared:
        reasons.append(f"shares {join_names(shared)} with the inspiration")
    if not claim.cue.startswith("no cue"):
        reasons.append(f"cue {claim.cue}")
    return f"{level}: " + ("; ".join(reasons) if reasons else "related by topic only")


def signal_amplification(document: Document, stage1: Mapping[str, Any]) -> dict[str, Any]:
    """Stage 2: up to eight claims not quoted in stage 1, each filed under the inspiration it backs most."""
    a = analyse(document.text)
    inspirations = [i for i in stage1.get("inspirations", []) if isinstance(i, Mapping)]
    quoted = {normalise(str(q)) for insp in inspirations for q in insp.get("evidence", [])}
    terms = [content_keys(" ".join([str(i.get("title", "")), *map(str, i.get("evidence", []))]))
             for i in inspirations]
    per: dict[int, int] = {}
    chosen: list[tuple[Claim, int, float]] = []
    for claim in claims(document.text)[:60]:
        if len(chosen) >= _MAX_SIGNALS:
            break
        if claim.text in quoted or not inspirations:
            continue
        fits = [similarity(t, claim.context, a.weights) + (2.0 if claim.mechanism == i.get("mechanism_type") else 0.0)
                for t, i in zip(terms, inspirations, strict=True)]
        order = sorted(range(len(fits)), key=lambda k: (-fits[k], k))
        home = next((k for k in order if per.get(k, 0) < _PER_INSPIRATION), None)
        if home is None:
            continue
        per[home] = per.get(home, 0) + 1
        chosen.append((claim, home, fits[home]))
    signals: list[dict[str, Any]] = []
    for (claim, home, _), level in zip(chosen, _levels([c.strength for c, _, _ in chosen]), strict=True):
        title = str(inspirations[home].get("title", ""))
        shared = sorted(set(claim.thing_keys) & set(terms[home]))[:2]
        figure = f" {claim.figure}:" if claim.figure else ""
        signals.append({
            "id": f"S{len(signals) + 1}",
            "category": claim.category,
            "description": f"{claim.thing} —{figure} “{shorten(claim.text, 35)}”",
            "relevance": _relevance(level, claim, shared),
            "inspiration": title,
            "evidence": [claim.text],
        })
    for k, insp in enumerate(inspirations):
        if k in per:
            continue
        # Nothing left to quote for this inspiration (a short document): its own quotes are its signal.
        quote = str((insp.get("evidence") or [""])[-1]) or a.sentence(a.ranked[0]).text
        signals.append({"id": f"S{len(signals) + 1}", "category": categorise(quote),
                        "description": f"{thing_of(str(insp.get('title', '')))} — “{shorten(quote, 35)}”",
                        "relevance": "low: no other claim of the document corroborates it",
                        "inspiration": str(insp.get("title", "")), "evidence": [quote]})
    return {"signals": signals}
