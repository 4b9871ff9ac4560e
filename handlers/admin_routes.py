"""Operator actions over HTTP (bearer API_TOKEN): retry, cancel, prune, breaker reset, dead letters.

Who asked is ``api:<X-Operator header>`` (or ``api:bearer``): the token is shared, the header
names the person or the automation, and every action logs it.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from config.errors import InvalidInput
from config.paths import check_run_id
from handlers import dispatch_socket
from handlers.routes import NO_STORE, require_bearer, services
from handlers.runs import actions, admin

operations = Blueprint("operations", __name__)
MAX_OPERATOR = 64


def api_caller() -> str:
    """``api:<name>`` from X-Operator (printable, at most 64 characters), else ``api:bearer``."""
    name = (request.headers.get("X-Operator") or "").strip()
    if not name:
        return "api:bearer"
    if len(name) > MAX_OPERATOR or not name.isprintable():
        raise InvalidInput(f"X-Operator must be at most {MAX_OPERATOR} printable characters", code="INVALID_OPERATOR")
    return f"api:{name}"


def _json_body() -> dict[str, Any]:
    if not request.get_data(cache=True):
        return {}
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object (or empty)", code="INVALID_BODY")
    return body


@operations.post("/api/admin/prune")
def post_prune() -> tuple[dict[str, Any], int, dict[str, str]]:
    """Delete finished runs older than ``days`` (default RUN_RETENTION_DAYS); ``dry_run`` lists only."""
    web = services()
    require_bearer(web.settings.api_token)
    web.settings.require_runnable()
    body = _json_body()
    days, dry_run = body.get("days"), body.get("dry_run", False)
    if days is not None and (not isinstance(days, int) or isinstance(days, bool) or days < 1):
        raise InvalidInput("days must be a whole number >= 1", code="INVALID_BODY")
    if not isinstance(dry_run, bool):
        raise InvalidInput("dry_run must be true or false", code="INVALID_BODY")
    return admin.prune_runs(web.settings, asked_by=api_caller(), days=days, dry_run=dry_run), 200, NO_STORE


@operations.post("/api/admin/breaker/reset")
def post_breaker_reset() -> tuple[dict[str, Any], int, dict[str, str]]:
    """Close this host's database breaker now."""
    web = services()
    require_bearer(web.settings.api_token)
    return admin.reset_breaker(web.settings, asked_by=api_caller()), 200, NO_STORE


@operations.post("/api/pipeline/<run_id>/retry")
def post_retry(run_id: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Queue a FAILED run again: 202 {"run_id", "status": "QUEUED"}; 409 for any other status."""
    web = services()
    require_bearer(web.settings.api_token)
    return actions.retry_run(web.writable_store(), web.launcher.notify, run_id, asked_by=api_caller()), 202, NO_STORE


@operations.post("/api/pipeline/<run_id>/cancel")
def post_cancel(run_id: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Cancel a QUEUED or PROCESSING run: 202 {"run_id", "status": "CANCELLED"}; 409 otherwise."""
    web = services()
    require_bearer(web.settings.api_token)
    settings = web.settings
    return actions.cancel_run(web.writable_store(), lambda rid: dispatch_socket.notify(settings, rid), run_id,
                              asked_by=api_caller()), 202, NO_STORE


@operations.post("/api/admin/dead-letters/requeue")
def post_requeue_dead_letters() -> tuple[dict[str, Any], int, dict[str, str]]:
    """Move the spool's dead letters (``run_id`` in the body: only that run's) back to be replayed."""
    web = services()
    require_bearer(web.settings.api_token)
    run_id = _json_body().get("run_id")
    if run_id is not None:
        check_run_id(run_id)
    return admin.requeue_dead_letters(web.settings, asked_by=api_caller(), run_id=run_id), 200, NO_STORE
