"""The operator and frontend read API of contract §10: list runs, a run's report, cards and stages.

Bearer ``API_TOKEN`` on every route, as the status API. Reads go through the mode's RunQuery.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from config.errors import ConfigError
from handlers.routes import NO_STORE, require_bearer, services
from handlers.runs import results
from persistence.query.ports import RunQuery

api = Blueprint("api", __name__)


def reader() -> RunQuery:
    """The authenticated caller's RunQuery; ConfigError (503) when the mode has none."""
    web = services()
    require_bearer(web.settings.api_token)
    web.settings.require_runnable()
    if web.query is None:
        raise ConfigError("no run store is configured: set ENABLE_FILE_FALLBACK=true or DATABASE_URL")
    return web.query


@api.get("/api/runs")
def get_runs() -> tuple[dict[str, Any], int, dict[str, str]]:
    """Runs newest first, filtered by status, company_id, user_id and creation time; paginated."""
    query = reader()
    return results.list_runs(query, results.parse_filter(request.args.to_dict())), 200, NO_STORE


@api.get("/api/runs/<run_id>")
def get_run(run_id: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    """One run: attempts, per-stage timings, error and LLM usage."""
    return results.show_run(reader(), run_id), 200, NO_STORE


@api.get("/api/pipeline/<run_id>/report")
def get_report(run_id: str) -> Response:
    """The report of a COMPLETED run as text/markdown."""
    markdown = results.read_report(reader(), run_id)
    return Response(markdown, 200, {"Content-Type": "text/markdown; charset=utf-8", **NO_STORE})


@api.get("/api/pipeline/<run_id>/opportunities")
def get_opportunities(run_id: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    """The five opportunity cards of stage 5 as JSON."""
    return results.read_opportunities(reader(), run_id), 200, NO_STORE


@api.get("/api/pipeline/<run_id>/stages/<int:stage>")
def get_stage(run_id: str, stage: int) -> tuple[dict[str, Any], int, dict[str, str]]:
    """One finished stage's output."""
    return results.read_stage(reader(), run_id, stage), 200, NO_STORE
