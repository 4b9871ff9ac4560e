"""Signal categories and sales channels, recognised from a sentence's own words."""

from __future__ import annotations

from pipeline.offline.text import stem, tokens

# Signal categories in tie-break order; trailing "*" marks a prefix, other words a light stem.
CATEGORIES = {
    "Market growth": "grow* growth market markets sales revenue* billion* million* share cagr increas* "
                     "rise rising rose surg* doubl* expand* declin* fell",
    "Consumer behaviour": "consumer* shopper* customer* people household* buyer* prefer* habit* "
                          "behavio* adopt* millennial* gen parent* famil* user*",
    "Technology": "technolog* digital* app apps ai online platform* data software sensor* "
                  "ecommerce e-commerce algorithm* automat*",
    "Sustainability": "sustainab* recycl* waste carbon climate circular reus* refill* packaging "
                      "plastic* eco* environment* renewab* repair*",
    "Health & wellness": "health* wellness protein* sugar* nutri* diet* organic natural clean-label "
                         "fitness calori* probiotic* gut plant-based vegan wellbeing salt sodium fat* "
                         "fibre fiber blood",
    "Pricing & value": "price* pricing afford* cost* cheap* value discount* inflation budget* "
                       "spend* premium*",
    "Retail & channel": "retail* store* shelf shelves supermarket* grocer* channel* deliver* "
                        "shop shops outlet* direct-to-consumer dtc marketplace* wholesale*",
    "Culture & lifestyle": "culture* lifestyle* social* community communities travel* outdoor* "
                           "experience* identity fashion* ritual*",
}
_FALLBACK_CATEGORY = "Consumer behaviour"
_ENTRIES = {name: words.split() for name, words in CATEGORIES.items()}

# Channels a sentence can place a trend in, first match wins; each as a card names it.
CHANNELS = (
    ("restaurant* menu* foodservice chef* qsr quick-service", "restaurants and foodservice"),
    ("social video* tiktok instagram influencer* creator*", "social video and creators"),
    ("app apps online e-commerce ecommerce website* web direct-to-consumer dtc d2c subscription*",
     "online and direct-to-consumer"),
    ("supermarket* grocer* grocery shelf shelves aisle* retailer* club", "grocery retail"),
    ("store stores in-store shop shops showroom* outlet* boutique*", "own and partner stores"),
    ("pharmac* drugstore*", "pharmacies"),
    ("school* lunch lunchbox* office* workplace*", "schools and workplaces"),
)
_CHANNEL_ENTRIES = tuple((words.split(), name) for words, name in CHANNELS)


def _matches(low: str, entries: list[str]) -> bool:
    """True when a lowercase token matches one lexicon entry (prefix or stem)."""
    return any(low.startswith(e[:-1]) if e.endswith("*") else stem(low) == stem(e) for e in entries)


def categorise(text: str) -> str:
    """The signal category whose lexicon ``text`` hits most (first listed wins ties)."""
    lows = [t.casefold() for t in tokens(text)]
    counts = {name: sum(1 for low in lows if _matches(low, entries)) for name, entries in _ENTRIES.items()}
    best = max(counts, key=lambda name: (counts[name], -list(CATEGORIES).index(name)))
    return best if counts[best] > 0 else _FALLBACK_CATEGORY


def channel_of(text: str) -> str | None:
    """The sales channel ``text`` mentions, if any."""
    lows = [t.casefold() for t in tokens(text)]
    for entries, name in _CHANNEL_ENTRIES:
        if any(_matches(low, entries) for low in lows):
            return name
    return None
