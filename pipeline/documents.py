"""Document intake: bytes of a PDF, text or markdown file become a ``Document``.

Every refusal is an ``InvalidInput`` whose message says what is wrong and how to fix it.
Every document then passes the input gate (``pipeline.gate``), which strips what is not prose
and refuses what is not a report. Very long text is cut deliberately at a paragraph or sentence
boundary, logged, and marked on the Document so the report can say so; it is never cut silently.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from config.errors import InvalidInput
from config.log import get_logger
from pipeline.document import Document
from pipeline.gate import admit
from pipeline.pdf_text import extract_pdf_text

log = get_logger(__name__)

MEDIA_TYPES = {".pdf": "application/pdf", ".txt": "text/plain", ".md": "text/markdown", ".markdown": "text/markdown"}
# About 80,000 words: far more than any trend report, and bounded work for every engine.
MAX_TEXT_CHARS = 500_000


@dataclass(frozen=True)
class RawDocument:
    """Bytes of a document as fetched, before any parsing."""

    name: str
    source: str
    data: bytes
    content_type: str | None = None


Fetcher = Callable[[str], RawDocument]


def is_url(source: str) -> bool:
    """True when ``source`` names a remote document rather than a local path."""
    return urlsplit(source).scheme in ("http", "https", "file", "ftp")


def read_local(path: Path, max_bytes: int) -> RawDocument:
    """Read a local document, refusing missing, unsupported or oversized files."""
    if not path.is_file():
        raise InvalidInput(f"document {str(path)!r} does not exist or is not a file", code="DOCUMENT_NOT_FOUND")
    media_type_for(path.name)
    size = path.stat().st_size
    if size > max_bytes:
        raise InvalidInput(
            f"document {path.name!r} is {size:,} bytes, over the limit of {max_bytes:,} "
            "(MAX_DOCUMENT_BYTES): split it or raise the limit",
            code="DOCUMENT_TOO_LARGE",
        )
    return RawDocument(name=path.name, source=str(path), data=path.read_bytes())


def media_type_for(name: str, content_type: str | None = None, data: bytes = b"") -> str:
    """The media type of a document from its magic bytes, content type or file extension."""
    if data.startswith(b"%PDF"):
        return "application/pdf"
    suffix = Path(unquote(name)).suffix.lower()
    if suffix in MEDIA_TYPES:
        return MEDIA_TYPES[suffix]
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind in ("application/pdf", "text/plain", "text/markdown"):
        return kind
    raise InvalidInput(
        f"document {name!r} is not a supported type: upload a .pdf, .txt or .md file",
        code="DOCUMENT_UNSUPPORTED_TYPE",
    )


def parse_document(raw: RawDocument) -> Document:
    """Turn fetched bytes into a Document, extracting PDF text and bounding its length."""
    media_type = media_type_for(raw.name, raw.content_type, raw.data)
    if media_type == "application/pdf":
        if not raw.data.startswith(b"%PDF"):
            raise InvalidInput(
                f"document {raw.name!r} is named as a PDF but is not one (no %PDF header): "
                "export it again as PDF",
                code="PDF_CORRUPT",
            )
        text = extract_pdf_text(raw.data).text
    else:
        text = _decode_text(raw)
    text = text.strip()
    if not text:
        raise InvalidInput(f"document {raw.name!r} holds no text: upload a document with content",
                           code="DOCUMENT_EMPTY")
    original = len(text)
    truncated = original > MAX_TEXT_CHARS
    if truncated:
        text = _cut(text, MAX_TEXT_CHARS)
        log.warning(
            "document_truncated", document=raw.name, original_chars=original,
            kept_chars=len(text), limit_chars=MAX_TEXT_CHARS,
        )
    # The gate runs on every document before stage 1: junk is refused here, with its own code.
    return admit(Document(
        name=raw.name, source=raw.source, media_type=media_type, text=text,
        original_chars=original, truncated=truncated,
    ))


def _decode_text(raw: RawDocument) -> str:
    if b"\x00" in raw.data[:8192]:
        raise InvalidInput(
            f"document {raw.name!r} looks binary, not text: upload a .pdf, .txt or .md file",
            code="DOCUMENT_NOT_TEXT",
        )
    # Strip the bytes, not the decoded text: str.strip() copies, and a 50 MiB upload decodes to up
    # to 200 MiB of str (4 bytes a character once one emoji is in it); bench/poison.py measures it.
    data = raw.data.strip()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        # Windows editors still save trend reports as cp1252; say so rather than refuse.
        text = data.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"document {raw.name!r} is not UTF-8 text: save it as UTF-8 and upload again",
            code="DOCUMENT_ENCODING",
        ) from exc
    log.warning("document_not_utf8", document=raw.name, decoded_as="cp1252")
    return text


_BOUNDARIES = (re.compile(r"\n\s*\n"), re.compile(r"(?<=[.!?])\s"))


def _cut(text: str, limit: int) -> str:
    """Cut at the last paragraph break, else sentence end, in the final fifth before ``limit``."""
    head = text[:limit]
    for boundary in _BOUNDARIES:
        ends = [m.start() for m in boundary.finditer(head, limit * 4 // 5)]
        if ends:
            return head[: ends[-1]].rstrip()
    return head.rstrip()
