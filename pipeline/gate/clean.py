"""Strip what is not prose from a document's text, and say what was stripped.

Runs before anything measures or reads the text: YAML/TOML front matter, template tags, HTML
comments and tags, fenced code, markdown syntax (links keep their words), page furniture that
repeats on every page (running headers, "Page 3 of 12") and PDF drawing operators that a broken
text layer returns as text. Paragraph breaks are kept, so the stages still see the structure.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

_FRONT_MATTER = re.compile(r"\A\ufeff?(?:---|\+\+\+)[ \t]*\n.*?\n(?:---|\.\.\.|\+\+\+)[ \t]*(?:\n|\Z)", re.DOTALL)
_FENCE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[ \t]*$", re.DOTALL | re.MULTILINE)
_TEMPLATE = re.compile(r"\{%.*?%\}|\{\{.*?\}\}|\{#.*?#\}", re.DOTALL)
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\((?:[^()\s]|\([^)]*\))*\)")
_REF_DEF = re.compile(r"^[ \t]*\[[^\]]+\]:[ \t]*\S+.*$", re.MULTILINE)
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+(.*?)[ \t#]*$", re.MULTILINE)
_SETEXT = re.compile(r"^[ \t]*(?:=+|-{3,}|\*{3,}|_{3,})[ \t]*$", re.MULTILINE)
_QUOTE = re.compile(r"^[ \t]*>[ \t]?", re.MULTILINE)
_TABLE_RULE = re.compile(r"^[ \t]*\|?[ \t]*:?-{2,}:?[ \t]*(?:\|[ \t]*:?-{2,}:?[ \t]*)*\|?[ \t]*$", re.MULTILINE)
_TABLE_ROW = re.compile(r"^[ \t]*\|(.*)\|[ \t]*$", re.MULTILINE)
_EMPHASIS = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1|(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_BLANK = re.compile(r"\n[ \t\r\f\v]*\n")
_DIGITS = re.compile(r"\d+")
_PAGE_LINE = re.compile(r"^\s*(?:page\s+)?\d{1,4}(?:\s*(?:/|of)\s*\d{1,4})?\s*$", re.IGNORECASE)

# PDF content-stream operators (ISO 32000 §8-9): a text layer made of these is drawing, not words.
_OPERATOR_NAMES = (
    "q Q cm w J j M d ri i gs m l c v y h re S s f F f* B B* b b* n W W* BT ET Tc Tw Tz TL Tf Tr Ts "
    "Td TD Tm T* Tj TJ ' \" d0 d1 CS cs SC SCN sc scn G g RG rg K k sh BI ID EI Do MP DP BMC BDC EMC "
    "BX EX obj endobj stream endstream xref trailer startxref R"
)
_OPERATORS = frozenset(_OPERATOR_NAMES.split())
_OPERAND = re.compile(r"^(?:[-+]?\d*\.?\d+|/[^\s/]+|\(.*\)|<[0-9A-Fa-f\s]*>|\[.*\]|<<|>>|%.*)$")
_MIN_REPEATS = 3  # a short line seen this often is a running header or footer
_MAX_FURNITURE_WORDS = 12


@dataclass(frozen=True)
class Cleaned:
    """The prose left after stripping, and what was removed (for messages and the log)."""

    text: str
    removed: tuple[str, ...]
    drawing_lines: int
    lines_before: int


def _strip_markdown(text: str, removed: list[str]) -> str:
    """Markdown and template syntax out, words in (link text stays, URLs go)."""
    for pattern, label in ((_FENCE, "fenced code blocks"), (_TEMPLATE, "template tags"),
                           (_HTML_COMMENT, "HTML comments"), (_REF_DEF, "link definitions")):
        text, n = pattern.subn("\n", text)
        if n:
            removed.append(f"{n} {label}")
    text, tags = _HTML_TAG.subn(" ", text)
    if tags:
        removed.append(f"{tags} HTML tags")
    text, marks = _IMAGE.subn(r"\1", text)
    text, links = _LINK.subn(r"\1", text)
    text, headings = _HEADING.subn(lambda m: f"\n{m.group(1)}\n", text)
    text = _SETEXT.sub("", text)
    text = _TABLE_RULE.sub("", text)
    text = _QUOTE.sub("", text)
    # A markdown table row keeps its cells as words: "| Chili crisp | 21% |" -> "Chili crisp; 21%".
    text = _TABLE_ROW.sub(lambda m: "; ".join(c.strip() for c in m.group(1).split("|") if c.strip()), text)
    text = _EMPHASIS.sub(lambda m: m.group(2) or m.group(3), text)
    text = _CODE_SPAN.sub(r"\1", text)
    if marks + links + headings:
        removed.append("markdown syntax")
    return text


def is_drawing(line: str) -> bool:
    """True for a line of PDF drawing operators and their operands ("0 0 1 rg 72 720 m")."""
    parts = line.split()
    if len(parts) < 2:
        return False
    operators = sum(map(_OPERATORS.__contains__, parts))
    if not operators:  # most lines: prose has no operator, so its operands need not be counted
        return False
    operands = sum(1 for p in parts if _OPERAND.match(p))
    return operators + operands >= 0.8 * len(parts)


def _furniture(paragraphs: list[str]) -> set[str]:
    """Short paragraphs repeated on page after page (digits ignored: "Page 3" = "Page 4")."""
    shapes = Counter(_DIGITS.sub("#", " ".join(p.split())).casefold() for p in paragraphs
                     if 0 < len(p.split()) <= _MAX_FURNITURE_WORDS)
    return {shape for shape, n in shapes.items() if n >= _MIN_REPEATS}


def clean(text: str) -> Cleaned:
    """The text with non-prose stripped (see the module docstring), paragraphs kept apart."""
    removed: list[str] = []
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n\n")
    text, front = _FRONT_MATTER.subn("", text, count=1)
    if front:
        removed.append("front matter")
    text = _strip_markdown(text, removed)
    lines = text.split("\n")
    drawing = [is_drawing(line) for line in lines]
    if any(drawing):
        removed.append(f"{sum(drawing)} lines of PDF drawing operators")
    text = "\n".join(line.rstrip() for line, bad in zip(lines, drawing, strict=True) if not bad)
    paragraphs = [p.strip("\n") for p in _BLANK.split(text)]
    repeated = _furniture(paragraphs)
    kept, furniture = [], 0
    for paragraph in paragraphs:
        shape = _DIGITS.sub("#", " ".join(paragraph.split())).casefold()
        if shape in repeated or _PAGE_LINE.match(paragraph):
            furniture += 1
            continue
        if paragraph.strip():
            kept.append(paragraph)
    if furniture:
        removed.append(f"{furniture} lines of page furniture (running headers, footers, page numbers)")
    return Cleaned("\n\n".join(kept).strip(), tuple(removed), sum(drawing), len(lines))
