"""When a request is all here: the web worker's front decides before any thread sees it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.request_scan import FRAMING_HEADERS, MAX_BODY_BYTES, RequestScan

HEAD = b"POST /run HTTP/1.1\r\nHost: runner\r\n"


def chunked(body: bytes, size: int) -> bytes:
    pieces = [body[i:i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


CASES = [
    (b"GET /health HTTP/1.1\r\nHost: runner\r\n\r\n", 0),
    (HEAD + b"Content-Length: 5\r\n\r\nhello", 0),
    (HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(b"x" * 1000, 100), 0),
    (HEAD + b"Transfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nTrailer: t\r\n\r\n", 0),
    (HEAD + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
    (HEAD + b"Content-Length: +5\r\n\r\nhello", 400),
    (HEAD + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (HEAD + b"Transfer-Encoding: chunked, gzip\r\n\r\n", 400),
    (HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (HEAD + b"Content-Length: %d\r\n\r\n" % (MAX_BODY_BYTES + 1), 413),
    (HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(b"x" * (MAX_BODY_BYTES + 1), 8192), 413),
    (HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(b"x" * 60_000, 1), 413),  # framing 6x the body
    (HEAD + b"X-Big: " + b"a" * 40_000 + b"\r\n\r\n", 431),
]


@pytest.mark.parametrize("request_bytes, verdict", CASES)
def test_whole_and_byte_by_byte_give_the_same_verdict(request_bytes: bytes, verdict: int) -> None:
    assert RequestScan().add(request_bytes) == verdict
    scan = RequestScan()
    seen = [scan.add(request_bytes[i:i + 1]) for i in range(len(request_bytes))]
    decided = next(v for v in seen if v is not None)
    assert decided == verdict and all(v is None for v in seen[:seen.index(decided)])


@pytest.mark.parametrize("partial", [
    b"POST /run HTTP/1.1\r\nHost: runner\r\n",
    HEAD + b"Content-Length: 5\r\n\r\nhell",
    HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
])
def test_an_unfinished_request_waits(partial: bytes) -> None:
    assert RequestScan().add(partial) is None


def framing_by_lines(head: bytes) -> list[tuple[bytes, bytes]]:
    """The obvious reading the regex replaced: every line after the first, name stripped and lowered."""
    found = []
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() in (b"content-length", b"transfer-encoding"):
            found.append((name.strip().lower(), value))
    return found


# Header lines built from the bytes that could make the two readings differ.
PIECES = st.sampled_from([b"\r\n", b"\r", b"\n", b" ", b"\t", b"\x0b", b"\x0c", b":", b",", b"5", b"x",
                          b"Content-Length", b"content-length", b"Transfer-Encoding", b"TRANSFER-encoding",
                          b"chunked", b"Host: runner"])


@settings(max_examples=3000)  # the first regex differed from this reading only on rare inputs
@given(st.lists(PIECES, max_size=30))
def test_the_framing_headers_are_the_ones_a_line_by_line_reading_finds(pieces: list[bytes]) -> None:
    head = b"POST /run HTTP/1.1" + b"".join(pieces)
    head = head.split(b"\r\n\r\n")[0]  # a head never holds an empty line
    found = [(name.lower(), value) for name, value in FRAMING_HEADERS.findall(head)]
    assert found == framing_by_lines(head)
