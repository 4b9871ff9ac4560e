"""In-memory PDF fixtures: each function returns the bytes of one kind of PDF.

Shared by the unit tests of ``pipeline.pdf_text`` and the CLI integration tests, so they stay
plain functions with no pytest dependency. Every builder except :func:`encrypted_pdf` is
deterministic (reportlab ``invariant=1``); pypdf draws a random file id when it encrypts.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # reportlab stays a lazy import at run time
    from reportlab.pdfgen.canvas import Canvas

VALID_TEXT = (
    "Subscription spice kits grew 18 percent in 2025 as home cooks traded restaurant visits "
    "for weekend cooking projects. Retailers that unbundled premium blends into single-use "
    "sachets removed the friction of buying a full jar for one recipe."
)
ENCRYPTED_PASSWORD = "open-sesame"


def valid_text_pdf(pages: int = 2) -> bytes:
    """A small text PDF: a title, and ``pages`` pages each holding :data:`VALID_TEXT`."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate

    styles = getSampleStyleSheet()
    story = [Paragraph("Fixture trend report", styles["Title"])]
    for number in range(pages):
        story.append(Paragraph(f"Page {number + 1}: {VALID_TEXT}", styles["BodyText"]))
        if number < pages - 1:
            story.append(PageBreak())
    buffer = io.BytesIO()
    SimpleDocTemplate(buffer, pagesize=A4, invariant=1, title="Fixture").build(story)
    return buffer.getvalue()


def encrypted_pdf(password: str = ENCRYPTED_PASSWORD) -> bytes:
    """The valid text PDF, protected by a user password (cannot be opened without it)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(valid_text_pdf())))
    # RC4-128 is pypdf's pure-Python default: no cryptography package needed to build it.
    writer.encrypt(user_password=password, owner_password=password + "-owner")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def corrupt_pdf() -> bytes:
    """A PDF header followed by bytes that are not a PDF body at all."""
    return b"%PDF-1.7\n" + b"\x00\xffthis is not a pdf body\n" * 40 + b"garbage\n"


def truncated_pdf() -> bytes:
    """A valid text PDF cut in half, as an interrupted upload would leave it."""
    data = valid_text_pdf(pages=3)
    return data[: len(data) // 2]


def zero_page_pdf() -> bytes:
    """A well-formed PDF whose page tree has no pages."""
    from pypdf import PdfWriter

    buffer = io.BytesIO()
    PdfWriter().write(buffer)
    return buffer.getvalue()


def image_only_pdf(pages: int = 2) -> bytes:
    """A PDF of drawn shapes and a raster image but no text, like a scan without OCR."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, invariant=1)
    for number in range(pages):
        pdf.setFillColorRGB(0.2, 0.4 + 0.1 * number, 0.6)
        pdf.rect(72, 500, 300, 200, fill=1)
        pdf.circle(300, 300, 80, fill=1)
        pdf.line(72, 150, 520, 150)
        _draw_raster(pdf, 72, 620)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def _draw_raster(pdf: Canvas, x: float, y: float) -> None:
    """Draw a small grey-gradient bitmap, the way a scanner would embed a page image."""
    from reportlab.lib.utils import ImageReader

    try:
        from PIL import Image
    except ImportError:  # shapes alone still make an image-only page; pillow is optional
        return
    image = Image.new("L", (64, 64))
    image.putdata([(px * 4) % 256 for px in range(64 * 64)])
    pdf.drawImage(ImageReader(image), x, y, width=128, height=128)
