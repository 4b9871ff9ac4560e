"""The operator dashboard at /dashboard: server-rendered Jinja pages, no frontend build step.

    GET  /dashboard                    runs with filters, live refresh, and the host panel
    GET  /dashboard/runs/<run_id>      one run: stage timeline, error, usage and cost, actions
    GET  /dashboard/fragments/…        the parts the pages refresh every few seconds
    POST /dashboard/runs/<id>/retry    retry a FAILED run        (CSRF-checked)
    POST /dashboard/runs/<id>/cancel   cancel a QUEUED/PROCESSING run (CSRF-checked)
    GET/POST /dashboard/login, POST /dashboard/logout

Reads go through the mode's RunQuery; actions through the same service the HTTP API and
the CLI use, logged with the operator's name.
"""

from handlers.dashboard.routes import dashboard

__all__ = ["dashboard"]
