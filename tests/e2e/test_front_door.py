"""The front door under gunicorn: one log line per webhook, naming the run and the outcome."""

from __future__ import annotations

import requests

from tests.e2e.webserver import WebServer, payload, post_run

pytest_plugins = ["tests.e2e.web_fixtures"]


def test_a_webhook_is_one_access_line_with_its_run_and_outcome(web: WebServer):
    body = payload("front_door_1")
    assert [post_run(web, body).status_code for _ in range(2)] == [202, 200]
    assert requests.get(web.url("/health"), timeout=10).status_code == 200
    lines = [line for line in web.log_lines() if line.get("run_id") == "front_door_1"]
    access = [line for line in lines if line.get("message") == "request"]
    assert [line["outcome"] for line in access] == ["accepted", "repeated"]
    assert all(line["path"] == "/run" and line["company_id"] == body["company_id"] for line in access)
    assert not [line for line in lines if line.get("message") in ("run_accepted", "run_repeated")]
    errors = [line for line in web.log_lines() if line.get("level") == "error" and "access" in str(line)]
    assert errors == []
