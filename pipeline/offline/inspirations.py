"""Stage 1 offline: a summary, the core mechanism and 1-3 inspirations quoted from the document."""

from __future__ import annotations

from typing import Any

from config.errors import StageError
from pipeline.document import Document
from pipeline.offline.analysis import Analysis, analyse
from pipeline.offline.mechanisms import GLOSS, TITLES, best_of, label, mechanism_scores
from pipeline.offline.phrases import GENERIC, grams
from pipeline.offline.ranking import similarity
from pipeline.offline.text import MAX_SCAN_CHARS, Sentence, has_number_fact, join_names, shorten

# How deep into the ranking seeds and supporting quotes are looked for: bounded work.
_SEED_POOL = 40
_SUPPORT_POOL = 120
# Seeds sharing more than this share of their words say the same thing twice.
_MAX_SEED_OVERLAP = 0.4
# Multi-word phrases name a subject ("dinner kits"); single words rarely do ("purchase").
_LENGTH_BONUS = {1: 1.0, 2: 2.0, 3: 2.2}


def _overlap(a: Sentence, b: Sentence) -> float:
    """Jaccard overlap of two sentences' stems."""
    sa, sb = set(a.keys), set(b.keys)
    return len(sa & sb) / max(len(sa | sb), 1)


def _seed_count(a: Analysis) -> int:
    """How many inspirations the document can carry: fewer for very short texts."""
    return 3 if len(a.ranked) >= 6 else 2 if len(a.ranked) >= 4 else 1


def _next_seed(a: Analysis, used: set[int], seeds: list[Sentence]) -> Sentence | None:
    """The most central unused sentence that is not about what an earlier seed covered."""
    for i in a.ranked[:_SEED_POOL]:
        if i in used:
            continue
        candidate = a.sentence(i)
        self_sim = similarity(candidate.keys, candidate.keys, a.weights) or 1.0
        if all(_overlap(candidate, s) <= _MAX_SEED_OVERLAP
               and similarity(candidate.keys, s.keys, a.weights) / self_sim <= _MAX_SEED_OVERLAP
               for s in seeds):
            return candidate
    return None


def _support(a: Analysis, seed: Sentence, used: set[int]) -> list[Sentence]:
    """Up to two more quotes that back the seed: similar wording, central, not yet quoted."""
    self_sim = similarity(seed.keys, seed.keys, a.weights) or 1.0
    scored = []
    for i in a.ranked[:_SUPPORT_POOL]:
        if i in used:
            continue
        s = a.sentence(i)
        sim = similarity(seed.keys, s.keys, a.weights) / self_sim
        if sim > 0 and _overlap(seed, s) < 0.8:
            scored.append((-(0.6 * sim + 0.4 * a.scores[i]), i))
    return [a.sentence(i) for _, i in sorted(scored)[:2]]


def _echoes(phrase: str, template: str) -> bool:
    """True when a phrase word starts like a template word (premium / Premiumizing)."""
    heads = {w.casefold()[:5] for w in template.split() if len(w) >= 5 and "{" not in w}
    return any(len(w) >= 5 and w.casefold()[:5] in heads for w in phrase.split())


def _phrase_for(a: Analysis, quotes: list[Sentence], taken: set[str], mechanism: str) -> tuple[str, list[str]]:
    """The phrase naming what the quotes are about (from the quotes), plus two related phrases."""
    recurring = {p.key: p.score for p in a.phrases}
    scored: dict[tuple[str, ...], tuple[float, int, str]] = {}
    order = 0
    for position, quote in enumerate(quotes):
        for key, text in grams(quote):
            order += 1
            if key in scored or any(k in taken for k in key) or (len(key) == 1 and key[0] in GENERIC):
                continue
            if _echoes(text, TITLES[mechanism]):
                continue  # the title would say it twice: "Premiumizing premium spice blends"
            mean = sum(a.weights.get(k, 0.0) for k in key) / len(key)
            value = mean * _LENGTH_BONUS[len(key)] * (1.3 if position == 0 else 1.0)
            if any(k in GENERIC for k in key):
                value *= 0.7
            value += 0.3 * recurring.get(key, 0.0)  # the document's own recurring phrases read best
            scored[key] = (-round(value, 6), order, text)
    ranked = sorted(scored.items(), key=lambda item: item[1])
    if not ranked:
        # Nothing quotable names a subject: fall back on the document's recurring phrases.
        spare = [p for p in a.phrases if not any(k in taken for k in p.key)]
        if spare:
            taken.update(spare[0].key)
            return spare[0].text, []
        return shorten(quotes[0].text, 4).rstrip("…").strip(".,;:"), []
    main_key, (_, _, main) = ranked[0]
    taken.update(main_key)
    related: list[str] = []
    seen = set(main_key)  # related phrases must add words, not repeat the main one
    for key, (_, _, text) in ranked[1:]:
        if len(related) == 2:
            break
        if not any(k in seen for k in key):
            related.append(text)
            seen.update(key)
    return main, related


def _document_mechanism(a: Analysis, candidates: list[str]) -> tuple[str, int, int]:
    """Of the inspirations' mechanisms, the one the most central passages point at most."""
    top = a.ranked[:30]
    total = dict.fromkeys(GLOSS, 0.0)
    winners = []
    for i in top:
        scores = mechanism_scores(a.sentence(i).text)
        for mechanism, value in scores.items():
            total[mechanism] += value * (0.5 + a.scores[i])
        winners.append(best_of(scores) if any(scores.values()) else None)
    # Restricted to the inspirations' mechanisms so the core mechanism and inspirations agree.
    mechanism = best_of({m: total[m] + 1e-9 for m in dict.fromkeys(candidates)})
    return mechanism, sum(1 for w in winners if w == mechanism), len(top)


def _plural(gloss: str) -> str:
    """A gloss with its leading verb agreeing with a plural subject ("breaks" -> "break")."""
    verb, rest = gloss.split(" ", 1)
    return f"{verb[:-1]} {rest}"


def _summary(document: Document, a: Analysis) -> str:
    """Three sentences a person can read: topic, central claim, key figure."""
    topics = [p.text for p in a.phrases[:3]] or ["its subject"]
    top = a.sentence(a.ranked[0])
    text = (f"“{document.name}” ({document.words:,} words) is mainly about {join_names(topics)}. "
            f"Its most central statement: “{shorten(top.text, 40)}”")
    fact = next((a.sentence(i) for i in a.ranked[1:20] if has_number_fact(a.sentence(i).text)), None)
    if fact is not None:
        text += f" A key figure: “{shorten(fact.text, 30)}”"
    if document.truncated:
        text += f" The document was cut to {len(document.text):,} of {document.original_chars:,} characters."
    if a.partial:
        text += f" Only its first {MAX_SCAN_CHARS:,} characters were analysed."
    return text


def input_processing(document: Document) -> dict[str, Any]:
    """Stage 1: summary, core mechanism and 1-3 inspirations with verbatim evidence."""
    a = analyse(document.text)
    if not a.ranked:
        raise StageError(1, f"document {document.name!r} holds no readable text to analyse",
                         code="DOCUMENT_EMPTY")
    used: set[int] = set()
    seeds: list[Sentence] = []
    inspirations, mechanisms, taken = [], [], set()
    # Seed, then its supporting quotes, then the next seed: each cluster claims its sentences.
    while len(seeds) < _seed_count(a):
        seed = _next_seed(a, used, seeds) if seeds else a.sentence(a.ranked[0])
        if seed is None:
            break
        seeds.append(seed)
        used.add(seed.index)
        support = _support(a, seed, used)
        used.update(s.index for s in support)
        quotes = [seed, *support]
        mechanism = best_of(mechanism_scores(" ".join(q.text for q in quotes)), tuple(mechanisms))
        mechanisms.append(mechanism)
        phrase, related = _phrase_for(a, quotes, taken, mechanism)
        inspirations.append({
            "title": TITLES[mechanism].format(phrase=phrase),
            "description": (f"{label(mechanism)}: the innovation {GLOSS[mechanism]}. Here it centres "
                            f"on {join_names([phrase, *related])}, as the document puts it: "
                            f"“{shorten(seed.text, 30)}”"),
            "mechanism_type": mechanism,
            "evidence": [q.text for q in quotes],
            "key_phrase": phrase,
            "related_phrases": related,
        })
    core, hits, considered = _document_mechanism(a, mechanisms)
    lead = next((i["key_phrase"] for i in inspirations if i["mechanism_type"] == core), inspirations[0]["key_phrase"])
    if hits == 0:
        core_text = (f"{label(core)} ({core}): no one mechanism dominates the most central passages; the "
                     f"clearest case is {lead}, where the innovation {GLOSS[core]}.")
    else:
        core_text = (f"{label(core)} ({core}): the document's innovations mostly {_plural(GLOSS[core])}. "
                     f"It leads in {hits} of its {considered} most central passages, most clearly around {lead}.")
    return {
        "summary": _summary(document, a),
        "core_mechanism": core_text,
        "inspirations": inspirations,
        "key_phrases": [p.text for p in a.phrases[:8]],
    }
