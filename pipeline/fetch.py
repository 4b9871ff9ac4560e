"""Fetch a document from an allowed blob URL, inside a run (never inside a web request).

Defences, in order: the URL's scheme and host (``pipeline.blob_rules.check_blob_url``), one DNS
lookup whose every answer must be a public address unless the host is listed explicitly, a
connection pinned to the checked address (TLS still verifies the host name), redirects followed
by hand and re-checked hop by hop (at most three), a byte cap on Content-Length and on the stream,
bounded timeouts, and a type check on the body.

Errors: a refusal is ``InvalidInput`` (the document or URL must change); a network failure, or a
5xx/429 that outlived the retries, is ``StageError(1, code="BLOB_FETCH_FAILED")`` (the same run
may work later). A 4xx answer is ``InvalidInput`` with code ``BLOB_FETCH_FAILED`` and the status.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import PurePosixPath
from urllib.parse import unquote, urljoin

import certifi
import urllib3
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ProtocolError, ReadTimeoutError, SSLError

from config.errors import InvalidInput, StageError
from config.log import get_logger
from config.settings import Settings
from pipeline.blob_rules import BlobTarget, bearer_token_for, check_blob_url, display_url, resolve_allowed
from pipeline.documents import RawDocument
from pipeline.fetch_deadline import Deadline

__all__ = ["FetchPolicy", "check_blob_url", "fetch_document", "request_headers"]

log = get_logger(__name__)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
TEXT_TYPES = frozenset({"text/plain", "text/markdown"})
TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown"})
CHUNK_BYTES = 64 * 1024
# Errors after which the same request may well succeed (connection trouble, not TLS trouble).
NETWORK_ERRORS = (ConnectTimeoutError, NewConnectionError, ReadTimeoutError, ProtocolError)


@dataclass(frozen=True)
class FetchPolicy:
    """Bounds on one fetch. Production defaults; tests shrink them."""

    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0  # between two reads of the socket
    total_timeout_s: float = 180.0  # the whole fetch, connect to last byte (pipeline/fetch_deadline.py)
    attempts: int = 3
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 5.0
    max_retry_after_s: float = 10.0  # a Retry-After longer than this is cut to it
    max_redirects: int = 3


@dataclass(frozen=True)
class _Reply:
    status: int
    location: str | None = None
    content_type: str | None = None
    data: bytes = b""


class _RetryableStatus(Exception):
    """A 5xx or 429 answer, raised so tenacity retries it; never leaves this module."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


def request_headers(settings: Settings, target: BlobTarget) -> dict[str, str]:
    """Headers for one hop; the blob token only for an allowed private Vercel Blob host."""
    headers = {"Host": target.host_header, "User-Agent": "innovation-pipeline-runner",
               "Accept-Encoding": "identity", "Accept": "application/pdf, text/plain, text/markdown, */*"}
    token = bearer_token_for(settings, target)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def fetch_document(settings: Settings, url: str, *, policy: FetchPolicy = FetchPolicy()) -> RawDocument:
    """Download ``url`` under every rule above and return its bytes; raise InvalidInput or StageError."""
    with Deadline(policy.total_timeout_s) as deadline:
        return _fetch(settings, url, policy, deadline)


def _fetch(settings: Settings, url: str, policy: FetchPolicy, deadline: Deadline) -> RawDocument:
    target = check_blob_url(settings, url)
    addresses = resolve_allowed(target)
    for hop in range(policy.max_redirects + 1):
        reply = _exchange_with_retries(settings, target, addresses, policy, deadline)
        if reply.status not in REDIRECT_STATUSES:
            if reply.status != 200:
                raise InvalidInput(
                    f"fetching {target.display} failed with HTTP {reply.status}: check that the blob exists "
                    "and the URL (and BLOB_READ_WRITE_TOKEN for private blobs) is current",
                    code="BLOB_FETCH_FAILED",
                )
            _check_type(target, reply)
            log.info("document_fetched", url=target.display, bytes=len(reply.data), redirects=hop)
            return RawDocument(name=_name(target), source=display_url(url), data=reply.data,
                               content_type=reply.content_type)
        if hop == policy.max_redirects:
            break
        target, addresses = _redirect(settings, target, reply.location)
    raise InvalidInput(
        f"fetching {display_url(url)} was redirected more than {policy.max_redirects} times: "
        "send the final URL of the document", code="BLOB_REDIRECT_REFUSED",
    )


def _redirect(settings: Settings, current: BlobTarget, location: str | None) -> tuple[BlobTarget, tuple[str, ...]]:
    """The next hop, re-checked by the same rules; any refusal becomes BLOB_REDIRECT_REFUSED."""
    if not location:
        raise InvalidInput(f"{current.display} answered a redirect without a Location: send the final URL",
                           code="BLOB_REDIRECT_REFUSED")
    try:
        target = check_blob_url(settings, urljoin(current.url, location.strip()))
        return target, resolve_allowed(target)
    except InvalidInput as exc:
        raise InvalidInput(f"{current.display} redirected to a refused location: {exc.message}",
                           code="BLOB_REDIRECT_REFUSED") from exc


def _too_slow(target: BlobTarget, deadline: Deadline) -> StageError:
    return StageError(1, f"fetching {target.display} took too long: it did not finish within {deadline.seconds:g} s "
                         "(a very slow or stalled server): retry the run later", code="BLOB_FETCH_FAILED")


def _exchange_with_retries(settings: Settings, target: BlobTarget, addresses: tuple[str, ...],
                           policy: FetchPolicy, deadline: Deadline) -> _Reply:
    """One hop with bounded retries on 5xx/429 and connection errors, rotating the checked addresses."""
    backoff = wait_exponential_jitter(multiplier=policy.backoff_initial_s, max=policy.backoff_max_s)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _RetryableStatus) and exc.retry_after is not None:
            return min(exc.retry_after, policy.max_retry_after_s)
        return backoff(state)

    def stop(state: RetryCallState) -> bool:
        out_of_time = time.monotonic() + (state.upcoming_sleep or 0) >= deadline.at
        return out_of_time or stop_after_attempt(policy.attempts)(state)

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("document_fetch_retry", url=target.display, attempt=state.attempt_number,
                    reason=str(exc), wait_s=round(state.upcoming_sleep, 2))

    retrying = Retrying(stop=stop, wait=wait, before_sleep=before_sleep, reraise=True,
                        retry=retry_if_exception_type((_RetryableStatus, *NETWORK_ERRORS)))
    try:
        for attempt in retrying:
            with attempt:
                address = addresses[(attempt.retry_state.attempt_number - 1) % len(addresses)]
                reply = _exchange(settings, target, address, policy, deadline)
                if deadline.expired:  # the cut-off can look like a short but complete answer
                    raise _too_slow(target, deadline)
                return reply
    except (*NETWORK_ERRORS, SSLError, _RetryableStatus) as exc:
        if deadline.expired:
            raise _too_slow(target, deadline) from exc
        raise _failure(target, exc) from exc
    raise AssertionError("unreachable: tenacity either returns or reraises")


def _failure(target: BlobTarget, exc: Exception) -> StageError:
    """The StageError for a hop that kept failing before the deadline."""
    if isinstance(exc, _RetryableStatus):
        why = f"kept failing with HTTP {exc.status}: retry the run later"
    elif isinstance(exc, SSLError):
        why = "failed, TLS could not be verified: check the host"
    else:
        why = f"failed, the network did not answer ({type(exc).__name__}): retry the run later"
    return StageError(1, f"fetching {target.display} {why}", code="BLOB_FETCH_FAILED")


@contextmanager
def _pool(target: BlobTarget, address: str, policy: FetchPolicy,
          deadline: Deadline) -> Iterator[urllib3.HTTPConnectionPool]:
    """A one-connection pool to ``address``: the host name is used only for Host, SNI and the certificate."""
    connect = max(0.001, min(policy.connect_timeout_s, deadline.remaining()))
    timeout = urllib3.Timeout(connect=connect, read=policy.read_timeout_s)
    pool: urllib3.HTTPConnectionPool
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            address, target.port, timeout=timeout, retries=False, maxsize=1, cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(), server_hostname=target.host, assert_hostname=target.host,
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, target.port, timeout=timeout, retries=False, maxsize=1)
    pool.ConnectionCls = deadline.connection_class(pool.ConnectionCls)  # cut off at the deadline
    try:
        yield pool
    finally:
        pool.close()


def _exchange(settings: Settings, target: BlobTarget, address: str, policy: FetchPolicy,
              deadline: Deadline) -> _Reply:
    """Send one GET to the pinned address and read the answer (the body only for a 200)."""
    with _pool(target, address, policy, deadline) as pool:
        response = pool.urlopen("GET", target.request_target, headers=request_headers(settings, target),
                                redirect=False, preload_content=False, assert_same_host=False)
        try:
            status = response.status
            if status == 429 or 500 <= status <= 599:
                raise _RetryableStatus(status, _retry_after(response.headers.get("Retry-After")))
            if status != 200:
                return _Reply(status, location=response.headers.get("Location"))
            data = _read_capped(target, response, settings.max_document_bytes, deadline)
            return _Reply(status, content_type=response.headers.get("Content-Type"), data=data)
        finally:
            response.release_conn()


def _too_large(target: BlobTarget, size: str, limit: int) -> InvalidInput:
    return InvalidInput(
        f"document {target.display} is {size} bytes, over the limit of {limit:,} (MAX_DOCUMENT_BYTES): "
        "split it or raise the limit", code="DOCUMENT_TOO_LARGE",
    )


def _read_capped(target: BlobTarget, response: urllib3.BaseHTTPResponse, limit: int, deadline: Deadline) -> bytes:
    """The body, refusing it as soon as Content-Length or the bytes received pass ``limit``."""
    declared = (response.headers.get("Content-Length") or "").strip()
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise _too_large(target, f"{int(declared):,}", limit)
    body = bytearray()
    # Content-Length can lie and chunked bodies have none: count what actually arrives. A server
    # dripping bytes is cut off by the deadline's timer (the caller then sees deadline.expired).
    while chunk := response.read1(CHUNK_BYTES, decode_content=True):
        body += chunk
        if len(body) > limit:
            raise _too_large(target, f"more than {limit:,}", limit)
        if deadline.expired:
            raise _too_slow(target, deadline)
    return bytes(body)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (a number or an HTTP date), or None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _check_type(target: BlobTarget, reply: _Reply) -> None:
    """Accept a PDF (by its magic bytes) or text (by content type or .txt/.md path, with no NUL byte)."""
    if reply.data.startswith(b"%PDF"):
        return
    kind = (reply.content_type or "").split(";", 1)[0].strip().lower()
    suffix = PurePosixPath(unquote(target.request_target.split("?", 1)[0])).suffix.lower()
    if (kind in TEXT_TYPES or suffix in TEXT_SUFFIXES) and suffix != ".pdf" and b"\x00" not in reply.data:
        return
    raise InvalidInput(
        f"document {target.display} is not a PDF or plain text (content type {kind or 'unknown'!r}): "
        "upload a .pdf, .txt or .md file", code="DOCUMENT_UNSUPPORTED_TYPE",
    )


def _name(target: BlobTarget) -> str:
    """The document's file name from the URL path, for messages and the report."""
    name = PurePosixPath(unquote(target.request_target.split("?", 1)[0])).name
    return name[:200] or "document"
