"""The Flask app in process, with stores and launchers that fail on purpose: how errors map to answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from config.errors import StoreUnavailable
from config.settings import Settings
from handlers.app import create_app
from handlers.launcher import NullLauncher
from handlers.webhook_signature import signed_headers
from persistence.commands import Command, CreateRun
from persistence.files import FileStore
from tests.e2e.webserver import WEBHOOK_SECRET, payload


class RecordingLauncher:
    """Remembers every notify; optionally fails like a launcher whose subprocess cannot start."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[str] = []
        self.error = error

    def notify(self, run_id: str) -> None:
        self.calls.append(run_id)
        if self.error:
            raise self.error


class BrokenStore(FileStore):
    """A FileStore whose CreateRun raises ``error``."""

    def __init__(self, root: Path, error: Exception) -> None:
        super().__init__(root)
        self.error = error

    def apply(self, command: Command) -> bool:
        if isinstance(command, CreateRun):
            raise self.error
        return super().apply(command)


def make_app(tmp_path: Path, store: FileStore | None = None, launcher: RecordingLauncher | None = None) -> Flask:
    settings = Settings(output_dir=tmp_path, webhook_secret=WEBHOOK_SECRET, api_token="t")
    return create_app(settings, store=store or FileStore(tmp_path), launcher=launcher or NullLauncher())


def post(app: Flask, run_id: str) -> Any:
    body = json.dumps(payload(run_id)).encode()
    return app.test_client().post("/run", data=body, headers=signed_headers(WEBHOOK_SECRET, body))


def test_the_launcher_is_told_after_the_run_is_recorded(tmp_path: Path) -> None:
    launcher = RecordingLauncher()
    app = make_app(tmp_path, launcher=launcher)
    assert [post(app, "r1").status_code, post(app, "r1").status_code] == [202, 200]
    assert launcher.calls == ["r1", "r1"]  # the launcher deduplicates; the web answers are idempotent
    assert (tmp_path / "r1" / "run.json").exists()


def test_a_failing_launcher_still_answers_202_for_a_recorded_run(tmp_path: Path) -> None:
    app = make_app(tmp_path, launcher=RecordingLauncher(OSError("fork failed")))
    assert post(app, "r2").status_code == 202 and (tmp_path / "r2" / "run.json").exists()


@pytest.mark.parametrize("error, code", [
    (StoreUnavailable("connection to db.internal:5432 refused (password=hunter2)"), 503),
    (RuntimeError("a bug with secret details"), 500),
])
def test_store_failures_answer_json_without_details(tmp_path: Path, error: Exception, code: int) -> None:
    launcher = RecordingLauncher()
    answer = post(make_app(tmp_path, BrokenStore(tmp_path, error), launcher), "r3")
    assert answer.status_code == code and answer.is_json
    assert "hunter2" not in answer.get_data(as_text=True) and "secret details" not in answer.get_data(as_text=True)
    assert launcher.calls == []  # nothing is launched that was not recorded


def test_a_body_shorter_than_its_content_length_is_refused_and_nothing_is_recorded(tmp_path: Path) -> None:
    # Under gunicorn the front waits for the whole body (408 if it never comes); another WSGI
    # server may hand the app a stream that ends early.
    body = json.dumps(payload("short")).encode()
    answer = make_app(tmp_path).test_client().post(
        "/run", data=body, headers=signed_headers(WEBHOOK_SECRET, body),
        environ_overrides={"CONTENT_LENGTH": str(len(body) + 10)})
    assert answer.status_code == 400
    expected = f"the body ended after {len(body)} of its {len(body) + 10} bytes: send it whole"
    assert answer.get_json()["error"] == expected
    assert not (tmp_path / "short").exists()


def test_the_answer_is_json_with_the_run_and_its_status(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    body = json.dumps(payload("shape")).encode()
    first = app.test_client().post("/run", data=body, headers=signed_headers(WEBHOOK_SECRET, body))
    again = app.test_client().post("/run", data=body, headers=signed_headers(WEBHOOK_SECRET, body))
    assert (first.status_code, again.status_code) == (202, 200)
    for answer in (first, again):
        assert answer.mimetype == "application/json"
        assert answer.get_json() == {"run_id": "shape", "status": "QUEUED"}
