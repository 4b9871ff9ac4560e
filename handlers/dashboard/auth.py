"""The dashboard's login, session cookie and CSRF protection.

The operator logs in with API_TOKEN (and, optionally, a name that is logged with each action).
The session is Flask's signed cookie: ``Secure``, ``HttpOnly``, ``SameSite=Strict``, scoped to
/dashboard, valid for SESSION_HOURS; its signing key is derived from API_TOKEN, so rotating the
token logs everyone out. Every form carries the session's CSRF token, checked on each POST
together with the Origin header when the browser sends one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from urllib.parse import urlsplit

from flask import Flask, Request, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from werkzeug.exceptions import BadRequest, Forbidden

SESSION_HOURS = 12
MAX_NAME = 64


class DashboardSessions(SecureCookieSessionInterface):
    """Sessions under /dashboard only: the webhook and the APIs never read or sign a cookie."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        """The signed-cookie session on a dashboard path; elsewhere the null session (never saved)."""
        if not request.path.startswith("/dashboard"):
            return None  # Flask then uses make_null_session and skips save_session
        return super().open_session(app, request)


def configure_sessions(app: Flask, api_token: str | None) -> None:
    """Cookie settings and the signing key; without API_TOKEN there is no login at all."""
    app.session_interface = DashboardSessions()
    app.config.update(
        SESSION_COOKIE_NAME="runner_dashboard", SESSION_COOKIE_SECURE=True, SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_PATH="/dashboard",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS))
    if api_token:
        # A derived key, never the token itself: the cookie's signature cannot reveal the token.
        app.secret_key = hmac.new(api_token.encode(), b"runner-dashboard-session-v1", hashlib.sha256).hexdigest()


def csrf_token() -> str:
    """This session's CSRF token (created on first use)."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return str(token)


def check_csrf() -> None:
    """403 unless the form's csrf_token matches the session's and the Origin (if sent) is ours."""
    origin = request.headers.get("Origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.host:
        raise Forbidden("cross-origin form posts are refused")
    sent = request.form.get("csrf_token", "")
    expected = session.get("csrf", "")
    if not expected or not hmac.compare_digest(sent.encode(), str(expected).encode()):
        raise Forbidden("the form has expired or did not come from this dashboard: reload the page and retry")


def log_in(api_token: str, given: str, name: str) -> bool:
    """Start a session when ``given`` is API_TOKEN; False otherwise."""
    if not hmac.compare_digest(given.encode(), api_token.encode()):
        return False
    clean = "".join(ch for ch in name.strip() if ch.isprintable())[:MAX_NAME]
    session.clear()
    session.permanent = True
    session["operator"] = clean or "operator"
    session["csrf"] = secrets.token_urlsafe(32)  # a fresh token per session (no fixation)
    return True


def operator() -> str | None:
    """Who is logged in, or None."""
    name = session.get("operator")
    return str(name) if name else None


def require_name(value: str) -> str:
    """A login form's name field, bounded; BadRequest when absurd."""
    if len(value) > 1024:
        raise BadRequest("the name is too long")
    return value
