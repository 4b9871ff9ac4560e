"""The HTTP routes of contract §5; each one verifies, parses, calls one service and maps the result."""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from flask import Blueprint, Response, current_app, request
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge, Unauthorized

from config.errors import ConfigError
from config.log import get_logger
from config.paths import check_run_id
from config.settings import Settings
from handlers.health import check_health, probe_for
from handlers.launcher import RunLauncher
from handlers.payload import parse_run_request
from handlers.runs import run_status, submit_run
from handlers.webhook_signature import verify
from persistence import factory
from persistence.outbox.ports import CallbackOutbox
from persistence.ports import DirectWrite, Pingable, RunStore
from persistence.query.ports import RunQuery

log = get_logger(__name__)
runs = Blueprint("runs", __name__)
status = Blueprint("status", __name__)
health = Blueprint("health", __name__)
NO_STORE = {"Cache-Control": "no-store"}
ACCESS_LOG_FIELDS = "runner.access_log_fields"  # WSGI environ key gunicorn's access logger adds to its line


@dataclass(frozen=True)
class WebServices:
    """What the routes use, built once by create_app; ``store`` is None in INVALID mode."""

    settings: Settings
    store: RunStore | None
    launcher: RunLauncher
    database: Pingable | None = None  # what /health probes (None: no database, or a store given by a test)
    # Set when OUTPUT_DIR is not durable: accepted runs must reach PostgreSQL itself (never the spool).
    direct: DirectWrite | None = None
    query: RunQuery | None = None  # the read side (persistence.query); None in INVALID mode
    outbox: CallbackOutbox | None = None  # only its backlog is read here (for /metrics)

    def writable_store(self) -> RunStore:
        """The store, or ConfigError (503) when the mode leaves nowhere to save."""
        self.settings.require_runnable()
        if self.store is None:
            raise ConfigError("no run store is configured: set ENABLE_FILE_FALLBACK=true or DATABASE_URL")
        return self.store

    def close(self) -> None:
        """Close what holds connections (pools and their threads), so the worker exits at once."""
        for closable in (self.store, self.query, self.outbox):
            if closable is not None:
                closable.close()


def services() -> WebServices:
    """The current app's services."""
    services: WebServices = current_app.extensions["runner"]
    return services


@runs.post("/run")
def post_run() -> Response:
    """Accept a signed run request: 202 new, 200 repeat (contract §5)."""
    web = services()
    store = web.writable_store()
    if not web.settings.webhook_secret:
        raise ConfigError("POST /run is not configured: set WEBHOOK_SECRET to the sender's signing secret")
    body = read_body()
    # Headers is not a typing.Mapping, but offers the case-insensitive .get verify() uses.
    verify(web.settings.webhook_secret, cast("Mapping[str, str]", request.headers), body)
    run = parse_run_request(web.settings, body)
    # Under gunicorn the access line names the run and the outcome: one log line per webhook.
    under_gunicorn = "gunicorn.socket" in request.environ
    created = submit_run(store, web.launcher, run, direct=web.direct, announce=not under_gunicorn)
    request.environ[ACCESS_LOG_FIELDS] = {"run_id": run.run_id, "company_id": run.company_id,
                                          "outcome": "accepted" if created else "repeated"}
    # The answer built here: Flask's dict-to-JSON path costs ~10 µs more per webhook.
    return current_app.response_class(json.dumps({"run_id": run.run_id, "status": "QUEUED"}),
                                      202 if created else 200, mimetype="application/json")


def read_body() -> bytes:
    """The raw request body; 413 past MAX_CONTENT_LENGTH, whether Content-Length is sent or not."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    environ = request.environ
    declared = environ.get("CONTENT_LENGTH", "")
    if declared.isdigit() and int(declared) <= limit and "HTTP_TRANSFER_ENCODING" not in environ:
        # The webhook's case (gunicorn's front has buffered the whole body): the declared bytes
        # straight from the server's stream, without werkzeug's stream wrappers (~10 µs a webhook).
        body = environ["wsgi.input"].read(int(declared))
        if len(body) < int(declared):
            raise BadRequest(f"the body ended after {len(body)} of its {declared} bytes: send it whole")
        return body
    body = request.get_data(cache=False)  # werkzeug refuses an oversized Content-Length itself
    # A chunked body is silently cut at the limit by werkzeug's stream; one more byte from the
    # server's own (terminated) stream tells a complete body from a longer one.
    if len(body) >= limit and request.environ.get("wsgi.input_terminated") and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge(f"the body is over {limit // 1024} KiB")
    return body


def require_bearer(token: str | None) -> None:
    """Check ``Authorization: Bearer`` against API_TOKEN: ConfigError (503) unset, 401 wrong or missing."""
    if not token:
        raise ConfigError("the status API is not configured: set API_TOKEN")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # Latin-1 round-trips any header byte; compare bytes so a non-ASCII header cannot raise.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("latin-1"),
                                                             token.encode("utf-8")):
        raise Unauthorized("a valid 'Authorization: Bearer <API_TOKEN>' header is required",
                           www_authenticate=WWWAuthenticate("bearer"))


@status.get("/api/pipeline/<run_id>/status")
def get_status(run_id: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    """A run's status and stages (contract §5)."""
    web = services()
    require_bearer(web.settings.api_token)
    check_run_id(run_id)
    store = web.writable_store()
    return run_status(store, run_id), 200, NO_STORE


@health.get("/health")
@health.get("/api/health")
def get_health() -> tuple[dict[str, Any], int, dict[str, str]]:
    """Whether this process can record runs now (contract §5)."""
    web = services()
    probe = probe_for(current_app._get_current_object(), web.database)  # type: ignore[attr-defined]
    report = check_health(web.settings, probe, breaker_state=factory.breaker_state,
                          spool_backlog=factory.spool_backlog)
    return report.body, report.http_status, NO_STORE
