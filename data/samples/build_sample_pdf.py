"""Build ``flavor-trends-2026.pdf`` from its committed source text, byte for byte reproducibly.

Run from the repository root: ``python data/samples/build_sample_pdf.py`` (``--check`` exits 1
if the committed PDF differs from a fresh build, for CI).

Source format: the first line is the title; paragraphs are separated by blank lines; a line
starting ``# `` is a heading; lines starting ``- `` are bullet items.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "sources" / "flavor-trends-2026.txt"
OUTPUT = HERE / "flavor-trends-2026.pdf"


def build(source: Path) -> bytes:
    """Return the PDF bytes for ``source``; identical input always gives identical bytes."""
    title, *blocks = [b.strip() for b in source.read_text(encoding="utf-8").split("\n\n")]
    styles = getSampleStyleSheet()
    body = ParagraphStyle("Body", parent=styles["BodyText"], fontSize=10.5, leading=14,
                          spaceAfter=6)
    bullet = ParagraphStyle("Bullet", parent=body, leftIndent=14, bulletIndent=4, spaceAfter=2)
    story = [Paragraph(escape(title), styles["Title"]), Spacer(1, 6)]
    for block in filter(None, blocks):
        lines = block.splitlines()
        if block.startswith("# "):
            story.append(Paragraph(escape(block[2:]), styles["Heading2"]))
        elif all(line.startswith("- ") for line in lines):
            story += [Paragraph(escape(line[2:]), bullet, bulletText="\u2022") for line in lines]
        else:
            story.append(Paragraph(escape(" ".join(lines)), body))

    def footer(canvas, doc):  # page numbers make the multi-page layout visible
        canvas.setFont("Helvetica", 8)
        canvas.drawRightString(A4[0] - 2 * cm, 1.2 * cm, f"Page {doc.page}")

    buffer = io.BytesIO()
    # invariant=1 fixes the creation date and document id, so rebuilding changes no bytes.
    doc = SimpleDocTemplate(buffer, pagesize=A4, invariant=1, title=title,
                            author="Innovation Pipeline Runner samples",
                            leftMargin=2.2 * cm, rightMargin=2.2 * cm,
                            topMargin=2 * cm, bottomMargin=2 * cm)
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    """Write the PDF, or with ``--check`` report whether the committed one is current."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true", help="fail if the output is stale")
    args = parser.parse_args(argv)
    data = build(args.source)
    if args.check:
        current = args.output.is_file() and args.output.read_bytes() == data
        print(f"{args.output}: {'up to date' if current else 'STALE: rebuild it'}")
        return 0 if current else 1
    args.output.write_bytes(data)
    print(f"wrote {args.output} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
