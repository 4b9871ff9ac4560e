"""Plain text from an uploaded PDF, or an InvalidInput that says what is wrong with the file.

Extraction uses pypdfium2 (PDFium, Chrome's PDF engine): in ``bench/pdf_extractors.py`` it was
about 4x faster than pypdf and over 30x faster than pdfminer.six at the same word fidelity, with
the lowest peak memory; see ``bench/README.md``. PDFium refuses a zero-page file with the same error
as a damaged one, so on that path only pypdf (pure Python) looks at the structure to tell
``PDF_EMPTY`` from ``PDF_CORRUPT``.

Untrusted bytes are never parsed in the caller's process: ``extract_pdf_text`` runs
``extract_in_process`` in a child under a ``PdfBudget`` (pipeline/pdf_sandbox.py), and this module
checks the page and character budgets while it reads.

Error codes: ``PDF_ENCRYPTED``, ``PDF_CORRUPT``, ``PDF_EMPTY``, ``PDF_NO_TEXT``, ``DOCUMENT_TOO_COMPLEX``.
"""

from __future__ import annotations

import ctypes
import io
import re
import threading
from dataclasses import dataclass

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from config.errors import InvalidInput
from pipeline.pdf_budget import PdfBudget, too_complex

__all__ = ["PdfBudget", "PdfText", "extract_in_process", "extract_pdf_text"]


@dataclass(frozen=True)
class PdfText:
    """The text of a PDF: paragraphs separated by blank lines, and page counts."""

    text: str
    pages: int
    pages_with_text: int


# PDFium is not thread-safe, not even across separate documents (pypdfium2 docs): one lock
# serialises every call in case a threaded server ever extracts in-process.
_PDFIUM_LOCK = threading.Lock()

_ENCRYPTED = (
    "the PDF is password protected, so its text cannot be read: remove the password and "
    "upload again (open it with the password, then save or print an unprotected copy)"
)
_CORRUPT = (
    "the file is not a readable PDF ({why}): export or download the document again and "
    "upload the new copy, or upload it as .txt or .md"
)
_EMPTY = "the PDF has no pages: upload a PDF that contains the document's pages"
_NO_TEXT = (
    "the PDF has {pages} page(s) but no extractable text (it looks image-only or scanned): "
    "run OCR first or upload the text version (.txt or .md)"
)

# PDFium replaces a hyphen at a line end with U+FFFE (older builds: U+0002) and drops the
# line break itself; what follows the mark decides whether it split a word or a compound.
_HYPHEN_MARK = re.compile(r"[\x02\ufffe](\s*)(.?)")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SPACES = re.compile(r"[ \t\u00a0]+")
# A list item's marker at the start of a line: a bullet glyph, a dash, or "1." / "2)".
_BULLET = re.compile(r"\s*(?:[\u2022\u2023\u25aa\u25cf\u25e6\u2043\u2013*-]|\d{1,2}[.)])\s")
# A page's first or last paragraph that is only "7", "Page 7" or "7 of 12": a running footer.
_PAGE_NUMBER = re.compile(r"(?i)(?:page\s*)?\d{1,4}(?:\s*(?:of|/)\s*\d{1,4})?")
_SENTENCE_END = tuple(".!?:;\"')]\u201d\u2019")


DEFAULT_BUDGET = PdfBudget()
Bytes = bytes | bytearray | memoryview


def extract_pdf_text(data: Bytes, *, budget: PdfBudget = DEFAULT_BUDGET) -> PdfText:
    """Return the text of the PDF in ``data``, read in a child under ``budget``; raise InvalidInput."""
    from pipeline.pdf_sandbox import extract_in_child  # the sandbox runs extract_in_process below

    return extract_in_child(bytes(data), budget)


def extract_in_process(data: Bytes, budget: PdfBudget = DEFAULT_BUDGET) -> PdfText:
    """Extract in this process, enforcing the page and character budgets (the sandbox's child calls this)."""
    data = bytes(data)
    if not data:
        raise InvalidInput(_CORRUPT.format(why="the file is 0 bytes"), code="PDF_CORRUPT")
    with _PDFIUM_LOCK:
        pdf = _open(data)
        try:
            if len(pdf) > budget.max_pages:
                raise too_complex(f"it has {len(pdf):,} pages", budget)
            chars = [0]
            page_paragraphs = [_page_paragraphs(pdf, index, budget, chars) for index in range(len(pdf))]
        except pdfium.PdfiumError as exc:
            raise InvalidInput(
                _CORRUPT.format(why=f"a page could not be read: {exc}"), code="PDF_CORRUPT"
            ) from exc
        finally:
            pdf.close()

    pages = len(page_paragraphs)
    if pages == 0:
        raise InvalidInput(_EMPTY, code="PDF_EMPTY")
    pages_with_text = sum(1 for paragraphs in page_paragraphs if _has_words(paragraphs))
    if pages_with_text == 0:
        raise InvalidInput(_NO_TEXT.format(pages=pages), code="PDF_NO_TEXT")
    text = "\n\n".join(_merge_page_breaks(page_paragraphs))
    return PdfText(text=text, pages=pages, pages_with_text=pages_with_text)


def _open(data: bytes) -> pdfium.PdfDocument:
    """Open ``data`` with PDFium, translating its load errors into our codes."""
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if exc.err_code == pdfium_c.FPDF_ERR_PASSWORD:
            raise InvalidInput(_ENCRYPTED, code="PDF_ENCRYPTED") from exc
        if exc.err_code == pdfium_c.FPDF_ERR_SECURITY:
            raise InvalidInput(
                "the PDF uses an encryption scheme that cannot be opened: remove the password "
                "or protection and upload again",
                code="PDF_ENCRYPTED",
            ) from exc
        if _has_zero_pages(data):
            raise InvalidInput(_EMPTY, code="PDF_EMPTY") from exc
        why = "it is damaged or truncated" if data.startswith(b"%PDF") else "no PDF header"
        raise InvalidInput(_CORRUPT.format(why=why), code="PDF_CORRUPT") from exc


def _has_zero_pages(data: bytes) -> bool:
    """True if pypdf reads ``data`` as a well-formed PDF whose page tree is empty."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        return not reader.is_encrypted and len(reader.pages) == 0
    # Only a probe: pypdf reports malformed input with its own errors and with plain
    # lookup/value/type errors; all of them mean "not an empty PDF", and the caller then
    # raises PDF_CORRUPT chained to PDFium's original error.
    except (PyPdfError, ValueError, LookupError, TypeError, AttributeError, RecursionError):
        return False


def _page_paragraphs(pdf: pdfium.PdfDocument, index: int, budget: PdfBudget, chars: list[int]) -> list[str]:
    """The paragraphs of one page, in PDFium's reading order; ``chars`` counts characters so far."""
    page = pdf[index]
    try:
        textpage = page.get_textpage()
        try:
            chars[0] += max(0, pdfium_c.FPDFText_CountChars(textpage.raw))
            if chars[0] > budget.max_chars:
                raise too_complex(f"it holds more than {budget.max_chars:,} characters of text "
                                  f"(reached on page {index + 1})", budget)
            return _paragraphs(textpage)
        finally:
            textpage.close()
    finally:
        page.close()


def _paragraphs(textpage: pdfium.PdfTextPage) -> list[str]:
    """Group a page's text lines into paragraphs using their baselines and font sizes."""
    # get_text_range() is in PDFium's text-index space, so a line's offset (in UTF-16 units)
    # maps back to a character whose baseline and font size PDFium can report.
    full = textpage.get_text_range()
    lines: list[_Line] = []
    offset = 0
    for text in full.split("\r\n"):  # PDFium ends every visual line with CRLF
        lead = len(text) - len(text.lstrip())
        first = offset + _utf16_units(text[:lead])  # first visible character of the line
        position = _position(textpage, first) if text.strip() else None
        lines.append(_Line(text, *(position or (None, None))))
        offset += _utf16_units(text) + 2
    return [_join_lines(group) for group in _group_lines(lines)]


@dataclass(frozen=True)
class _Line:
    """One visual line of a page: its text, baseline height and font size (None if unknown)."""

    text: str
    baseline: float | None
    size: float | None


def _position(textpage: pdfium.PdfTextPage, text_index: int) -> tuple[float, float] | None:
    """Baseline y and font size of the character at ``text_index``, if PDFium knows them."""
    char_index = pdfium_c.FPDFText_GetCharIndexFromTextIndex(textpage.raw, text_index)
    x, y = ctypes.c_double(), ctypes.c_double()
    if char_index < 0 or not pdfium_c.FPDFText_GetCharOrigin(textpage.raw, char_index, x, y):
        return None
    return y.value, pdfium_c.FPDFText_GetFontSize(textpage.raw, char_index)


def _group_lines(lines: list[_Line]) -> list[list[str]]:
    """Split a page's lines into paragraphs (lists of lines)."""
    placed = [(line.baseline, line.size) for line in lines if line.baseline is not None and line.size]
    ratios = sorted((a - b) / size for (a, _), (b, size) in zip(placed, placed[1:], strict=False)
                    if a - b > 0.5 * size)
    # Line spacing inside a paragraph, relative to font size: the lower quartile, because on
    # a page of bullets or short paragraphs the median is already a between-paragraph gap.
    spacing = ratios[len(ratios) // 4] if ratios else 0.0
    groups: list[list[str]] = []
    previous: _Line | None = None
    for line in lines:
        if not line.text.strip():
            previous = None  # an empty line is already a paragraph break
            continue
        if previous is not None and _same_baseline(previous, line):
            groups[-1][-1] += " " + line.text  # one visual line that PDFium reported in pieces
        elif previous is None or _starts_paragraph(previous, line, spacing):
            groups.append([line.text])
        else:
            groups[-1].append(line.text)
        previous = line
    return groups


def _same_baseline(previous: _Line, line: _Line) -> bool:
    """True if both lines sit on (almost) the same baseline."""
    if previous.baseline is None or line.baseline is None or not line.size:
        return False
    return abs(previous.baseline - line.baseline) < 0.3 * line.size


def _starts_paragraph(previous: _Line, line: _Line, spacing: float) -> bool:
    """True if ``line`` begins a new paragraph rather than continuing ``previous``."""
    if _BULLET.match(line.text):
        return True  # every list item stands alone, however tight the list is set
    if previous.baseline is None or line.baseline is None or not line.size or not previous.size:
        return False  # no geometry: keep the text together rather than guess
    drop = previous.baseline - line.baseline
    return (
        drop < 0  # moved up the page: a new column or a floating block
        or drop / line.size > 1.3 * spacing  # extra space above: a new paragraph or heading
        or abs(line.size - previous.size) > 0.1 * max(line.size, previous.size)  # heading/body
    )


def _utf16_units(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, the unit of PDFium's text indices."""
    return len(text.encode("utf-16-le")) // 2


def _join_lines(lines: list[str]) -> str:
    """Join one paragraph's lines with spaces, rejoining words hyphenated across a break."""
    out = ""
    for raw in lines:
        line = _SPACES.sub(" ", _CONTROL.sub("", _HYPHEN_MARK.sub(_line_end_hyphen, raw)))
        line = line.strip()
        if not line:
            continue
        if out.endswith("\u00ad"):
            out = out[:-1] + line  # a soft hyphen only ever marks a word split by the break
        elif out.endswith("-") and len(out) > 1 and out[-2].isalpha():
            # "inno-" + "vation" is one word; "self-" + "Service" or "COVID-" + "19" keep it.
            out = (out[:-1] if line[0].islower() else out) + line
        else:
            out = f"{out} {line}" if out else line
    return out.replace("\u00ad", "")


def _line_end_hyphen(match: re.Match[str]) -> str:
    """Resolve PDFium's line-end hyphen mark: drop it inside a word, else keep a hyphen."""
    following = match.group(2)
    return following if following.islower() else "-" + following


def _merge_page_breaks(page_paragraphs: list[list[str]]) -> list[str]:
    """Flatten pages into paragraphs, dropping page numbers and rejoining split sentences."""
    merged: list[str] = []
    for paragraphs in page_paragraphs:
        body = [p for p in paragraphs if p]
        while body and _PAGE_NUMBER.fullmatch(body[0]):
            body.pop(0)
        while body and _PAGE_NUMBER.fullmatch(body[-1]):
            body.pop()
        for position, paragraph in enumerate(body):
            carries_on = (position == 0 and merged and not merged[-1].endswith(_SENTENCE_END)
                          and paragraph[0].islower())
            if carries_on:
                merged[-1] = _join_lines([merged[-1], paragraph])
            else:
                merged.append(paragraph)
    return merged


def _has_words(paragraphs: list[str]) -> bool:
    """True if any paragraph holds a letter or digit."""
    return any(char.isalnum() for paragraph in paragraphs for char in paragraph)
