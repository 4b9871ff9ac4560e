"""Generated PDF bombs: small files that cost a naive extractor gigabytes or minutes.

Shared by tests/integration/test_pdf_budgets.py, the e2e dispatcher test and bench/poison.py;
nothing large is ever committed, every file is built here in milliseconds. Each builder returns
the PDF's bytes; ``BOMBS`` names them for parametrized tests and the benchmark.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable


def _pdf(objects: list[bytes], root: int = 1) -> bytes:
    """A PDF file from numbered object bodies (object n is ``objects[n - 1]``), with a correct xref."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, root, xref)
    return bytes(out)


def _stream(data: bytes, *, compress: bool = True, extra: bytes = b"") -> bytes:
    body = zlib.compress(data, 9) if compress else data
    flate = b" /Filter /FlateDecode" if compress else b""
    return b"<< /Length %d%s%s >>\nstream\n" % (len(body), flate, extra) + body + b"\nendstream"


_FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def _one_page(content: bytes) -> bytes:
    """A one-page PDF whose page content stream is ``content`` (already a stream object)."""
    return _pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >>"
        b" /Contents 4 0 R >>",
        content,
        _FONT,
    ])


def text_operator_bomb(operators: int = 4_000_000) -> bytes:
    """One page of millions of tiny text-showing operators, flate-compressed to well under 100 KB."""
    show = b"BT /F1 1 Tf 10 10 Td (ab) Tj ET\n"
    return _one_page(_stream(show * operators))


@functools.cache  # compressing a gigabyte takes seconds: build it once per process
def flate_bomb(compressed_bytes: int = 1 << 20) -> bytes:
    """A content stream of spaces that inflates about 1000-fold: ~1 MiB on disk, ~1 GiB decoded."""
    chunk = zlib.compressobj(9)
    body = bytearray()
    block = b" " * (1 << 20)
    while len(body) < compressed_bytes:
        body += chunk.compress(block)
    body += chunk.flush()
    content = b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(body) + bytes(body) + b"\nendstream"
    return _one_page(content)


def page_reference_bomb(pages: int = 200_000) -> bytes:
    """A page tree listing the same page ``pages`` times: a few hundred KB, 200,000 pages to walk."""
    kids = b" ".join([b"3 0 R"] * pages)
    return _pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % pages,
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >>"
        b" /Contents 4 0 R >>",
        _stream(b"BT /F1 12 Tf 72 700 Td (A page of a trend report.) Tj ET\n"),
        _FONT,
    ])


def nested_form_bomb(depth: int = 7, fanout: int = 10) -> bytes:
    """Form XObjects that each draw the one below ``fanout`` times: fanout**depth text runs."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >>"
        b" /XObject << /X 6 0 R >> >> /Contents 4 0 R >>",
        _stream(b"/X Do\n"),
        _FONT,
    ]
    first = len(objects) + 1  # object number of the outermost form
    for level in range(depth):
        number = first + level
        if level == depth - 1:
            content, resources = b"BT /F1 1 Tf 1 1 Td (ab) Tj ET\n", b"<< /Font << /F1 5 0 R >> >>"
        else:
            content = b"/X Do\n" * fanout
            resources = b"<< /Font << /F1 5 0 R >> /XObject << /X %d 0 R >> >>" % (number + 1)
        objects.append(_stream(content, extra=b" /Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources "
                               + resources))
    return _pdf(objects)


def image_heavy_report(total_bytes: int = 50 << 20) -> bytes:
    """Not a bomb: a page of text drawing one large (random, so incompressible) JPEG-labelled image.

    Sized to ``total_bytes``, by default about MAX_DOCUMENT_BYTES: the largest input a run accepts,
    to measure what a legitimate big upload costs.
    """
    import os

    overhead = 2_000
    image = os.urandom(max(0, total_bytes - overhead))
    return _pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >>"
        b" /XObject << /Im1 6 0 R >> >> /Contents 4 0 R >>",
        _stream(b"q 400 0 0 300 100 400 cm /Im1 Do Q\n"
                b"BT /F1 12 Tf 72 300 Td (Subscription spice kits grew 18 percent in 2025.) Tj ET\n"),
        _FONT,
        _stream(image, compress=False, extra=b" /Type /XObject /Subtype /Image /Width 4000 /Height 3000"
                b" /ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /DCTDecode"),
    ])


BOMBS: dict[str, Callable[[], bytes]] = {
    "text_operators": text_operator_bomb,
    "flate_stream": flate_bomb,
    "page_references": page_reference_bomb,
    "nested_forms": nested_form_bomb,
}
