"""Hypothesis fuzzing of POST /run (and the status path): whatever arrives, never a 5xx.

Through Flask's test client (fast, many examples) and against the real gunicorn (a few hundred).
Bodies range from random bytes to almost-valid payloads; headers from missing to correctly signed,
so every layer (size, signature, JSON, fields, store) gets its share of the examples.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from flask import Flask
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from config.settings import Settings
from handlers.app import create_app
from handlers.launcher import NullLauncher
from handlers.webhook_signature import signed_headers
from persistence.files import FileStore
from tests.e2e.webserver import (
    API_TOKEN,
    BLOB_URL,
    BRAND,
    WEBHOOK_SECRET,
    WebServer,
)

pytest_plugins = ["tests.e2e.web_fixtures"]  # the web fixture
HEADER_TEXT = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=60)
JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=80)
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
FIELD_VALUES = {
    "run_id": st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True) | JSON_VALUES,
    "blob_url": st.sampled_from([BLOB_URL, "http://x.public.blob.vercel-storage.com/a",
                                 "https://a.b.public.blob.vercel-storage.com/a", "file:///etc/passwd",
                                 "https://[::1/", "https://x.public.blob.vercel-storage.com:99999/"])
    | st.text(max_size=200) | JSON_VALUES,
    "company_id": st.sampled_from([BRAND, "../etc", "decathlon", ""]) | JSON_VALUES,
    "user_id": st.text(max_size=140) | JSON_VALUES,
}
PAYLOADS = st.fixed_dictionaries({}, optional={**FIELD_VALUES, "extra": JSON_VALUES})
BODIES = (PAYLOADS.map(lambda p: json.dumps(p).encode())
          | JSON_VALUES.map(lambda v: json.dumps(v).encode())
          | st.binary(max_size=300))
SIGNATURE_HEADERS = st.one_of(
    st.just("signed"), st.just("none"),
    st.fixed_dictionaries({}, optional={"webhook-id": HEADER_TEXT, "webhook-timestamp": HEADER_TEXT,
                                        "webhook-signature": HEADER_TEXT}),
)


def fuzz(examples: int) -> settings:
    """Hypothesis settings for these tests: no example database on disk, no per-example deadline."""
    return settings(max_examples=examples, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def headers_for(kind: Any, body: bytes) -> dict[str, str]:
    if kind == "signed":
        return signed_headers(WEBHOOK_SECRET, body)
    return {} if kind == "none" else dict(kind)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    out: Path = tmp_path_factory.mktemp("fuzz-outputs")
    return create_app(Settings(output_dir=out, webhook_secret=WEBHOOK_SECRET, api_token=API_TOKEN),
                      store=FileStore(out), launcher=NullLauncher())


@fuzz(600)
@given(body=BODIES, kind=SIGNATURE_HEADERS)
def test_post_run_never_answers_5xx_in_process(app: Flask, body: bytes, kind: Any) -> None:
    answer = app.test_client().post("/run", data=body, headers=headers_for(kind, body))
    assert answer.status_code in (200, 202, 400, 401, 409), answer.get_data(as_text=True)
    assert answer.is_json


@fuzz(200)
@example(run_id="0/", token=API_TOKEN)  # '%2F' arrives as '/': once an HTML redirect
@given(run_id=st.text(max_size=80), token=st.sampled_from([API_TOKEN, "", "wrong"]))
def test_status_never_answers_5xx_in_process(app: Flask, run_id: str, token: str) -> None:
    path = f"/api/pipeline/{quote(run_id, safe='')}/status"
    answer = app.test_client().get(path, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code in (200, 400, 401, 404), answer.get_data(as_text=True)
    assert answer.is_json


@fuzz(250)
@given(body=BODIES, kind=SIGNATURE_HEADERS)
def test_post_run_never_answers_5xx_over_http(web: WebServer, body: bytes, kind: Any) -> None:
    answer = requests.post(web.url("/run"), data=body, headers=headers_for(kind, body), timeout=10)
    assert answer.status_code < 500, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
