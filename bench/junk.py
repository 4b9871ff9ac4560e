"""Generated junk documents: each is something a user might upload that is not a trend report.

Shared by the quality harness (``python -m bench.quality``) and the CLI integration tests. Every
builder is deterministic (fixed text, reportlab ``invariant=1``). ``JUNK`` maps a kind to its
file name, a builder and the error code the input gate must refuse it with.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

_LOREM = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut "
          "labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris "
          "nisi ut aliquip ex ea commodo consequat. Duis aute irure dolor in reprehenderit in voluptate velit "
          "esse cillum dolore eu fugiat nulla pariatur. Excepteur sint occaecat cupidatat non proident, sunt "
          "in culpa qui officia deserunt mollit anim id est laborum.")

_CODE = '''import json
from dataclasses import dataclass


@dataclass
class Order:
    order_id: str
    total: float

    def as_dict(self) -> dict:
        return {"order_id": self.order_id, "total": self.total}


def load(path: str) -> list[Order]:
    with open(path) as handle:
        rows = json.load(handle)
    return [Order(row["id"], float(row["total"])) for row in rows if row.get("total")]


def summarise(orders: list[Order]) -> dict:
    totals = [order.total for order in orders]
    if not totals:
        return {"count": 0, "mean": 0.0}
    return {"count": len(totals), "mean": sum(totals) / len(totals), "max": max(totals)}
'''


def placeholder() -> bytes:
    """Lorem ipsum paragraphs, as a layout template ships them."""
    sentences = [s.strip() + "." for s in _LOREM.split(".") if s.strip()]
    paragraphs = [" ".join(sentences[(i + k) % len(sentences)] for k in range(3)) for i in range(12)]
    return ("# Lorem ipsum\n\n" + "\n\n".join(paragraphs) + "\n").encode()


def code_listing() -> bytes:
    """A Python source listing saved as .txt."""
    return (_CODE * 4).encode()


def number_table() -> bytes:
    """A table of figures with a header row and no running text."""
    rows = ["Region | Q1 | Q2 | Q3 | Q4 | Total"]
    for r in range(40):
        values = [(r * 37 + q * 11) % 900 + 100 for q in range(4)]
        rows.append(f"R{r:02d} | " + " | ".join(str(v) for v in values) + f" | {sum(values)}")
    return ("\n".join(rows) + "\n").encode()


def symbol_soup() -> bytes:
    """Punctuation and symbols with stray letters, as a bad encoding conversion leaves them."""
    chunks = ["#@!%", "^&*()", "<<>>", "{[|]}", "~`±§", "¶•ª", "≈≠≤", "x#", "q@", "∑∂"]
    return (" ".join(chunks[(i * 7) % len(chunks)] for i in range(1500)) + "\n").encode()


def repeated_line() -> bytes:
    """One sentence, over and over."""
    return ("Our new product is the best product on the market for every consumer.\n" * 300).encode()


def _canvas_pdf(draw: Callable[[object], None], pages: int = 2) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, invariant=1)
    for _ in range(pages):
        draw(pdf)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def image_pdf_one_word() -> bytes:
    """A scanned page: shapes and a raster, and a single word of real text ("CONFIDENTIAL")."""
    from PIL import Image
    from reportlab.lib.utils import ImageReader

    image = Image.new("L", (64, 64))
    image.putdata([(px * 4) % 256 for px in range(64 * 64)])

    def draw(pdf: object) -> None:
        pdf.rect(72, 500, 300, 200, fill=1)  # type: ignore[attr-defined]
        pdf.drawImage(ImageReader(image), 72, 620, width=128, height=128)  # type: ignore[attr-defined]
        pdf.drawString(72, 780, "CONFIDENTIAL")  # type: ignore[attr-defined]
    return _canvas_pdf(draw, pages=1)


_OPERATOR_LINES = ("q 1 0 0 1 72 720 cm", "0.2 0.4 0.6 rg", "72 500 300 200 re f", "BT /F1 12 Tf 72 700 Td",
                   "(Trend) Tj ET", "0 0 1 RG 2 w 72 150 m 520 150 l S", "Q", "/GS1 gs 0.5 g",
                   "BT /F2 9 Tf 1 0 0 1 90 640 Tm [(A)-120(B)] TJ ET", "300 300 m 380 300 380 380 300 380 c h f")


def drawing_operators_pdf() -> bytes:
    """A fuzzed PDF whose text layer is its own drawing instructions."""
    def draw(pdf: object) -> None:
        for i in range(60):
            pdf.drawString(40, 800 - 12 * i, _OPERATOR_LINES[i % len(_OPERATOR_LINES)])  # type: ignore[attr-defined]
    return _canvas_pdf(draw, pages=2)


def masthead_pdf() -> bytes:
    """A journal's masthead page and nothing else."""
    lines = ("Copenhagen Business School", "Journal of Strategic Management Studies",
             "Volume 14, Issue 3, September 2024", "ISSN 1903-2218", "Department of Strategy and Innovation",
             "Editorial Board", "www.cbs.dk/journal")

    def draw(pdf: object) -> None:
        for i, line in enumerate(lines):
            pdf.drawString(72, 760 - 24 * i, line)  # type: ignore[attr-defined]
    return _canvas_pdf(draw, pages=1)


@dataclass(frozen=True)
class Junk:
    """One kind of junk: its file name, how to build it, the code the gate refuses it with."""

    name: str
    build: Callable[[], bytes]
    code: str


JUNK = {
    "placeholder": Junk("lorem.md", placeholder, "DOCUMENT_PLACEHOLDER"),
    "code-listing": Junk("orders.txt", code_listing, "DOCUMENT_NOT_PROSE"),
    "number-table": Junk("figures.txt", number_table, "DOCUMENT_NOT_PROSE"),
    "symbol-soup": Junk("garbled.txt", symbol_soup, "DOCUMENT_NOT_PROSE"),
    "repeated-line": Junk("repeat.txt", repeated_line, "DOCUMENT_NOT_PROSE"),
    "image-pdf-one-word": Junk("scan.pdf", image_pdf_one_word, "DOCUMENT_TOO_SHORT"),
    "drawing-operators-pdf": Junk("fuzzed.pdf", drawing_operators_pdf, "DOCUMENT_NOT_PROSE"),
    "masthead-pdf": Junk("masthead.pdf", masthead_pdf, "DOCUMENT_TOO_SHORT"),
}
