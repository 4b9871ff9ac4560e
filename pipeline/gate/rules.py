"""The gate's rules: each refuses one kind of non-report with its own code and a way to fix it.

Checked in this order, so each document gets the most telling reason: drawing operators,
placeholder text, one line repeated, too few words, not prose (numbers, code, symbols, no known
language), too few sentences. Each rule has a unit test with a document that trips it and a
real report that does not (tests/unit/test_gate.py).
"""

from __future__ import annotations

from config.errors import DOCUMENT_NOT_PROSE, DOCUMENT_PLACEHOLDER, DOCUMENT_TOO_SHORT, InvalidInput
from pipeline.gate import languages
from pipeline.gate.clean import Cleaned
from pipeline.gate.measure import Measures

MIN_WORDS = 80  # about one paragraph: less than this is a title page, a masthead or a scan
MIN_PROSE_SENTENCES = 4
MIN_PROSE_SHARE = 0.35  # share of the text's sentences that read as prose
MIN_FUNCTION_SHARE = 0.12  # English prose runs 0.35-0.55; placeholder, lists and codes near 0
MAX_PLACEHOLDER_SHARE = 0.25
MAX_TOP_LINE_SHARE = 0.5  # one line making half the lines (five or more) is no report
MIN_DISTINCT_SHARE = 0.4  # prose sentences, repeats counted once, over all prose sentences


def _refuse(name: str, code: str, found: str, fix: str) -> InvalidInput:
    return InvalidInput(f"document {name!r} {found}: {fix}", code=code)


def check(name: str, cleaned: Cleaned, m: Measures, top: tuple[str, int, int]) -> None:
    """Raise InvalidInput (DOCUMENT_NOT_PROSE, _PLACEHOLDER or _TOO_SHORT) unless the text is a report."""
    line, repeats, lines = top
    if cleaned.drawing_lines and (m.words < MIN_WORDS or m.prose_sentences < MIN_PROSE_SENTENCES):
        raise _refuse(name, DOCUMENT_NOT_PROSE,
                      f"has a text layer of PDF drawing instructions ({cleaned.drawing_lines} passage(s) such as "
                      f"\"0 0 1 rg\" or \"BT /F1 12 Tf\"), not words", "the PDF is damaged or was generated "
                      "wrongly; export it again from the original, or upload the text as .txt or .md")
    if m.lorem_share >= MAX_PLACEHOLDER_SHARE:
        raise _refuse(name, DOCUMENT_PLACEHOLDER, f"is placeholder text ({m.lorem_share:.0%} of its words "
                      "are \"lorem ipsum\" Latin)", "upload the finished report, not a layout template")
    if repeats >= 5 and repeats >= MAX_TOP_LINE_SHARE * lines:
        raise _refuse(name, DOCUMENT_NOT_PROSE, f"repeats one line {repeats} times in {lines} lines "
                      f"(\"{line[:60]}\")", "upload the report itself, not a test or filler file")
    if m.words < MIN_WORDS and m.numbers > m.words and m.tokens >= MIN_WORDS:
        raise _refuse(name, DOCUMENT_NOT_PROSE, _not_prose_reason(m), "upload a report written in sentences")
    if m.words < MIN_WORDS:
        stripped = f" after removing {', '.join(cleaned.removed)}" if cleaned.removed else ""
        raise _refuse(name, DOCUMENT_TOO_SHORT, f"holds only {m.words} word{'s' if m.words != 1 else ''}"
                      f"{stripped}; a report needs at least "
                      f"{MIN_WORDS}", "upload the full report (a title page, masthead or cover is not enough); "
                      "if it is a scan, run OCR on it first")
    if m.language not in languages.SCRIPT_NAMES and m.function_share < MIN_FUNCTION_SHARE:
        raise _refuse(name, DOCUMENT_NOT_PROSE, _not_prose_reason(m), "upload a report written in sentences")
    if m.prose_share < MIN_PROSE_SHARE:
        raise _refuse(name, DOCUMENT_NOT_PROSE, _not_prose_reason(m), "upload a report written in sentences; "
                      "tables, listings and slides with no running text cannot be read as a report")
    if m.prose_sentences >= MIN_PROSE_SENTENCES and m.distinct_prose < MIN_DISTINCT_SHARE * m.prose_sentences:
        raise _refuse(name, DOCUMENT_NOT_PROSE, f"repeats the same sentences: {m.distinct_prose} distinct "
                      f"of {m.prose_sentences}", "upload the report itself, not a test or filler file")
    if m.prose_sentences < MIN_PROSE_SENTENCES:
        raise _refuse(name, DOCUMENT_TOO_SHORT, f"holds only {m.prose_sentences} sentence"
                      f"{'s' if m.prose_sentences != 1 else ''} of running text; a report needs at least "
                      f"{MIN_PROSE_SENTENCES}", "upload the full report, not its cover or contents page")


def _not_prose_reason(m: Measures) -> str:
    """What the text looks like instead of prose, from its most telling measure."""
    stats = (f"{m.prose_sentences} of its {m.sentences} sentences and lines read as prose, "
             f"{m.function_share:.0%} of words are common {languages.name(m.language)} words")
    if m.numbers > m.words:
        kind = f"is mostly numbers ({m.numbers} numbers, {m.words} words), like a data table"
    elif m.symbol_share >= 0.25:
        kind = f"is mostly symbols ({m.symbol_share:.0%} of characters)"
    elif m.code_share >= 0.3:
        kind = f"looks like source code ({m.code_share:.0%} of lines)"
    elif m.symbol_share >= 0.15:
        kind = f"is mostly symbols ({m.symbol_share:.0%} of characters)"
    else:
        kind = "is not running text in a language we recognise"
    return f"{kind}; {stats}"
