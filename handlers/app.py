"""The web composition root: ``create_app(settings)`` builds the store, launcher and routes.

Importing this module opens nothing; gunicorn calls ``create_app()`` once per worker.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from config.errors import ConfigError, Conflict, InvalidInput, NotDurable, NotFound, RunnerError, StoreError
from config.log import configure_logging, get_logger
from config.modes import Mode
from config.settings import Settings
from handlers.admin_routes import operations
from handlers.dashboard import dashboard
from handlers.dashboard.auth import configure_sessions
from handlers.health import probe_for
from handlers.launcher import RunLauncher, launcher_for
from handlers.metrics import HostProbes, WebMetrics
from handlers.ops_routes import count_webhook_answer, ops
from handlers.payload import InvalidPayload
from handlers.results_routes import api
from handlers.routes import WebServices, health, runs, status
from handlers.webhook_signature import SignatureError
from persistence import factory
from persistence.errors import RunNotRecorded
from persistence.factory import build_persistence
from persistence.outbox.factory import build_outbox
from persistence.ports import DirectWrite, Pingable, RunStore
from persistence.query.factory import build_query

log = get_logger(__name__)

MAX_BODY_BYTES = 64 * 1024
# First match wins: subclasses before their parents.
STATUS_FOR = ((SignatureError, 401), (InvalidInput, 400), (NotFound, 404), (Conflict, 409),
              (ConfigError, 503), (StoreError, 503))


def create_app(settings: Settings | None = None, *, store: RunStore | None = None,
               launcher: RunLauncher | None = None) -> Flask:
    """Build the Flask app; settings from the environment and the mode's store unless given."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)
    database: Pingable | None = None
    direct: DirectWrite | None = None
    if store is None and settings.mode is not Mode.INVALID:
        persistence = build_persistence(settings, connection_per_thread=True)  # gthread: a connection per thread
        store, database = persistence.store, persistence.database
        # No durable disk: an accepted run must reach PostgreSQL, or the sender is told to retry.
        direct = None if settings.output_durable else persistence.direct
    query = build_query(settings) if settings.mode is not Mode.INVALID else None
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # Werkzeug would answer '//' in a path with an HTML 308 redirect; every answer here is JSON.
    app.url_map.merge_slashes = False
    launcher = launcher or launcher_for(settings)
    outbox = build_outbox(settings) if settings.callback_url and settings.mode is not Mode.INVALID else None
    app.extensions["runner"] = WebServices(settings=settings, store=store, launcher=launcher, database=database,
                                           direct=direct, query=query, outbox=outbox)
    probe_for(app, database)
    app.extensions["metrics"] = WebMetrics(query, HostProbes(
        breaker_state=lambda: factory.breaker_state(settings), spool_backlog=lambda: factory.spool_backlog(settings),
        callbacks_pending=outbox.pending if outbox is not None else None))
    configure_sessions(app, settings.api_token)
    for blueprint in (runs, status, health, api, ops, operations, dashboard):
        app.register_blueprint(blueprint)
    app.after_request(count_webhook_answer)
    app.register_error_handler(RunnerError, error_response)
    app.register_error_handler(HTTPException, error_response)
    log.info("web_app_ready", mode=str(settings.mode), durability=settings.durability,
             run_dispatch=settings.run_dispatch, store=store.name if store is not None else None,
             webhook_secret="set" if settings.webhook_secret else "unset",
             api_token="set" if settings.api_token else "unset", environment=settings.railway_environment)
    return app


def close_app(app: object) -> None:
    """Close the connections of an app create_app built (anything else is left alone).

    Gunicorn's worker_exit hook calls it as a worker stops.

    Left to the interpreter, a pool's threads are stopped from a finalizer after the threads can
    no longer run (Python 3.13), each waited for in vain: the worker overran SIGTERM's grace.
    """
    if isinstance(app, Flask) and isinstance(services := app.extensions.get("runner"), WebServices):
        services.close()


def error_response(exc: RunnerError | HTTPException) -> Response:
    """The one error handler: the error tree and HTTP errors become a JSON body and a status."""
    if isinstance(exc, HTTPException):
        code = exc.code or 500
        message = exc.description if code < 500 else "internal server error"
        response = jsonify({"error": message, "code": exc.name.upper().replace(" ", "_")})
        response.status_code = code
        for name, value in exc.get_headers():  # keeps Allow (405) and WWW-Authenticate (401)
            if name.lower() != "content-type":
                response.headers[name] = value
        return response
    code = next((status for kind, status in STATUS_FOR if isinstance(exc, kind)), 500)
    body: dict[str, object] = {"error": exc.message, "code": exc.code}
    if isinstance(exc, InvalidPayload):
        body["fields"] = exc.fields
    elif isinstance(exc, NotDurable):
        pass  # its message is ours (no driver text): the sender should know why and when to retry
    elif isinstance(exc, RunNotRecorded):
        # Our own words (where and why, never a connection string): the sender must retry.
        body["error"] = f"the run was not recorded: {exc.message}"
    elif isinstance(exc, StoreError):
        # Driver messages can name hosts; the detail goes to the log, not to the caller.
        body["error"] = "the run store is unavailable (the run may not be recorded): retry later"
    elif code == 500:
        body["error"] = "internal server error"
    log.log(40 if code >= 500 else 30, "request_refused", status=code, code=exc.code, reason=exc.message)
    response = jsonify(body)
    response.status_code = code
    if isinstance(exc, SignatureError):
        response.headers["WWW-Authenticate"] = 'Webhook realm="standard-webhooks"'
    if isinstance(exc, NotDurable):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    return response
