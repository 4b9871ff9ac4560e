"""Claims: the document's quotable sentences, each reduced to what it is about and what it shows.

A claim is one sentence with its *thing* (the phrase naming what the sentence describes, such as
"chili crisp" or "five-step heat scale"), its figure, its mechanism and the cue words that point
at it, its signal category and the channel it mentions. Stages 1, 2 and 5 all build on claims,
so the cards name the same things the inspirations and signals quote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from pipeline.offline.analysis import Analysis, analyse
from pipeline.offline.mechanisms import FALLBACK, best_of, cues, mechanism_scores
from pipeline.offline.phrases import GENERIC, grams
from pipeline.offline.signals_lexicon import categorise, channel_of
from pipeline.offline.text import Sentence, number_fact, stem, token_runs


def _words(text: str) -> list[str]:
    """A word list written as text, one space apart (easier to read and extend than a list literal)."""
    return text.split()


_POOL = 200  # ranked sentences considered: bounded work whatever the document's size
_SUBJECT_WORDS = 8  # a thing named in the first words of a sentence is what the sentence is about
# Words that name no thing of their own, however often a report repeats them.
_VAGUE = frozenset(stem(w) for w in _words("""panel survey respondent respondents share percent figure
    average number majority half third quarter point points rise fall increase decrease growth
    example case reason result results study research author authors analysis way thing things
    lot time times year years month months week weeks day days past future today recent driver drivers
    factor factors sign signs key option options choice choices move shift change kind kinds type types
    part parts level levels side item items mechanism mechanisms spare product products thing""")) | GENERIC

# Adjectives and adverbs: a phrase ending in one ("better-for-you", "online") names no thing.
_NOT_HEADS = frozenset(_words("""online offline better-for-you healthy healthier premium digital local global new
    old cheap ready easy quick fresh natural clean popular mainstream average active free mild hot spicy
    more most less least own whole other same different available possible likely"""))
# Words after which the phrase before them is a verb's subject or a verb: "brand cleans the items".
_DETERMINERS = frozenset(_words("the a an its their them it his her our this these those"))
# Who did something: a phrase headed by one of these names an actor, not the thing it did.
_ACTORS = frozenset(stem(w) for w in _words("""grocer retailer roaster cooperative chain startup maker pilot
    manufacturer supplier operator team firm group player players competitor competitors members member
    respondents shopper shoppers buyer buyers household households owner owners leader leaders"""))
_QUOTED = re.compile(r"[\"“]([^\"”]{3,60})[\"”]")
# Verbs a phrase must not hold: "publish recipes" and "accept food" are actions, not things.
_VERBS = frozenset(stem(w) for w in _words("""publish accept stay prepare rely watch mention report manage explain
    connect design print label labelled printed carry drive drives replace follow fill build expect buy
    bought cook cooked try trying eat choose chose pay paid sell sold launch launched use used tell told
    signal signals gave give move moved say said work grow grew reach reached mean means need needs
    respond responding become became keep kept clean cleans grade grades matter matters bring brings
    democratize democratizes premiumize premiumizes digitize digitizes reframe reframes surprise surprised
    struggle struggled target targets answer answers win wins"""))
_ISE_NOUNS = frozenset(_words("""enterprise enterprises franchise franchises merchandise expertise exercise
    exercises premise premises promise promises compromise"""))
# Nouns that end in -ing: every other -ing word at a phrase's edge is a verb.
_ING_NOUNS = frozenset(_words("""seasoning seasonings cooking packaging clothing pricing marketing shopping
    bedding filling topping toppings dressing baking grilling camping hiking running training wellbeing
    being building clothing footwear spending sourcing housing heating bearing frosting icing pudding
    dumpling dumplings catering ticketing banking lodging parking skiing cycling climbing fishing
    boating sailing surfing trekking farming"""))


def _verbish(lows: list[str]) -> bool:
    """True when a phrase reads as an action: it holds a verb or starts or ends in a verb's -ing."""
    if any(stem(w) in _VERBS for w in lows):
        return True
    if lows[-1].endswith(("ize", "izes", "ise", "ises")) and len(lows[-1]) > 6 and lows[-1] not in _ISE_NOUNS:
        return True  # "repair videos humanize": a verb closes the phrase
    cue_verb = lows[0].endswith("ing") and lows[0] not in _ING_NOUNS and any(mechanism_scores(lows[0]).values())
    if cue_verb and len(lows) > 1:
        return lows[-1].endswith("ing") and lows[-1] not in _ING_NOUNS  # "renting tents" names the move
    return any(w.endswith("ing") and w not in _ING_NOUNS for w in (lows[0], lows[-1]))


@dataclass(frozen=True)
class Claim:
    """One sentence of the document read as a claim."""

    index: int  # the sentence's index in the analysis
    text: str  # the sentence, verbatim (whitespace collapsed)
    thing: str  # the phrase naming what it describes, as written
    thing_keys: tuple[str, ...]
    figure: str | None
    mechanism: str
    cue: str  # the words that point at the mechanism, or how it was chosen when none did
    category: str
    channel: str | None
    strength: float  # centrality, figure, cue and a well-named thing together, 0-1.8
    context: tuple[str, ...]  # stems of the neighbouring sentences: the paragraph it belongs to


def _subject_positions(sentence: Sentence) -> int:
    """How many tokens lead the sentence before its first punctuation (the grammatical subject)."""
    runs = token_runs(sentence.text)
    return min(len(runs[0]), _SUBJECT_WORDS) if runs else 0


def _thing(a: Analysis, sentence: Sentence) -> tuple[str, tuple[str, ...]] | None:
    """The best phrase of the sentence: specific to the document, recurring, early, multi-word."""
    recurring = {p.key: p.count for p in a.phrases}
    lead = _subject_positions(sentence)
    opening = sentence.text.casefold().split()[:3]
    folded = sentence.text.casefold()
    quoted = {" ".join(m.group(1).casefold().split()) for m in _QUOTED.finditer(sentence.text)}
    best: tuple[float, int, str, tuple[str, ...]] | None = None
    seen = 0
    for order, (key, text) in enumerate(grams(sentence)):
        # A phrase whose head is generic names an actor ("condiment brand"), not the thing it did.
        if key[-1] in GENERIC or key[-1] in _ACTORS or key[0] in _VAGUE or key[-1] in _VAGUE:
            continue
        lows = text.casefold().split()
        if _verbish(lows) or any(w.endswith(("'s", "’s")) for w in lows) or lows[-1] in _NOT_HEADS:
            continue
        at = folded.find(text.casefold())
        after = folded[at + len(text):].split()[:1] if at >= 0 else []
        if after and after[0] in _DETERMINERS and lows[-1].endswith("s"):
            continue  # "brand cleans the items": the last word is a verb
        if after and (stem(after[0].strip(",.;:")) in _ACTORS or stem(after[0].strip(",.;:")) in GENERIC):
            continue  # "condiment" in "condiment brand": a modifier of an actor
        weight = sum(a.weights.get(k, 0.0) for k in key) / len(key)
        value = weight * (0.8, 1.9, 2.1)[len(key) - 1]
        count = recurring.get(key, 0)
        value += 0.6 * min(count, 4) + (1.2 * min(count - 1, 3) if len(key) > 1 and count > 1 else 0.0)
        first = sentence.text.casefold().find(text.casefold())
        if first >= 0 and len(sentence.text[:first].split()) < lead:
            value *= 1.6  # the subject of the sentence is what it is about
            if lows[0] in opening:
                value *= 1.5  # and a sentence that opens with a noun names its topic first
        if any(k in GENERIC for k in key):
            value *= 0.6
        if text.casefold() in quoted:
            value *= 1.5  # the document puts its own names for things in quotes ("dinner kits")
        seen += 1
        candidate = (-round(value, 6), order, text, key)
        if best is None or candidate < best:
            best = candidate
    if best is None or not seen:
        return None
    return best[2], best[3]


def _mechanism(a: Analysis, index: int, thing: str) -> tuple[str, str, bool]:
    """The mechanism the sentence's cue words point at, else the sentence before's (its paragraph lead).

    The thing's head noun is no cue: "seasoning blends" names a product, it does not blend.
    """
    places = ((index, ""), (index - 1, " (in the sentence before)"))
    for i, where in places:
        if not 0 <= i < len(a.sentences):
            continue
        text = a.sentence(i).text
        if i == index:
            head = thing.split()[-1]
            start = text.casefold().find(thing.casefold())
            if start >= 0:
                cut = start + len(thing) - len(head)
                text = text[:cut] + text[cut + len(head):]
        scores = mechanism_scores(text)
        if any(scores.values()):
            mechanism = best_of(scores)
            words = cues(text, mechanism)
            return mechanism, ", ".join(f"“{w}”" for w in words[:3]) + where, True
    return FALLBACK, "no cue word nearby; classified as REFRAMED by default", False


def _claim(a: Analysis, index: int) -> Claim | None:
    """The sentence at ``index`` read as a claim, or None when it names no thing."""
    sentence = a.sentence(index)
    found = _thing(a, sentence)
    if found is None:
        return None
    thing, keys = found
    mechanism, cue, cued = _mechanism(a, index, thing)
    figure = number_fact(sentence.text)
    # A thing named in two or three words ("hot honey") reads as a product; one word rarely does.
    named = 0.3 if len(keys) > 1 else 0.0
    strength = a.scores[index] + (0.3 if figure else 0.0) + (0.2 if cued else 0.0) + named
    lo, hi = max(index - 1, 0), min(index + 2, len(a.sentences))
    context = tuple(dict.fromkeys(k for s in a.sentences[lo:hi] for k in s.keys))
    return Claim(index, sentence.text, thing[:1].upper() + thing[1:] if thing[:1].islower() else thing, keys,
                 figure, mechanism, cue, categorise(sentence.text), channel_of(sentence.text),
                 round(strength, 6), context)


def lower_thing(thing: str) -> str:
    """The thing inside a sentence: lower-case first letter unless it is a name or acronym."""
    return thing[:1].lower() + thing[1:] if thing[1:2].islower() else thing


@lru_cache(maxsize=8)
def common_keys(text: str) -> frozenset[str]:
    """Stems in more than a fifth of the document's sentences: its background, useless for matching."""
    a = analyse(text)
    df: dict[str, int] = {}
    for sentence in a.sentences:
        for key in set(sentence.keys):
            df[key] = df.get(key, 0) + 1
    limit = max(len(a.sentences) / 5, 3)
    return frozenset(k for k, n in df.items() if n > limit)


@lru_cache(maxsize=8)
def claims(text: str) -> tuple[Claim, ...]:
    """The document's claims, strongest first (ties in reading order)."""
    a = analyse(text)
    found = [c for c in (_claim(a, i) for i in a.ranked[:_POOL]) if c is not None]
    return tuple(sorted(found, key=lambda c: (-c.strength, c.index)))
