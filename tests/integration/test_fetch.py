"""pipeline.fetch against a real local HTTP server: what is fetched, and everything that is refused."""

from __future__ import annotations

import ipaddress
import socket
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace

import pytest
from structlog.testing import capture_logs

from config.errors import InvalidInput, RunnerError, StageError
from config.settings import Settings
from pipeline.blob_rules import address_problem, check_blob_url
from pipeline.documents import parse_document
from pipeline.fetch import FetchPolicy, fetch_document, request_headers
from tests.blobserver import BlobServer, start_blob_server
from tests.pdf_fixtures import valid_text_pdf

FAST = FetchPolicy(connect_timeout_s=1, read_timeout_s=1, total_timeout_s=10, attempts=2,
                   backoff_initial_s=0.01, backoff_max_s=0.05, max_retry_after_s=0.2)
CAP = 100_000
TOKEN = "vercel_blob_rw_test_token"


@pytest.fixture(scope="module")
def blob() -> Iterator[BlobServer]:
    server = start_blob_server()
    server.add_file("doc.txt", b"A plain text trend report.", "text/plain")
    yield server
    server.close()


@pytest.fixture
def settings(blob: BlobServer) -> Settings:
    """Only the blob server (explicitly) and the fake *.blob.test names on its port are allowed."""
    return Settings(blob_allowed_hosts=(blob.host, f"*.blob.test:{blob.port}", "pinned.test:" + str(blob.port)),
                    blob_allow_http=True, max_document_bytes=CAP, blob_read_write_token=TOKEN)


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[dict[str, list[str]], Counter[str]]]:
    """A fake resolver: names in the table resolve as listed, IP literals as usual, nothing else at all."""
    real = socket.getaddrinfo
    table: dict[str, list[str]] = {}
    calls: Counter[str] = Counter()

    def fake(host: str, port: int, *args: object, **kwargs: object) -> list[tuple]:
        calls[host] += 1
        if host in table:
            return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                     (ip, port, 0, 0) if ":" in ip else (ip, port)) for ip in table[host]]
        ipaddress.ip_address(host)  # anything else must be a literal: tests never touch real DNS
        return real(host, port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    yield table, calls


def refused(settings: Settings, url: str, code: str, kind: type[RunnerError] = InvalidInput) -> RunnerError:
    with pytest.raises(kind) as info:
        fetch_document(settings, url, policy=FAST)
    assert info.value.code == code, info.value.message
    return info.value


def test_allowed_text_and_pdf_are_fetched(settings: Settings, blob: BlobServer) -> None:
    raw = fetch_document(settings, blob.url("/files/doc.txt"), policy=FAST)
    assert raw.data == b"A plain text trend report." and raw.name == "doc.txt"
    pdf_url = blob.add_file("report.pdf", valid_text_pdf(3), "application/pdf")  # one page is too short for the gate
    document = parse_document(fetch_document(settings, pdf_url, policy=FAST))
    assert document.media_type == "application/pdf" and "spice" in document.text


@pytest.mark.parametrize("url, code", [
    ("file:///etc/passwd", "BLOB_SCHEME_NOT_ALLOWED"),
    ("ftp://127.0.0.1/doc.txt", "BLOB_SCHEME_NOT_ALLOWED"),
    ("gopher://127.0.0.1/", "BLOB_SCHEME_NOT_ALLOWED"),
    ("http://127.0.0.1:1/doc.txt", "BLOB_HOST_NOT_ALLOWED"),
    ("http://169.254.169.254/latest/meta-data/", "BLOB_HOST_NOT_ALLOWED"),
    ("http://10.0.0.1/doc.txt", "BLOB_HOST_NOT_ALLOWED"),
    ("http://[::1]/doc.txt", "BLOB_HOST_NOT_ALLOWED"),
    ("https://evil.com/.public.blob.vercel-storage.com/doc.txt", "BLOB_HOST_NOT_ALLOWED"),
    ("https://evil.com#.public.blob.vercel-storage.com/doc.txt", "BLOB_HOST_NOT_ALLOWED"),
    ("https://evil.com?.public.blob.vercel-storage.com", "BLOB_HOST_NOT_ALLOWED"),
    ("https://evil.com\\.public.blob.vercel-storage.com/doc.txt", "BLOB_HOST_NOT_ALLOWED"),
    ("https://public.blob.vercel-storage.com/doc.txt", "BLOB_HOST_NOT_ALLOWED"),
    ("https://a.b.public.blob.vercel-storage.com/doc.txt", "BLOB_HOST_NOT_ALLOWED"),
    ("https://x.public.blob.vercel-storage.com.evil.com/doc.txt", "BLOB_HOST_NOT_ALLOWED"),
    ("https://x.public.blob.vercel-storage.com:8443/doc.txt", "BLOB_HOST_NOT_ALLOWED"),
    ("https://user:pw@x.public.blob.vercel-storage.com/doc.txt", "BLOB_HOST_NOT_ALLOWED"),
    ("https://x.public.blob.vercel-storage.com@evil.com/doc.txt", "BLOB_HOST_NOT_ALLOWED"),
    ("https://x.public.blob.vercel-storage.com\t/doc.txt", "BLOB_HOST_NOT_ALLOWED"),
])
def test_urls_outside_the_rules_are_refused_before_any_lookup(url: str, code: str, dns: tuple) -> None:
    settings = Settings(blob_allow_http=True)  # the default allow-list: Vercel Blob only
    refused(settings, url, code)
    assert not dns[1], "no DNS lookup may happen for a refused URL"


def test_the_default_hosts_accept_a_vercel_blob_url() -> None:
    target = check_blob_url(Settings(), "https://abc123.public.blob.vercel-storage.com/r/doc.pdf?download=1")
    assert (target.host, target.port, target.explicit) == ("abc123.public.blob.vercel-storage.com", 443, False)
    assert target.request_target == "/r/doc.pdf?download=1" and "download" not in target.display


def test_http_is_refused_unless_allowed(settings: Settings, blob: BlobServer) -> None:
    refused(replace(settings, blob_allow_http=False), blob.url("/files/doc.txt"), "BLOB_SCHEME_NOT_ALLOWED")


@pytest.mark.parametrize("address", ["127.0.0.1", "169.254.169.254", "10.1.2.3", "172.16.0.9", "192.168.1.1",
                                     "100.64.0.7", "0.0.0.0", "224.0.0.1", "240.0.0.1", "::1", "fd00:ec2::254",
                                     "fe80::1", "::ffff:127.0.0.1", "fc00::5"])
def test_a_wildcard_host_resolving_inside_is_refused(settings: Settings, blob: BlobServer, dns: tuple,
                                                     address: str) -> None:
    dns[0]["inside.blob.test"] = [address]
    before = len(blob.seen)
    refused(settings, f"http://inside.blob.test:{blob.port}/files/doc.txt", "BLOB_ADDRESS_NOT_ALLOWED")
    assert len(blob.seen) == before, "nothing may be sent to a refused address"


def test_one_internal_answer_among_public_ones_refuses_the_host(settings: Settings, blob: BlobServer,
                                                               dns: tuple) -> None:
    dns[0]["mixed.blob.test"] = ["93.184.216.34", "10.0.0.1"]
    refused(settings, f"http://mixed.blob.test:{blob.port}/files/doc.txt", "BLOB_ADDRESS_NOT_ALLOWED")


def test_public_addresses_pass_the_range_check() -> None:
    assert address_problem(ipaddress.ip_address("93.184.216.34")) is None
    assert address_problem(ipaddress.ip_address("2606:4700::6810:84e5")) is None
    assert address_problem(ipaddress.ip_address("169.254.169.254")) == "cloud metadata"


def test_the_connection_goes_to_the_checked_address_without_a_second_lookup(
        settings: Settings, blob: BlobServer, dns: tuple) -> None:
    dns[0]["pinned.test"] = ["127.0.0.1"]
    raw = fetch_document(settings, f"http://pinned.test:{blob.port}/files/doc.txt", policy=FAST)
    assert raw.data.startswith(b"A plain text")
    assert dns[1]["pinned.test"] == 1
    assert blob.seen[-1].headers["Host"] == f"pinned.test:{blob.port}"


@pytest.mark.parametrize("location", [
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/doc.txt",
    "file:///etc/passwd",
    "http://inside.blob.test:{port}/files/doc.txt",
    "http://user:pw@127.0.0.1:{port}/files/doc.txt",
])
def test_a_redirect_to_an_internal_or_foreign_place_is_refused(settings: Settings, blob: BlobServer, dns: tuple,
                                                              location: str) -> None:
    dns[0]["inside.blob.test"] = ["127.0.0.1"]
    url = blob.url("/redirect?to=" + location.format(port=blob.port).replace("&", "%26"))
    refused(settings, url, "BLOB_REDIRECT_REFUSED")


def test_redirects_are_followed_up_to_three_hops(settings: Settings, blob: BlobServer) -> None:
    assert fetch_document(settings, blob.url("/chain/3"), policy=FAST).data.startswith(b"A plain text")
    refused(settings, blob.url("/chain/4"), "BLOB_REDIRECT_REFUSED")
    relative = blob.url("/redirect?to=/files/doc.txt&status=307")
    assert fetch_document(settings, relative, policy=FAST).name == "doc.txt"


@pytest.mark.parametrize("path", [f"/huge?size={CAP + 1}", f"/chunked?size={CAP + 1}", "/chunked?size=5000000"])
def test_a_body_over_the_cap_is_refused(settings: Settings, blob: BlobServer, path: str) -> None:
    refused(settings, blob.url(path), "DOCUMENT_TOO_LARGE")


def test_a_body_at_the_cap_is_accepted(settings: Settings, blob: BlobServer) -> None:
    assert len(fetch_document(settings, blob.url(f"/chunked?size={CAP}"), policy=FAST).data) == CAP


@pytest.mark.parametrize("name, data, content_type", [
    ("page.html", b"<html>hi</html>", "text/html"),
    ("blob", b"\x89PNG\r\n\x1a\n....", "image/png"),
    ("notes.txt", b"text with a \x00 NUL byte", "text/plain"),
    ("fake.pdf", b"not really a pdf", "text/plain"),
])
def test_bodies_that_are_neither_pdf_nor_text_are_refused(settings: Settings, blob: BlobServer, name: str,
                                                          data: bytes, content_type: str) -> None:
    refused(settings, blob.add_file(name, data, content_type), "DOCUMENT_UNSUPPORTED_TYPE")


@pytest.mark.parametrize("name, content_type", [("notes.md", "application/octet-stream"),
                                                ("blob-id", "text/markdown; charset=utf-8")])
def test_text_is_recognised_by_path_or_content_type(settings: Settings, blob: BlobServer, name: str,
                                                    content_type: str) -> None:
    assert fetch_document(settings, blob.add_file(name, b"# Notes", content_type), policy=FAST).data == b"# Notes"


def test_a_missing_blob_is_invalid_input_with_its_status(settings: Settings, blob: BlobServer) -> None:
    assert "404" in refused(settings, blob.url("/files/nope.txt"), "BLOB_FETCH_FAILED").message


def test_server_errors_are_retried_then_fail_the_stage(settings: Settings, blob: BlobServer) -> None:
    assert fetch_document(settings, blob.url("/flaky/once?fail=1"), policy=FAST).data == b"recovered text"
    error = refused(settings, blob.url("/flaky/always?fail=99"), "BLOB_FETCH_FAILED", StageError)
    assert "503" in error.message and blob.hits["always"] == FAST.attempts


def test_retry_after_is_honoured_but_bounded(settings: Settings, blob: BlobServer) -> None:
    with capture_logs() as logs:
        refused(settings, blob.url("/status/429?retry_after=3600"), "BLOB_FETCH_FAILED", StageError)
    waits = [e["wait_s"] for e in logs if e["event"] == "document_fetch_retry"]
    assert waits and all(wait <= FAST.max_retry_after_s for wait in waits)  # an hour was asked for


@pytest.mark.parametrize("path", ["/slow?delay=3", "/drip?every=0.3&size=100"])
def test_slow_servers_time_out(settings: Settings, blob: BlobServer, path: str) -> None:
    policy = replace(FAST, read_timeout_s=0.5, total_timeout_s=2, attempts=1)
    with pytest.raises(StageError) as info:
        fetch_document(settings, blob.url(path), policy=policy)
    assert info.value.code == "BLOB_FETCH_FAILED"


def test_a_refused_connection_fails_the_stage() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(blob_allowed_hosts=(f"127.0.0.1:{port}",), blob_allow_http=True)
    refused(settings, f"http://127.0.0.1:{port}/doc.txt", "BLOB_FETCH_FAILED", StageError)


@pytest.mark.parametrize("url, sends_token", [
    ("https://store.private.blob.vercel-storage.com/doc.pdf", True),
    ("https://store.public.blob.vercel-storage.com/doc.pdf", False),
    ("http://store.private.blob.vercel-storage.com/doc.pdf", False),
])
def test_the_blob_token_goes_only_to_a_private_vercel_blob_host(url: str, sends_token: bool) -> None:
    settings = Settings(blob_allow_http=True, blob_read_write_token=TOKEN)
    headers = request_headers(settings, check_blob_url(settings, url))
    assert (headers.get("Authorization") == f"Bearer {TOKEN}") is sends_token
    assert "Authorization" not in request_headers(replace(settings, blob_read_write_token=None),
                                                  check_blob_url(settings, url))


def test_the_token_is_not_sent_to_other_allowed_hosts(settings: Settings, blob: BlobServer) -> None:
    fetch_document(settings, blob.url("/files/doc.txt"), policy=FAST)
    assert all("Authorization" not in seen.headers for seen in blob.seen)
