"""End-to-end helpers and fixtures: the real gunicorn, started as Railway would start it, on a free port.

The fixtures built on these live in tests/e2e/web_fixtures.py (a plugin test modules name in
``pytest_plugins``; tests/e2e/conftest.py holds the database fixtures).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import requests

from handlers.webhook_signature import signed_headers

REPO = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).parent / "gunicorn"  # the test virtualenv's (.venv in CI)
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
API_TOKEN = "status-token-e2e-7f3a9c"
# Set on the main server only to prove that no answer or log line ever shows them.
OTHER_SECRETS = {
    "DATABASE_URL": "postgresql://runner:hunter2-db-password@db.internal.example:5432/runner",
    "BLOB_READ_WRITE_TOKEN": "vercel_blob_rw_e2e_secret_token",
    "OPENROUTER_API_KEY": "sk-or-e2e-secret-key",
}
# Variables of the developer's or CI's shell that would change what the server does.
SCRUBBED_PREFIXES = ("DATABASE_URL", "ENABLE_", "BLOB_", "WEBHOOK_", "API_TOKEN", "RAILWAY_", "OUTPUT_DIR",
                     "DATA_DIR", "PORT", "LOG_LEVEL", "WEB_CONCURRENCY", "OPENROUTER", "PIPELINE_ENGINE")
BRAND = "mccormick-usa"
BLOB_URL = "https://store1.public.blob.vercel-storage.com/reports/trends.pdf"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET6) as probe:
        probe.bind(("::", 0))
        return int(probe.getsockname()[1])


@dataclass
class WebServer:
    """A running gunicorn: its base URL, its environment and the file its stdout goes to."""

    process: subprocess.Popen[bytes]
    base: str
    env: Mapping[str, str]
    log_path: Path
    json_logs: bool = True  # False only for a foreign app (the bench's floor), whose gunicorn logs plain text

    def url(self, path: str) -> str:
        """An absolute URL on this server."""
        return self.base + path

    def log_lines(self) -> list[dict[str, object]]:
        """Every line gunicorn and the app wrote to stdout, parsed (each must be JSON)."""
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]

    def stop(self) -> int:
        """SIGTERM, as Railway sends it; wait for a clean exit; fail on any line that is not JSON."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.json_logs:
            assert_json_lines(self.log_path)
        return int(self.process.returncode)


def assert_json_lines(log_path: Path) -> None:
    """Every line a service wrote is one JSON object: Railway shows any other stderr line as an error."""
    stray = []
    for line in log_path.read_text().splitlines():
        try:
            parsed = json.loads(line) if line.strip() else {}
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            stray.append(line)
    assert not stray, f"{log_path.name}: {len(stray)} line(s) that are not JSON objects: {stray[:10]}"


def start_gunicorn(tmp: Path, env: Mapping[str, str], *, command: list[str] | None = None,
                   cwd: Path = REPO, own_output_dir: bool = True, new_session: bool = False,
                   json_logs: bool = True) -> WebServer:
    """Start gunicorn with ``env`` over a scrubbed environment and wait until /health answers.

    ``own_output_dir``: OUTPUT_DIR under ``tmp`` (default), else the app's own default.
    ``new_session``: its own process group, so a test can SIGKILL the whole server at once.
    ``json_logs``: ``stop()`` fails on any log line that is not a JSON object (ours always are).
    """
    port = free_port()
    full = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
    full.update({"WEB_CONCURRENCY": "2", "LOG_LEVEL": "INFO", **env, "PORT": str(port)})
    if own_output_dir:
        full.setdefault("OUTPUT_DIR", str(tmp / "outputs"))
    log_path = tmp / f"gunicorn-{port}.log"
    tmp.mkdir(parents=True, exist_ok=True)
    argv = command or [str(GUNICORN), "-c", "handlers/gunicorn.conf.py", "handlers.app:create_app()"]
    with open(log_path, "wb") as out:
        process = subprocess.Popen(argv, cwd=cwd, env=full, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=new_session)
    server = WebServer(process, f"http://127.0.0.1:{port}", full, log_path, json_logs)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"gunicorn exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            requests.get(server.url("/health"), timeout=5)
            return server
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or a busy machine
            time.sleep(0.1)
    with contextlib.suppress(AssertionError):  # its stray lines are in the tail shown below
        server.stop()
    raise AssertionError(f"gunicorn did not answer /health within 60 s:\n{log_path.read_text()[-4000:]}")


ServerFactory = Callable[[Mapping[str, str]], WebServer]


def signed(body: bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None,
           msg_id: str = "msg_e2e") -> dict[str, str]:
    """Standard Webhooks headers for ``body`` plus a JSON content type."""
    return {**signed_headers(secret, body, msg_id=msg_id, timestamp=timestamp),
            "Content-Type": "application/json"}


def payload(run_id: str, **overrides: object) -> dict[str, object]:
    """A valid POST /run body for ``run_id``."""
    return {"run_id": run_id, "blob_url": BLOB_URL, "company_id": BRAND, "user_id": "user_42", **overrides}


def post_run(server: WebServer, body: dict[str, object] | bytes, headers: dict[str, str] | None = None,
             **signing: object) -> requests.Response:
    """POST /run with ``body`` (a dict is JSON-encoded), signed unless ``headers`` are given."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(server.url("/run"), data=raw, headers=headers if headers is not None
                         else signed(raw, **signing), timeout=10)  # type: ignore[arg-type]
