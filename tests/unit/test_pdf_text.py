"""PDF text extraction in process: clean paragraphs, precise codes (sandboxed path: test_pdf_budgets.py)."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest

from config.errors import InvalidInput
from pipeline.pdf_text import PdfText, extract_in_process
from tests import pdf_fixtures

SAMPLE_PDF = Path(__file__).resolve().parents[2] / "data" / "samples" / "flavor-trends-2026.pdf"


def canvas_pdf(*pages: list[str], leading: float = 14) -> bytes:
    """A PDF with each page's lines drawn at fixed positions (11 pt, ``leading`` apart)."""
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, invariant=1)
    for lines in pages:
        y = 750.0
        for line in lines:
            if line:
                pdf.setFont("Helvetica", 11)
                pdf.drawString(72, y, line)
            y -= leading  # an empty string leaves a blank line: a paragraph gap
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("build", "code", "advice"),
    [
        (pdf_fixtures.encrypted_pdf, "PDF_ENCRYPTED", "remove the password and upload again"),
        (pdf_fixtures.corrupt_pdf, "PDF_CORRUPT", "damaged or truncated"),
        (pdf_fixtures.truncated_pdf, "PDF_CORRUPT", "damaged or truncated"),
        (pdf_fixtures.zero_page_pdf, "PDF_EMPTY", "has no pages"),
        (pdf_fixtures.image_only_pdf, "PDF_NO_TEXT", "run OCR first or upload the text version"),
        (lambda: b"", "PDF_CORRUPT", "0 bytes"),
        (lambda: b"Dear team, here are my notes.", "PDF_CORRUPT", "no PDF header"),
    ],
    ids=["encrypted", "corrupt", "truncated", "zero-page", "image-only", "zero-bytes", "not-pdf"],
)
def test_unusable_pdf_raises_its_code_with_advice(build, code, advice):
    with pytest.raises(InvalidInput) as caught:
        extract_in_process(build())
    assert caught.value.code == code
    assert advice in caught.value.message  # what is wrong, and how to fix it


@pytest.mark.parametrize(
    "build",
    [pdf_fixtures.encrypted_pdf, pdf_fixtures.corrupt_pdf, pdf_fixtures.truncated_pdf,
     pdf_fixtures.zero_page_pdf],
    ids=["encrypted", "corrupt", "truncated", "zero-page"],
)
def test_library_errors_are_chained_not_swallowed(build):
    with pytest.raises(InvalidInput) as caught:
        extract_in_process(build())
    assert caught.value.__cause__ is not None


def test_valid_pdf_gives_text_and_page_counts():
    result = extract_in_process(pdf_fixtures.valid_text_pdf(pages=2))
    assert isinstance(result, PdfText)
    assert (result.pages, result.pages_with_text) == (2, 2)
    assert result.text.startswith("Fixture trend report\n\n")
    assert result.text.count(pdf_fixtures.VALID_TEXT) == 2


def test_result_is_frozen():
    result = extract_in_process(pdf_fixtures.valid_text_pdf())
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.text = ""  # type: ignore[misc]


def test_accepts_bytearray_and_memoryview():
    data = pdf_fixtures.valid_text_pdf()
    expected = extract_in_process(data)
    assert extract_in_process(bytearray(data)) == expected
    assert extract_in_process(memoryview(data)) == expected


def test_owner_password_only_pdf_is_readable():
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_fixtures.valid_text_pdf())))
    writer.encrypt(user_password="", owner_password="owner-only")
    buffer = io.BytesIO()
    writer.write(buffer)
    assert pdf_fixtures.VALID_TEXT in extract_in_process(buffer.getvalue()).text


def test_pages_without_text_are_counted_separately():
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for data in (pdf_fixtures.valid_text_pdf(pages=1), pdf_fixtures.image_only_pdf(pages=2)):
        writer.append(PdfReader(io.BytesIO(data)))
    buffer = io.BytesIO()
    writer.write(buffer)
    result = extract_in_process(buffer.getvalue())
    assert (result.pages, result.pages_with_text) == (3, 1)


def test_lines_of_a_paragraph_are_joined_and_paragraphs_split_by_blank_lines():
    data = canvas_pdf(["First paragraph starts here", "and ends on this line.", "",
                       "Second paragraph is one line."])
    assert extract_in_process(data).text == (
        "First paragraph starts here and ends on this line.\n\nSecond paragraph is one line."
    )


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["Subscription inno-", "vation cuts friction."], "Subscription innovation cuts friction."),
        (["Shoppers prefer self-", "Service kiosks."], "Shoppers prefer self-Service kiosks."),
        (["Demand after COVID-", "19 stayed high."], "Demand after COVID-19 stayed high."),
        (["Prices rose - ", "again."], "Prices rose - again."),
    ],
    ids=["word-split", "compound-capital", "compound-digit", "spaced-dash"],
)
def test_hyphen_at_a_line_break_is_resolved(lines, expected):
    assert extract_in_process(canvas_pdf(lines)).text == expected


def test_sentence_running_over_a_page_break_is_rejoined():
    data = canvas_pdf(["Premium spices grew because", "shoppers"], ["trade up in small ways."])
    assert extract_in_process(data).text == (
        "Premium spices grew because shoppers trade up in small ways."
    )


def test_bullets_each_become_a_paragraph():
    data = canvas_pdf(["Mechanisms:", "\u2022 Unbundling", "\u2022 Subscription", "- Rental"])
    assert extract_in_process(data).text.split("\n\n") == [
        "Mechanisms:", "\u2022 Unbundling", "\u2022 Subscription", "- Rental"
    ]


def test_sample_pdf_yields_800_plus_words_in_paragraphs():
    result = extract_in_process(SAMPLE_PDF.read_bytes())
    assert result.pages >= 2
    assert result.pages_with_text == result.pages
    assert len(result.text.split()) >= 800
    paragraphs = result.text.split("\n\n")
    assert paragraphs[0] == (
        "Flavor Trends 2026: Global Heat, Premium Pantries and the Confident Home Cook"
    )
    assert "Executive summary" in paragraphs
    assert not any(p.startswith("Page ") and len(p) < 10 for p in paragraphs), "page footers"
    assert "\n\n\n" not in result.text and "  " not in result.text


def test_sample_pdf_is_built_reproducibly():
    import importlib.util

    script = SAMPLE_PDF.parent / "build_sample_pdf.py"
    spec = importlib.util.spec_from_file_location("build_sample_pdf", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.build(module.SOURCE) == SAMPLE_PDF.read_bytes()


@pytest.mark.parametrize(
    "build",
    [pdf_fixtures.valid_text_pdf, pdf_fixtures.corrupt_pdf, pdf_fixtures.truncated_pdf,
     pdf_fixtures.zero_page_pdf, pdf_fixtures.image_only_pdf],
)
def test_fixtures_are_deterministic_bytes(build):
    assert isinstance(build(), bytes)
    assert build() == build()
