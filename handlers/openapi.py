"""The OpenAPI 3.1 description of the runner's HTTP API, served at ``GET /openapi.json``.

Built as data here (not a file kept by hand beside the code) so the shared error and schema
pieces are written once; tests/e2e/test_openapi.py checks it names every route of the app.
"""

from __future__ import annotations

from functools import cache
from typing import Any

BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
SESSION: list[dict[str, list[str]]] = [{"session": []}]
RUN_ID = {"name": "run_id", "in": "path", "required": True,
          "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    what = {400: "bad input: `fields` says what is wrong", 401: "missing or wrong credentials",
            404: "unknown run (RUN_NOT_FOUND) or result not there yet (RESULT_NOT_READY)",
            409: "the run's status does not allow it", 413: "body over 64 KiB",
            503: "not configured, INVALID mode, or the store is unavailable"}
    return {str(code): _json(_ref("Error"), what[code]) for code in codes}


def _get(summary: str, ok: dict[str, Any], *errors: int, params: list[Any] | None = None,
         secured: bool = True) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {"200": ok, **_errors(*errors)}}
    if params:
        op["parameters"] = params
    if secured:
        op["security"] = BEARER
    return {"get": op}


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error", "code"], "properties": {
        "error": {"type": "string"}, "code": {"type": "string"},
        "fields": {"type": "object", "additionalProperties": {"type": "string"}}}},
    "RunRequest": {"type": "object", "required": ["run_id", "blob_url", "company_id", "user_id"], "properties": {
        "run_id": RUN_ID["schema"], "blob_url": {"type": "string", "format": "uri"},
        "company_id": {"type": "string"}, "user_id": {"type": "string", "minLength": 1, "maxLength": 128}}},
    "Accepted": {"type": "object", "properties": {"run_id": {"type": "string"}, "status": {"type": "string"}}},
    "Usage": {"type": ["object", "null"], "properties": {
        "calls": {"type": "integer"}, "prompt_tokens": {"type": "integer"},
        "completion_tokens": {"type": "integer"}, "cost_usd": {"type": "number"}}},
    "RunError": {"type": ["object", "null"], "properties": {
        "stage": {"type": ["integer", "null"]}, "code": {"type": "string"}, "message": {"type": "string"}}},
    "Status": {"type": "object", "properties": {
        "run_id": {"type": "string"},
        "status": {"enum": ["QUEUED", "PROCESSING", "COMPLETED", "FAILED", "CANCELLED"]},
        "current_stage": {"type": ["integer", "null"], "description": "the stage running now (PROCESSING only)"},
        "last_completed_stage": {"type": ["integer", "null"]},
        "progress": {"type": "number", "minimum": 0, "maximum": 1},
        "stages": {"type": "object"}, "error": _ref("RunError"), "usage": _ref("Usage"),
        "source": {"enum": ["database", "files"]}}},
    "Run": {"type": "object", "properties": {
        "run_id": {"type": "string"}, "status": {"type": "string"}, "company_id": {"type": "string"},
        "user_id": {"type": "string"}, "document_url": {"type": "string"}, "attempt": {"type": "integer"},
        "current_stage": {"type": ["integer", "null"]}, "progress": {"type": "number"},
        "error": _ref("RunError"), "usage": _ref("Usage"), "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "completed_at": {"type": ["string", "null"], "format": "date-time"},
        "stages": {"type": "array", "items": {"type": "object", "properties": {
            "stage": {"type": "integer"}, "started_at": {"type": ["string", "null"]},
            "completed_at": {"type": ["string", "null"]}, "duration_ms": {"type": ["integer", "null"]}}}}}},
    "RunPage": {"type": "object", "properties": {
        "runs": {"type": "array", "items": _ref("Run")}, "next_cursor": {"type": ["string", "null"]},
        "source": {"enum": ["database", "files"]}}},
    "Opportunities": {"type": "object", "properties": {
        "run_id": {"type": "string"}, "opportunities": {"type": "array", "minItems": 5, "maxItems": 5,
                                                        "items": {"type": "object"}}}},
    "StageOutput": {"type": "object", "properties": {
        "run_id": {"type": "string"}, "stage": {"type": "integer"}, "name": {"type": "string"},
        "output": {"type": "object"}}},
    "Health": {"type": "object", "properties": {
        "status": {"enum": ["healthy", "degraded", "unhealthy"]}, "mode": {"type": "string"},
        "circuit": {"type": "string"}, "spool_backlog": {"type": "integer"}, "schema": {"type": "string"}}},
}

OPERATOR = {"name": "X-Operator", "in": "header", "required": False, "schema": {"type": "string", "maxLength": 64},
            "description": "who asks (logged with the action); default 'bearer'"}
FILTERS = [
    _query("status", "QUEUED, PROCESSING, COMPLETED, FAILED or CANCELLED"),
    _query("company_id", "brand id"), _query("user_id", "who asked for the run"),
    _query("created_after", "ISO 8601 time with a timezone", {"type": "string", "format": "date-time"}),
    _query("created_before", "ISO 8601 time with a timezone", {"type": "string", "format": "date-time"}),
    _query("limit", "page size", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}),
    _query("cursor", "next_cursor of the previous page"),
]
HTML = {"description": "an HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}


def paths() -> dict[str, Any]:
    """Every route, by OpenAPI path."""
    health = _get("Whether this process can record runs now", _json(_ref("Health"), "healthy or degraded"),
                  503, secured=False)
    return {
        "/run": {"post": {
            "summary": "Accept a Standard-Webhooks-signed run request",
            "parameters": [{"name": h, "in": "header", "required": True, "schema": {"type": "string"}}
                           for h in ("webhook-id", "webhook-timestamp", "webhook-signature")],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("RunRequest")}}},
            "responses": {"202": _json(_ref("Accepted"), "recorded, QUEUED"),
                          "200": _json(_ref("Accepted"), "a repeat of a recorded run"),
                          **_errors(400, 401, 409, 413, 503)}}},
        "/api/pipeline/{run_id}/status": _get("A run's status, stages, progress and usage",
                                              _json(_ref("Status"), "the run"), 401, 404, 503, params=[RUN_ID]),
        "/api/pipeline/{run_id}/report": _get(
            "The report of a COMPLETED run", {"description": "markdown",
                                              "content": {"text/markdown": {"schema": {"type": "string"}}}},
            401, 404, 503, params=[RUN_ID]),
        "/api/pipeline/{run_id}/opportunities": _get("The five opportunity cards",
                                                     _json(_ref("Opportunities"), "the cards"), 401, 404, 503,
                                                     params=[RUN_ID]),
        "/api/pipeline/{run_id}/stages/{stage}": _get(
            "One finished stage's output", _json(_ref("StageOutput"), "the output"), 400, 401, 404, 503,
            params=[RUN_ID, {"name": "stage", "in": "path", "required": True,
                             "schema": {"type": "integer", "minimum": 1, "maximum": 5}}]),
        "/api/runs": _get("Runs newest first, filtered and paginated", _json(_ref("RunPage"), "a page"),
                          400, 401, 503, params=FILTERS),
        "/api/runs/{run_id}": _get("One run with attempts, stage timings, error and usage",
                                   _json(_ref("Run"), "the run"), 401, 404, 503, params=[RUN_ID]),
        "/health": health,
        "/api/health": health,
        "/metrics": _get("Prometheus text exposition", {"description": "metrics", "content": {
            "text/plain": {"schema": {"type": "string"}}}}, 401, 503),
        "/openapi.json": _get("This document", {"description": "OpenAPI 3.1"}, secured=False),
        **admin_paths(),
        **dashboard_paths(),
    }


def _post(summary: str, ok: dict[str, Any], *errors: int, params: list[Any] | None = None,
          body: dict[str, Any] | None = None, ok_code: str = "200") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "security": BEARER, "responses": {ok_code: ok, **_errors(*errors)},
                          "parameters": [OPERATOR, *(params or [])]}
    if body:
        op["requestBody"] = {"required": False, "content": {"application/json": {"schema": body}}}
    return {"post": op}


def admin_paths() -> dict[str, Any]:
    """Operator actions."""
    action = {"type": "object", "properties": {"action": {"type": "string"}}, "additionalProperties": True}
    return {
        "/api/admin/prune": _post(
            "Delete finished runs older than `days` (default RUN_RETENTION_DAYS)", _json(action, "what was pruned"),
            400, 401, 503, body={"type": "object", "properties": {
                "days": {"type": "integer", "minimum": 1}, "dry_run": {"type": "boolean"}}}),
        "/api/admin/breaker/reset": _post("Close this host's database breaker now", _json(action, "before/after"),
                                          401, 503),
        "/api/admin/dead-letters/requeue": _post(
            "Move the spool's dead letters back to be replayed", _json(action, "what was revived"), 400, 401, 503,
            body={"type": "object", "properties": {"run_id": RUN_ID["schema"]}}),
        "/api/pipeline/{run_id}/retry": _post("Queue a FAILED run again (resumes after its last finished stage)",
                                              _json(_ref("Accepted"), "queued"), 401, 404, 409, 503,
                                              params=[RUN_ID], ok_code="202"),
        "/api/pipeline/{run_id}/cancel": _post("Cancel a QUEUED or PROCESSING run (finished stages kept)",
                                               _json(_ref("Accepted"), "cancelled"), 401, 404, 409, 503,
                                               params=[RUN_ID], ok_code="202"),
    }


def _html(summary: str, *, method: str = "get", params: list[Any] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": ["dashboard"], "security": SESSION,
                          "responses": {"200": HTML, "302": {"description": "to the login page, or back"},
                                        "403": {"description": "CSRF token or Origin refused"}}}
    if params:
        op["parameters"] = params
    if method == "post":
        op["requestBody"] = {"content": {"application/x-www-form-urlencoded": {"schema": {
            "type": "object", "required": ["csrf_token"], "properties": {"csrf_token": {"type": "string"}}}}}}
    return {method: op}


def dashboard_paths() -> dict[str, Any]:
    """The operator dashboard: HTML pages behind its own login (a session cookie)."""
    login = _html("The login form")
    login.update(_html("Log in with API_TOKEN", method="post"))
    for op in login.values():
        op["security"] = []
    return {
        "/dashboard": _html("Runs, filters, host panel"),
        "/dashboard/login": login,
        "/dashboard/logout": _html("Log out", method="post"),
        "/dashboard/runs/{run_id}": _html("One run: timeline, error, cost, actions", params=[RUN_ID]),
        "/dashboard/fragments/runs": _html("The live part of the runs page"),
        "/dashboard/fragments/runs/{run_id}": _html("The live part of a run's page", params=[RUN_ID]),
        "/dashboard/runs/{run_id}/retry": _html("Retry a FAILED run", method="post", params=[RUN_ID]),
        "/dashboard/runs/{run_id}/cancel": _html("Cancel a QUEUED or PROCESSING run", method="post", params=[RUN_ID]),
    }


@cache
def document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Innovation Pipeline Runner", "version": "1",
                 "description": "Runs trend reports through five stages into brand opportunities. "
                                "Bearer API_TOKEN unless a route says otherwise; see README and docs/frontend.md."},
        "paths": paths(),
        "components": {"schemas": SCHEMAS, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "API_TOKEN"},
            "session": {"type": "apiKey", "in": "cookie", "name": "runner_dashboard",
                        "description": "the dashboard's session, set by POST /dashboard/login"}}},
    }
