"""How much work reading one PDF's text may cost, and the error a document over budget gets.

A PDF is a program: a few kilobytes can ask for millions of text operators, a stream that
inflates a thousand-fold, or the same page listed 200,000 times. Extraction therefore runs in a
child process under every budget below (pipeline/pdf_sandbox.py) and the page and character
budgets are also checked while it reads (pipeline/pdf_text.py). A document over any of them fails
once, at once, with ``DOCUMENT_TOO_COMPLEX``: the same bytes would fail the same way again.
"""

from __future__ import annotations

from dataclasses import dataclass

from config.errors import DOCUMENT_TOO_COMPLEX, InvalidInput

MIB = 1 << 20


@dataclass(frozen=True)
class PdfBudget:
    """Limits on extracting one PDF's text. The defaults keep a run under 512 MiB (bench/poison.py)."""

    max_pages: int = 2_000  # a long trend report has a few hundred
    max_chars: int = 5_000_000  # ten times what a run keeps (documents.MAX_TEXT_CHARS)
    memory_bytes: int = 320 * MIB  # address space of the extraction child, interpreter included
    seconds: float = 60.0  # wall time of the extraction child; a real 300-page report takes ~5 s


def too_complex(reason: str, budget: PdfBudget) -> InvalidInput:
    """The DOCUMENT_TOO_COMPLEX refusal: what was exceeded, the limits, and how to fix the file."""
    return InvalidInput(
        f"the PDF is too complex to read safely: {reason}. Reading a PDF's text here is limited to "
        f"{budget.max_pages:,} pages, {budget.max_chars:,} characters, {budget.memory_bytes // MIB} MiB "
        f"of memory and {budget.seconds:g} s. Export the document again as a plain PDF (print to PDF, "
        "or 'reduce file size'), split it into smaller files, or upload its text as .txt or .md",
        code=DOCUMENT_TOO_COMPLEX,
    )
