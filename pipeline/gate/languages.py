"""Which language a text is written in, from its function words (no model, no download).

Function words ("the", "of", "and"; "le", "de", "et") make up a third to a half of any prose in
a language and almost none of a listing, a table or placeholder Latin, so one count answers two
questions: which language, and whether this is prose at all.
"""

from __future__ import annotations

import re

FUNCTION_WORDS = {
    "en": "the of and to a in is that for it as with was on are by be this from or at an which have has "
          "not but they their its more than were can will been also we our you who into when about one "
          "if what there all would these other so up out them only most such how while many each do over",
    "fr": "le la les de des du un une et en est que qui dans pour pas sur au aux par plus ce cette ne se "
          "sont avec il elle ils nous vous ou leur mais comme été être à où sa son ses",
    "es": "el la los las de del y en que un una es por con para no se lo al más su sus como pero ha "
          "son este esta entre sobre también fue ya muy sin o le",
    "de": "der die das und in zu den von mit ist des sich nicht auf für im dem ein eine als auch es an "
          "werden aus er hat dass sie nach bei um noch wie über einen so zum war",
    "it": "il la di che e un una per in non è sono con del della le gli si da al dei delle più come ma "
          "anche nel alla questo lo ha",
    "pt": "o a os as de do da dos das e em um uma que para com não por se mais como mas ao foi são "
          "na no nas nos pelo pela seu sua",
    "nl": "de het een en van in is dat op te zijn voor met niet aan er ook als bij door maar om dan "
          "nog wel naar uit worden hij zij wordt deze",
}
NAMES = {"en": "English", "fr": "French", "es": "Spanish", "de": "German", "it": "Italian",
         "pt": "Portuguese", "nl": "Dutch"}
_SETS = {code: frozenset(words.split()) for code, words in FUNCTION_WORDS.items()}
# Scripts without Latin letters: named by their script, since function words cannot tell.
_SCRIPTS = (("zh/ja", re.compile(r"[\u3040-\u30ff\u3400-\u9fff]")), ("ko", re.compile(r"[\uac00-\ud7af]")),
            ("ru/uk", re.compile(r"[\u0400-\u04ff]")), ("ar", re.compile(r"[\u0600-\u06ff]")),
            ("el", re.compile(r"[\u0370-\u03ff]")), ("he", re.compile(r"[\u0590-\u05ff]")),
            ("hi", re.compile(r"[\u0900-\u097f]")), ("th", re.compile(r"[\u0e00-\u0e7f]")))
SCRIPT_NAMES = {"zh/ja": "Chinese or Japanese", "ko": "Korean", "ru/uk": "Cyrillic-script",
                "ar": "Arabic", "el": "Greek", "he": "Hebrew", "hi": "Devanagari-script", "th": "Thai"}


def function_share(words: list[str], code: str) -> float:
    """The share of ``words`` (lower case) that are function words of language ``code``."""
    if not words:
        return 0.0
    table = _SETS[code]
    return sum(map(table.__contains__, words)) / len(words)


def detect(text: str, words: list[str]) -> tuple[str, float]:
    """(language code, its function-word share); a non-Latin script wins when it dominates."""
    letters = sum(map(str.isalpha, text))
    for code, pattern in _SCRIPTS:
        if letters and len(pattern.findall(text)) > 0.3 * letters:
            return code, 1.0
    shares = {code: function_share(words, code) for code in FUNCTION_WORDS}
    best = max(shares, key=lambda code: (shares[code], code == "en"))
    return best, shares[best]


def name(code: str) -> str:
    """A person's name for a language code ("fr" -> "French")."""
    return NAMES.get(code) or SCRIPT_NAMES.get(code) or code
