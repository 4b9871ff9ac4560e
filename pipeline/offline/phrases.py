"""Key phrases: the noun-ish 1-3 word n-grams a document keeps coming back to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.offline.text import Sentence, stem, token_runs
from pipeline.offline.wordlists import NUMBER_WORDS, STOPWORDS, WEAK_EDGE_WORDS

# Longer phrases read better in titles, but only if they really recur.
_LENGTH_WEIGHT = {1: 0.6, 2: 1.6, 3: 1.9}
# Words every trend report uses: poor on their own as the subject of a title.
GENERIC = frozenset(
    stem(w) for w in """consumer consumers customer customers people brand brands product products
    market markets company companies business businesses report industry industries category
    categories trend trends data growth sales percent year years today way ways world work""".split()
)
# Document furniture: headings such as "Executive summary" name no subject.
_STRUCTURAL = frozenset(
    stem(w) for w in """executive summary introduction conclusion conclusions overview contents
    appendix methodology takeaways chapter section figure table page sources notes case""".split()
)
# Below this many sentences every phrase appears once: do not demand repetition.
_SHORT_DOCUMENT = 25


@dataclass(frozen=True)
class Phrase:
    """A recurring phrase: its stem key, its most common written form and how often it recurs."""

    key: tuple[str, ...]
    text: str
    count: int
    score: float
    first: int


def _display(tok: str, sentence_start: bool, heading: bool) -> str:
    """How a token is written inside a phrase: sentence-initial or heading capitals dropped."""
    if heading and tok.isupper() and len(tok) > 3:
        return tok.lower()  # an ALL-CAPS heading shouts; its words are not acronyms
    if tok.isupper() and len(tok) > 1:
        return tok  # acronyms such as DTC or AI keep their capitals
    if (sentence_start or heading) and tok[:1].isupper() and tok[1:] == tok[1:].lower():
        return tok.lower()
    return tok


def _usable(low: str) -> bool:
    """True for tokens that can be part of a phrase: words, not numbers or stopwords."""
    return 2 < len(low) <= 30 and low not in STOPWORDS and low not in NUMBER_WORDS and not low[0].isdigit()


def _edge_ok(lows: Sequence[str]) -> bool:
    """No weak verb or filler anywhere, no adverb at the edges, no -ed form first or last."""
    if any(low in WEAK_EDGE_WORDS for low in lows):
        return False
    first, last = lows[0], lows[-1]
    if last.endswith("ly") or first.endswith("ly"):
        return False
    return not (first.endswith("ed") or last.endswith("ed"))


def grams(sentence: Sentence) -> list[tuple[tuple[str, ...], str]]:
    """(stem key, written form) of every usable 1-3 word n-gram in a sentence, in order."""
    out: list[tuple[tuple[str, ...], str]] = []
    for words_run, offset in _runs_with_offsets(sentence.text):
        run: list[tuple[str, str, str]] = []  # (as shown, lower case, stem), stemmed once per token
        for position, tok in enumerate(words_run + [""], start=offset):
            low = tok.casefold()
            if tok and _usable(low):
                run.append((_display(tok, position == 0, sentence.heading), low, stem(low)))
                continue
            for size in (1, 2, 3):
                for i in range(len(run) - size + 1):
                    gram = run[i:i + size]
                    if _edge_ok([low for _, low, _ in gram]):
                        out.append((tuple(k for _, _, k in gram), " ".join(shown for shown, _, _ in gram)))
            run = []
    return out


def _runs_with_offsets(text: str) -> list[tuple[list[str], int]]:
    """Punctuation-free token runs with the position of their first token in the sentence."""
    out, offset = [], 0
    for run in token_runs(text):
        out.append((run, offset))
        offset += len(run)
    return out


def _count(sentences: Sequence[Sentence]) -> tuple[dict, dict, dict]:
    """Count n-grams per stem key (headings count double) and the written forms each key takes."""
    counts: dict[tuple[str, ...], int] = {}
    forms: dict[tuple[str, ...], dict[str, int]] = {}
    first: dict[tuple[str, ...], int] = {}
    for sentence in sentences:
        weight = 2 if sentence.heading else 1  # a heading names what a section is about
        for key, text in grams(sentence):
            counts[key] = counts.get(key, 0) + weight
            bucket = forms.setdefault(key, {})
            bucket[text] = bucket.get(text, 0) + 1
            first.setdefault(key, sentence.index)
    return counts, forms, first


def _contains(longer: tuple[str, ...], shorter: tuple[str, ...]) -> bool:
    """True when ``shorter`` occurs as a contiguous run inside ``longer``."""
    n = len(shorter)
    return any(longer[i:i + n] == shorter for i in range(len(longer) - n + 1))


def extract_phrases(sentences: Sequence[Sentence], limit: int = 40) -> tuple[Phrase, ...]:
    """The document's top phrases, best first, without phrases nested inside one another."""
    counts, forms, first = _count(sentences)
    short = len(sentences) < _SHORT_DOCUMENT
    candidates = []
    for key, count in counts.items():
        if (len(key) > 1 and count < 2 and not short) or any(k in _STRUCTURAL for k in key):
            continue
        score = count * _LENGTH_WEIGHT[len(key)]
        if len(key) == 1 and key[0] in GENERIC:
            score *= 0.5
        # Earlier phrases win ties: reports state their subject up front.
        score += 0.25 / (1 + first[key] / 10)
        text = min(forms[key].items(), key=lambda item: (-item[1], item[0]))[0]
        candidates.append(Phrase(key, text, count, round(score, 6), first[key]))
    candidates.sort(key=lambda p: (-p.score, p.first, p.text))
    chosen: list[Phrase] = []
    for phrase in candidates:
        if len(chosen) >= limit:
            break
        if any(_contains(c.key, phrase.key) for c in chosen):
            continue
        nested = [i for i, c in enumerate(chosen) if _contains(phrase.key, c.key)]
        if nested:
            # Prefer the longer phrase when it carries most of the shorter one's mentions.
            i = nested[0]
            if phrase.count * 2 >= chosen[i].count and len(nested) == 1:
                chosen[i] = phrase
            continue
        chosen.append(phrase)
    return tuple(chosen)
