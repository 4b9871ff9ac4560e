"""Whether the bytes received so far hold a complete HTTP/1.1 request, for the web worker's front.

``RequestScan.add(data)`` answers 0 (complete: a thread may parse it without waiting), an HTTP
error status (it can never become an acceptable request), or None (wait for more). It scans
incrementally, remembering where it stopped, so a client dripping bytes costs the event loop a
little per byte, never a rescan of everything buffered. gunicorn's own parser still parses the
request afterwards; this only decides when the request is all here.
"""

from __future__ import annotations

import re

MAX_HEAD_BYTES = 32 * 1024  # Railway's edge refuses more than 32 KB of headers anyway
MAX_BODY_BYTES = 64 * 1024  # handlers.app.MAX_BODY_BYTES: the largest body any route accepts
# Chunk framing may add to a body; four times the body is far more than any real client's.
MAX_WIRE_BYTES = MAX_HEAD_BYTES + 4 * MAX_BODY_BYTES
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
# The header lines that delimit a body, found in one C-level pass over the head: each is a line
# whose name, stripped as bytes.strip() strips, is one of the two, and its value up to the line's
# end. The request line never matches (no CRLF before it). Looping over every line in Python
# cost as much as the rest of the event loop's work per request.
_WS = rb"(?:[ \t\n\x0b\x0c]|\r(?!\n))*"  # what bytes.strip() strips, never across a line's CRLF
FRAMING_HEADERS = re.compile(rb"\r\n" + _WS + rb"(content-length|transfer-encoding)" + _WS + rb":(.*?)(?=\r\n|\Z)",
                             re.IGNORECASE | re.DOTALL)
_MAX_CHUNK_LINE = 1024


class RequestScan:
    """The bytes of one request so far, and how far they have been understood."""

    def __init__(self) -> None:
        self.data = bytearray()
        self._searched = 0  # the head's end was looked for up to here
        self._body_start: int | None = None
        self._length = 0  # Content-Length, when the body is not chunked
        self._chunked = False
        self._chunk_at = 0  # start of the next chunk-size line
        self._chunk_total = 0

    def add(self, data: bytes) -> int | None:
        """Take ``data``; 0 when the request is complete, an error status, or None to wait."""
        self.data += data
        if self._body_start is None:
            end = self.data.find(b"\r\n\r\n", max(0, self._searched - 3))
            if end < 0:
                self._searched = len(self.data)
                return 431 if len(self.data) > MAX_HEAD_BYTES else None
            if end > MAX_HEAD_BYTES:
                return 431
            self._body_start = self._chunk_at = end + 4
            refused = self._read_head(bytes(self.data[:end]))
            if refused:
                return refused
        if len(self.data) > MAX_WIRE_BYTES:
            return 413
        if self._chunked:
            return self._scan_chunks()
        return 0 if len(self.data) >= self._body_start + self._length else None

    def _read_head(self, head: bytes) -> int | None:
        """Note how the body is delimited; an error status when that is ambiguous or too large."""
        lengths: set[str] = set()
        codings: list[bytes] = []
        for name, value in FRAMING_HEADERS.findall(head):
            if len(name) == len(b"content-length"):
                lengths.add(value.strip().decode("latin-1"))
            else:
                codings += [coding.strip().lower() for coding in value.split(b",")]
        if codings:
            # Both lengths, or a body only the connection's end delimits: request smuggling.
            self._chunked = True
            return 400 if lengths or codings[-1] != b"chunked" else None
        if len(lengths) > 1 or any(not (v.isascii() and v.isdigit()) for v in lengths):
            return 400  # conflicting or malformed lengths
        self._length = int(lengths.pop()) if lengths else 0
        return 413 if self._length > MAX_BODY_BYTES else None

    def _scan_chunks(self) -> int | None:
        """Walk the chunks that have fully arrived since the last call."""
        data = self.data
        while True:
            eol = data.find(b"\r\n", self._chunk_at)
            if eol < 0:
                return 400 if len(data) - self._chunk_at > _MAX_CHUNK_LINE else None
            size_text = bytes(data[self._chunk_at:eol]).split(b";", 1)[0].strip()
            if not _HEX.fullmatch(size_text):
                return 400
            size = int(size_text, 16)
            if self._chunk_total + size > MAX_BODY_BYTES:
                return 413
            if size == 0:  # the last chunk, then trailer lines and an empty line
                return 0 if data.find(b"\r\n\r\n", eol) >= 0 else None
            after = eol + 2 + size + 2
            if len(data) < after:
                return None  # this chunk is still arriving: resume at its size line
            if data[after - 2:after] != b"\r\n":
                return 400
            self._chunk_total += size
            self._chunk_at = after
