"""Operator routes: ``GET /metrics`` (bearer API_TOKEN) and ``GET /openapi.json`` (no auth)."""

from __future__ import annotations

from typing import Any, cast

from flask import Blueprint, Response, current_app, request

from handlers import openapi
from handlers.metrics import CONTENT_TYPE, WebMetrics
from handlers.routes import NO_STORE, require_bearer, services

ops = Blueprint("ops", __name__)


def web_metrics() -> WebMetrics:
    """The current app's metrics."""
    return cast(WebMetrics, current_app.extensions["metrics"])


@ops.get("/metrics")
def get_metrics() -> Response:
    """Prometheus text exposition of the runner's figures."""
    require_bearer(services().settings.api_token)
    return Response(web_metrics().render(), 200, {"Content-Type": CONTENT_TYPE, **NO_STORE})


@ops.get("/openapi.json")
def get_openapi() -> tuple[dict[str, Any], int]:
    """The API description; public, like any API reference."""
    return openapi.document(), 200


def count_webhook_answer(response: Response) -> Response:
    """after_request: count every answer to POST /run by status (errors included)."""
    if request.endpoint == "runs.post_run":
        web_metrics().webhook_responses.labels(code=str(response.status_code)).inc()
    return response
