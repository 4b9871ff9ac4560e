"""Slow and malformed clients against the real gunicorn: the web process keeps answering.

Connections that send part of a request and then nothing must not hold the threads that answer
/health; the web process's own error pages are JSON; the access log's address cannot be chosen
by the client.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
import requests

from tests.e2e.webserver import ServerFactory, WebServer

pytest_plugins = ["tests.e2e.web_fixtures"]

SLOW_HEAD = b"POST /run HTTP/1.1\r\nHost: runner\r\nContent-Type: application/json\r\n"


@pytest.fixture(scope="module")
def slow_server(gunicorn_factory: ServerFactory) -> WebServer:
    """A FILE_ONLY server whose request read deadline is short, so a test sees it expire."""
    return gunicorn_factory({"ENABLE_DATABASE_WRITES": "false", "WEB_READ_TIMEOUT_SECONDS": "2"})


def connect(server: WebServer) -> socket.socket:
    port = int(server.base.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)  # a hang guard, not a timing check
    return sock


def answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one whole HTTP answer: status, headers (lower-case), body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed without an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


@pytest.fixture
def held(web: WebServer) -> Iterator[list[socket.socket]]:
    """200 connections to the main server that each sent a partial request head and then nothing."""
    socks = []
    try:
        for _ in range(200):
            sock = connect(web)
            sock.sendall(SLOW_HEAD)
            socks.append(sock)
        yield socks
    finally:
        for sock in socks:
            sock.close()


def test_health_answers_while_200_slow_clients_hold_connections(web: WebServer, held) -> None:
    for _ in range(5):
        reply = requests.get(web.url("/health"), timeout=20)  # hang guard: on main this never answered
        assert reply.status_code == 200 and reply.json()["status"] in ("healthy", "degraded")


def test_a_request_that_stops_midway_gets_a_json_408(slow_server: WebServer) -> None:
    with connect(slow_server) as sock:
        sock.sendall(SLOW_HEAD)
        status, headers, body = answer(sock)
    assert status == 408 and headers["content-type"] == "application/json"
    assert json.loads(body)["code"] == "REQUEST_TIMEOUT"


@pytest.mark.parametrize("start", [
    b"Content-Length: 100\r\n\r\n{\"run_id\":",
    b"Transfer-Encoding: chunked\r\n\r\n9\r\n{\"run_id\"\r\n",  # a chunked body whose last chunk never comes
])
def test_a_body_that_never_finishes_gets_a_json_408(slow_server: WebServer, start: bytes) -> None:
    with connect(slow_server) as sock:
        sock.sendall(SLOW_HEAD + start)
        status, _, body = answer(sock)
    assert status == 408 and json.loads(body)["code"] == "REQUEST_TIMEOUT"


@pytest.mark.parametrize("request_bytes, status, code", [
    (b"GET /health HTTP/1.1\r\nHost: runner\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n", 431,
     "REQUEST_HEADER_FIELDS_TOO_LARGE"),
    (b"GET /health HTTP/1.1\r\nHost: runner\r\nX-Big: " + b"a" * 9_000 + b"\r\n\r\n", 431,
     "REQUEST_HEADER_FIELDS_TOO_LARGE"),
    (b"POST /run HTTP/1.1\r\nHost: runner\r\nContent-Length: 100000\r\n\r\n", 413, "REQUEST_ENTITY_TOO_LARGE"),
    (b"NOT AN HTTP REQUEST\r\n\r\n", 400, "BAD_REQUEST"),
    (b"GET /health HTTP/1.1\r\nHost: runner\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello", 400,
     "BAD_REQUEST"),
])
def test_the_web_process_own_error_pages_are_json(web: WebServer, request_bytes: bytes, status: int,
                                                   code: str) -> None:
    with connect(web) as sock:
        sock.sendall(request_bytes)
        got, headers, body = answer(sock)
    assert got == status and headers["content-type"] == "application/json", body
    document = json.loads(body)
    assert document["code"] == code and document["error"]


def test_the_access_log_address_is_not_chosen_by_the_client(web: WebServer) -> None:
    spoofed = {"X-Forwarded-For": "203.0.113.66", "X-Real-IP": "203.0.113.66", "Forwarded": "for=203.0.113.66"}
    assert requests.get(web.url("/health?probe=spoof"), headers=spoofed, timeout=10).status_code == 200
    lines = [line for line in web.log_lines() if line.get("message") == "request" and line.get("path") == "/health"]
    assert lines and all("203.0.113.66" not in json.dumps(line) for line in lines)
    assert lines[-1]["remote_addr"] == "127.0.0.1"
