"""PDF bombs fail once, at once, with DOCUMENT_TOO_COMPLEX; real documents still extract.

Extraction runs in a child process under a page, character, time and memory budget
(pipeline/pdf_sandbox.py). Each bomb here costs a naive extractor gigabytes or tens of seconds.
"""

from __future__ import annotations

import pytest

from config.errors import InvalidInput
from pipeline.pdf_text import PdfBudget, extract_pdf_text
from tests import pdf_fixtures
from tests.poison_pdfs import BOMBS


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_a_pdf_bomb_is_refused_as_too_complex(name: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        extract_pdf_text(BOMBS[name]())
    assert refused.value.code == "DOCUMENT_TOO_COMPLEX"
    message = refused.value.message
    assert "too complex" in message and ("split" in message or ".txt" in message)  # says how to fix it
    assert "{" not in message and "Traceback" not in message


def test_each_budget_names_itself_in_the_message() -> None:
    pdf = pdf_fixtures.valid_text_pdf(pages=3)
    with pytest.raises(InvalidInput, match="3 pages") as pages:
        extract_pdf_text(pdf, budget=PdfBudget(max_pages=2))
    with pytest.raises(InvalidInput, match="characters") as chars:
        extract_pdf_text(pdf, budget=PdfBudget(max_chars=100))
    assert pages.value.code == chars.value.code == "DOCUMENT_TOO_COMPLEX"


def test_a_real_report_extracts_under_the_default_budget() -> None:
    result = extract_pdf_text(pdf_fixtures.valid_text_pdf(pages=3))
    assert result.pages == 3 and pdf_fixtures.VALID_TEXT.split()[0] in result.text


@pytest.mark.parametrize("fixture, code", [
    (pdf_fixtures.encrypted_pdf, "PDF_ENCRYPTED"),
    (pdf_fixtures.corrupt_pdf, "PDF_CORRUPT"),
    (pdf_fixtures.zero_page_pdf, "PDF_EMPTY"),
    (pdf_fixtures.image_only_pdf, "PDF_NO_TEXT"),
])
def test_the_child_reports_ordinary_refusals_with_their_own_codes(fixture, code) -> None:
    with pytest.raises(InvalidInput) as refused:
        extract_pdf_text(fixture())
    assert refused.value.code == code
