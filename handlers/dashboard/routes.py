"""The dashboard's routes (see the package docstring)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for
from werkzeug.exceptions import Unauthorized

from config.errors import Conflict, NotFound, RunnerError, StoreError
from config.log import get_logger
from handlers import dispatch_socket
from handlers.dashboard import auth
from handlers.health import check_health, probe_for
from handlers.routes import WebServices, services
from handlers.runs import actions, results
from persistence import factory
from persistence.query.ports import RunQuery
from persistence.records import STAGE_NAMES, STAGE_NUMBERS, RunStatus

log = get_logger(__name__)
dashboard = Blueprint("dashboard", __name__, template_folder="templates")
F = TypeVar("F", bound=Callable[..., Any])
PAGE_HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
                                           "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"}


def logged_in(view: F) -> F:
    """Send visitors without a session to the login page (fragments answer 401 instead)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if auth.operator() is None:
            if request.path.startswith("/dashboard/fragments/"):
                raise Unauthorized("the dashboard session has ended: log in again")
            return redirect(url_for("dashboard.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return cast(F, wrapper)


def page(template: str, **context: Any) -> Response:
    """A rendered page with the dashboard's security headers."""
    return Response(render_template(template, operator=auth.operator(), csrf=auth.csrf_token(),
                                    stage_names=STAGE_NAMES, statuses=[str(s) for s in RunStatus], **context),
                    200, PAGE_HEADERS)


def reader(web: WebServices) -> RunQuery:
    """The run reader; NotFound-free ConfigError paths render as the error handler's JSON."""
    web.settings.require_runnable()
    assert web.query is not None  # require_runnable() passed: create_app built a query
    return web.query


def panel(web: WebServices) -> dict[str, Any]:
    """Mode, breaker, spool backlog, schema state and queue depth for the host panel."""
    probe = probe_for(current_app._get_current_object(), web.database)  # type: ignore[attr-defined]
    body = check_health(web.settings, probe, breaker_state=factory.breaker_state,
                        spool_backlog=factory.spool_backlog).body
    try:
        queued: int | str = reader(web).stats().by_status.get("QUEUED", 0)
    except StoreError:
        queued = "unavailable"
    return {"status": body["status"], "mode": body["mode"], "circuit": body["circuit"],
            "spool_backlog": body["spool_backlog"], "schema": body["schema"],
            "database": body["database_connection"], "queue_depth": queued}


def _filters() -> dict[str, str]:
    return {k: v for k, v in request.args.items() if k in results.FILTER_NAMES and v}


# -- login ---------------------------------------------------------------------------------------


@dashboard.get("/dashboard/login")
def login() -> Response:
    """The login form."""
    return page("dashboard/login.html", error=None, next=request.args.get("next", ""))


@dashboard.post("/dashboard/login")
def login_post() -> Response:
    """Check API_TOKEN and start a session; the same form again with an error otherwise."""
    auth.check_csrf()
    token = services().settings.api_token
    if not token:
        return page("dashboard/login.html", error="The dashboard is not configured: set API_TOKEN.", next="")
    name = auth.require_name(request.form.get("name", ""))
    if not auth.log_in(token, request.form.get("token", ""), name):
        log.warning("dashboard_login_refused", remote_addr=request.remote_addr)
        return page("dashboard/login.html", error="That token is not the API_TOKEN.", next="")
    log.info("dashboard_login", operator=auth.operator(), remote_addr=request.remote_addr)
    target = request.form.get("next", "")
    # Only our own pages: an open redirect would hand the session to another site.
    return cast(Response, redirect(target if target.startswith("/dashboard") else url_for("dashboard.runs")))


@dashboard.post("/dashboard/logout")
@logged_in
def logout() -> Response:
    """End the session."""
    auth.check_csrf()
    log.info("dashboard_logout", operator=auth.operator())
    from flask import session

    session.clear()
    return cast(Response, redirect(url_for("dashboard.login")))


# -- pages and fragments ---------------------------------------------------------------------------


@dashboard.get("/dashboard")
@logged_in
def runs() -> Response:
    """Runs with filters, the host panel, live refresh."""
    web = services()
    try:
        listing = results.list_runs(reader(web), results.parse_filter(_filters()))
        error = None
    except RunnerError as exc:
        listing, error = {"runs": [], "next_cursor": None}, exc.message
    return page("dashboard/runs.html", listing=listing, filters=_filters(), panel=panel(web), error=error)


@dashboard.get("/dashboard/fragments/runs")
@logged_in
def runs_fragment() -> Response:
    """The table rows and the panel, re-fetched by the page every few seconds."""
    web = services()
    listing = results.list_runs(reader(web), results.parse_filter(_filters()))
    return page("dashboard/_runs_live.html", listing=listing, filters=_filters(), panel=panel(web))


def _run_context(run_id: str) -> dict[str, Any]:
    run = results.show_run(reader(services()), run_id)
    timings = {s["stage"]: s for s in run.get("stages", [])}
    longest = max((s["duration_ms"] or 0 for s in timings.values()), default=0) or 1
    timeline = []
    for number in STAGE_NUMBERS:
        timing = timings.get(number)
        state = ("completed" if timing else "running" if run["current_stage"] == number
                 else "failed" if (run["error"] or {}).get("stage") == number and run["status"] == "FAILED"
                 else "pending")
        width = round(100 * (timing["duration_ms"] or 0) / longest) if timing else 0
        timeline.append({"stage": number, "name": STAGE_NAMES[number], "state": state, "timing": timing,
                         "width": max(width, 2) if timing else 0})
    return {"run": run, "timeline": timeline,
            "can_retry": run["status"] == "FAILED", "can_cancel": run["status"] in ("QUEUED", "PROCESSING")}


@dashboard.get("/dashboard/runs/<run_id>")
@logged_in
def run_page(run_id: str) -> Response:
    """One run: stage timeline, error, usage and cost, retry and cancel."""
    try:
        context = _run_context(run_id)
    except NotFound as exc:
        return page("dashboard/missing.html", message=exc.message)
    return page("dashboard/run.html", notice=request.args.get("notice"), **context)


@dashboard.get("/dashboard/fragments/runs/<run_id>")
@logged_in
def run_fragment(run_id: str) -> Response:
    """The run's live part."""
    return page("dashboard/_run_live.html", **_run_context(run_id))


@dashboard.post("/dashboard/runs/<run_id>/retry")
@logged_in
def retry(run_id: str) -> Response:
    """Retry from the run's page; back to it with a notice (or the reason it was refused)."""
    auth.check_csrf()
    web = services()
    return _act(run_id, lambda: actions.retry_run(web.writable_store(), web.launcher.notify, run_id,
                                                  asked_by=f"dashboard:{auth.operator()}"), "Retry queued.")


@dashboard.post("/dashboard/runs/<run_id>/cancel")
@logged_in
def cancel(run_id: str) -> Response:
    """Cancel from the run's page."""
    auth.check_csrf()
    web = services()
    settings = web.settings
    return _act(run_id, lambda: actions.cancel_run(web.writable_store(),
                                                   lambda rid: dispatch_socket.notify(settings, rid), run_id,
                                                   asked_by=f"dashboard:{auth.operator()}"), "Run cancelled.")


def _act(run_id: str, action: Callable[[], object], done: str) -> Response:
    try:
        action()
        notice = done
    except Conflict as exc:
        notice = f"Refused: {exc.message}"
    # Post/redirect/get: a reload never repeats the action.
    return cast(Response, redirect(url_for("dashboard.run_page", run_id=run_id, notice=notice)))
