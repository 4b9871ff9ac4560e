"""The web process over real HTTP: gunicorn, the Flask app and FileStore, as deployed (FILE_ONLY)."""

from __future__ import annotations

import http.client
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from handlers.webhook_signature import sign
from tests.e2e.webserver import (
    API_TOKEN,
    OTHER_SECRETS,
    WEBHOOK_SECRET,
    WebServer,
    payload,
    post_run,
    signed,
)

# The web fixtures (web, gunicorn_factory) live in tests/e2e/web_fixtures.py.
pytest_plugins = ["tests.e2e.web_fixtures"]
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def new_id() -> str:
    return "run_" + uuid.uuid4().hex[:12]


def test_a_signed_run_is_accepted_then_visible_in_the_status_api(web: WebServer) -> None:
    run_id = new_id()
    answer = post_run(web, payload(run_id))
    assert (answer.status_code, answer.json()) == (202, {"run_id": run_id, "status": "QUEUED"})
    status = requests.get(web.url(f"/api/pipeline/{run_id}/status"), headers=AUTH, timeout=5)
    assert status.status_code == 200
    body = status.json()
    assert set(body) == {"run_id", "status", "current_stage", "last_completed_stage", "progress", "stages", "error",
                         "usage", "source"}
    # Recorded before the answer; the dispatcher may already be running it (its blob host is
    # unreachable here, so it ends FAILED at stage 1: test_dispatch.py covers real completions).
    assert body["run_id"] == run_id and body["source"] == "files"
    assert body["status"] in {"QUEUED", "PROCESSING", "FAILED"}
    assert set(body["stages"]) == {"1", "2", "3", "4", "5"}
    assert body["usage"] is None  # the offline engine makes no LLM call


def test_a_repeated_delivery_is_answered_200_and_recorded_once(web: WebServer) -> None:
    run_id = new_id()
    codes = [post_run(web, payload(run_id)).status_code for _ in range(3)]
    assert codes == [202, 200, 200]


def test_twenty_concurrent_deliveries_create_exactly_one_run(web: WebServer) -> None:
    run_id = new_id()
    body = json.dumps(payload(run_id)).encode()
    headers = signed(body)
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: requests.post(web.url("/run"), data=body, headers=headers, timeout=15),
                                range(20)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * 19 + [202]
    assert all(a.json() == {"run_id": run_id, "status": "QUEUED"} for a in answers)


def test_the_same_run_id_with_another_payload_is_a_conflict(web: WebServer) -> None:
    run_id = new_id()
    assert post_run(web, payload(run_id)).status_code == 202
    answer = post_run(web, payload(run_id, user_id="someone_else"))
    assert answer.status_code == 409 and answer.json()["code"] == "RUN_CONFLICT"


@pytest.mark.parametrize("case", ["wrong secret", "tampered body", "stale", "future", "missing signature",
                                  "missing id", "missing timestamp", "no headers", "garbage signature"])
def test_unsigned_or_badly_signed_requests_are_401(web: WebServer, case: str) -> None:
    body = json.dumps(payload(new_id())).encode()
    now = int(time.time())
    headers = {
        "wrong secret": lambda: signed(body, secret="whsec_" + "QUJD" * 8),
        "tampered body": lambda: signed(body.replace(b"user_42", b"user_43")),
        "stale": lambda: signed(body, timestamp=now - 301),
        "future": lambda: signed(body, timestamp=now + 301),
        "missing signature": lambda: {k: v for k, v in signed(body).items() if k != "webhook-signature"},
        "missing id": lambda: {k: v for k, v in signed(body).items() if k != "webhook-id"},
        "missing timestamp": lambda: {k: v for k, v in signed(body).items() if k != "webhook-timestamp"},
        "no headers": lambda: {"Content-Type": "application/json"},
        "garbage signature": lambda: {**signed(body), "webhook-signature": "v1,not-base64!! v2,x"},
    }[case]()
    answer = post_run(web, body, headers=headers)
    assert answer.status_code == 401 and answer.json()["code"] == "SIGNATURE_INVALID"
    assert WEBHOOK_SECRET not in answer.text


def test_rotated_secrets_any_matching_signature_is_enough(web: WebServer) -> None:
    body = json.dumps(payload(new_id())).encode()
    headers = signed(body)
    stamp = headers["webhook-timestamp"]
    old = sign("whsec_" + "T0xEU0VDUkVU" * 3, "msg_e2e", stamp, body)
    headers["webhook-signature"] = f"{old} {headers['webhook-signature']}"
    assert post_run(web, body, headers=headers).status_code == 202


@pytest.mark.parametrize("body, fields", [
    (payload("bad id!"), {"run_id"}),
    (payload("x" * 65), {"run_id"}),
    (payload("ok_1", company_id="no-such-brand"), {"company_id"}),
    (payload("ok_2", user_id=""), {"user_id"}),
    (payload("ok_3", user_id="u" * 129), {"user_id"}),
    (payload("ok_4", user_id="tab\there"), {"user_id"}),
    (payload("ok_5", blob_url="http://store1.public.blob.vercel-storage.com/a.pdf"), {"blob_url"}),
    (payload("ok_6", blob_url="https://evil.example/a.pdf"), {"blob_url"}),
    (payload("ok_7", blob_url="file:///etc/passwd"), {"blob_url"}),
    (payload("x") | {"run_id": 123, "company_id": ["x"], "user_id": None, "blob_url": {"a": 1}},
     {"run_id", "company_id", "user_id", "blob_url"}),
    ({"run_id": "only"}, {"blob_url", "company_id", "user_id"}),
    (payload("ok_8", extra="ignored", another={"x": 1}) | {"blob_url": 7}, {"blob_url"}),
    ([1, 2, 3], {"body"}),
    (b"\"just a string\"", {"body"}),
    (b"{not json", {"body"}),
    (b"\xff\xfe{}", {"body"}),
    (b"[" * 5000 + b"]" * 5000, {"body"}),
    (b"", {"body"}),
])
def test_invalid_payloads_are_400_naming_each_field(web: WebServer, body: object, fields: set[str]) -> None:
    answer = post_run(web, body if isinstance(body, bytes) else json.dumps(body).encode())
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid payload" and set(answer.json()["fields"]) == fields


def test_a_body_over_64_kib_is_413(web: WebServer) -> None:
    body = json.dumps(payload(new_id(), padding="p" * 70_000)).encode()
    answer = post_run(web, body)
    assert answer.status_code == 413 and answer.json()["code"] == "REQUEST_ENTITY_TOO_LARGE"


def chunked_post(web: WebServer, body: bytes) -> tuple[int, dict[str, object]]:
    """POST /run with a chunked body (no Content-Length), as a client hiding its size would."""
    host, port = web.base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.putrequest("POST", "/run")
    for name, value in {**signed(body), "Transfer-Encoding": "chunked"}.items():
        conn.putheader(name, value)
    conn.endheaders()
    try:
        for start in range(0, len(body), 8192):
            piece = body[start:start + 8192]
            conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may answer and close before the client has finished sending
    answer = conn.getresponse()
    result = answer.status, json.loads(answer.read())
    conn.close()
    return result


@pytest.mark.parametrize("size, expected", [(65_537, 413), (200_000, 413), (65_536, 202)])
def test_a_chunked_body_is_capped_at_64_kib_even_without_content_length(web: WebServer, size: int,
                                                                        expected: int) -> None:
    body = json.dumps(payload(new_id(), padding="")).encode()
    body = body.replace(b'"padding": ""', b'"padding": "' + b"p" * (size - len(body)) + b'"')
    assert len(body) == size
    status, answer = chunked_post(web, body)
    assert status == expected, answer


@pytest.mark.parametrize("headers, code", [
    ({}, 401), ({"Authorization": "Bearer wrong"}, 401), ({"Authorization": API_TOKEN}, 401),
    ({"Authorization": "Basic " + API_TOKEN}, 401), ({"Authorization": "Bearer é"}, 401),
])
def test_the_status_api_needs_the_bearer_token(web: WebServer, headers: dict[str, str], code: int) -> None:
    answer = requests.get(web.url("/api/pipeline/anything/status"), headers=headers, timeout=5)
    assert answer.status_code == code and answer.headers["WWW-Authenticate"].lower().startswith("bearer")


def test_an_unknown_run_is_404(web: WebServer) -> None:
    answer = requests.get(web.url("/api/pipeline/never_seen_run/status"), headers=AUTH, timeout=5)
    assert answer.status_code == 404 and answer.json()["code"] == "RUN_NOT_FOUND"


def test_unknown_routes_and_methods_answer_json(web: WebServer) -> None:
    missing = requests.get(web.url("/nope"), timeout=5)
    wrong = requests.get(web.url("/run"), timeout=5)
    assert (missing.status_code, wrong.status_code) == (404, 405)
    assert missing.json()["code"] == "NOT_FOUND" and "POST" in wrong.headers["Allow"]


@pytest.mark.parametrize("path", ["/health", "/api/health"])
def test_health_reports_the_mode_and_never_a_secret(web: WebServer, path: str) -> None:
    answer = requests.get(web.url(path), timeout=5)
    body = answer.json()
    assert answer.status_code == 200 and body["status"] == "healthy" and body["mode"] == "FILE_ONLY"
    assert {"status", "mode", "database_writes", "file_fallback", "database_connection", "circuit",
            "spool_backlog", "schema", "version"} <= set(body)
    assert body["database_connection"] == "skipped" and body["version"] == "dev"
    for secret in (WEBHOOK_SECRET, API_TOKEN, *OTHER_SECRETS.values(), "hunter2", "db.internal"):
        assert secret not in answer.text


def test_logs_are_json_lines_without_secrets_or_query_strings(web: WebServer) -> None:
    requests.get(web.url("/health?token=query-secret-value"), timeout=5)
    deadline = time.monotonic() + 10  # the access line is written just after the response
    while not any("/health" in str(line.get("path", "")) for line in web.log_lines()
                  if line.get("logger") == "gunicorn.access"):
        assert time.monotonic() < deadline, "no access log line for /health"
        time.sleep(0.05)
    access = [line for line in web.log_lines() if line.get("logger") == "gunicorn.access"]
    assert access and all({"method", "path", "status", "duration_ms", "remote_addr"} <= set(a) for a in access)
    text = web.log_path.read_text()
    for secret in ("query-secret-value", WEBHOOK_SECRET, API_TOKEN, *OTHER_SECRETS.values(), "hunter2"):
        assert secret not in text


def test_without_secrets_run_and_status_answer_503(gunicorn_factory) -> None:
    server = gunicorn_factory({})
    body = json.dumps(payload(new_id())).encode()
    assert post_run(server, body, headers=signed(body)).status_code == 503
    status = requests.get(server.url("/api/pipeline/x/status"), headers=AUTH, timeout=5)
    assert status.status_code == 503 and "API_TOKEN" in status.json()["error"]
    assert requests.get(server.url("/health"), timeout=5).status_code == 200


def test_invalid_mode_answers_503_on_health_and_run(gunicorn_factory) -> None:
    server = gunicorn_factory({"WEBHOOK_SECRET": WEBHOOK_SECRET, "API_TOKEN": API_TOKEN,
                               "ENABLE_DATABASE_WRITES": "false", "ENABLE_FILE_FALLBACK": "false"})
    health = requests.get(server.url("/health"), timeout=5)
    assert health.status_code == 503 and health.json()["status"] == "unhealthy"
    assert health.json()["mode"] == "INVALID"
    answer = post_run(server, payload(new_id()))
    assert answer.status_code == 503 and "ENABLE_FILE_FALLBACK" in answer.json()["error"]


def test_sigterm_stops_the_server_cleanly(gunicorn_factory) -> None:
    server = gunicorn_factory({"WEBHOOK_SECRET": WEBHOOK_SECRET})
    assert server.stop() == 0
