"""Gunicorn settings for the web process: ``gunicorn -c handlers/gunicorn.conf.py "handlers.app:create_app()"``.

Read from the environment here, at the edge, because gunicorn loads this file before any app
exists: PORT, WEB_CONCURRENCY, LOG_LEVEL, RAILWAY_DEPLOYMENT_DRAINING_SECONDS and
FORWARDED_ALLOW_IPS (the worker, handlers/web_worker.py, reads WEB_READ_TIMEOUT_SECONDS).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from gunicorn import glogging

# gunicorn execs this file before it puts the working directory on sys.path; the app root must
# be importable for the logger class below whatever directory gunicorn was started from.
APP_ROOT = str(Path(__file__).resolve().parent.parent)
if APP_ROOT not in sys.path:
    sys.path.insert(0, APP_ROOT)

from config.log import configure_logging, info_line  # noqa: E402  (needs the path above)

LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"

# Dual-stack listener: Railway's private network is IPv6-only, its public edge reaches us over IPv4.
bind = [f"[::]:{os.environ.get('PORT', '8000').strip() or '8000'}"]
# gthread whose event loop buffers each request before a thread sees it: slow or idle clients
# cost a socket, never a thread, and get a JSON 408 after WEB_READ_TIMEOUT_SECONDS.
worker_class = "handlers.web_worker.FrontedThreadWorker"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = 8
timeout = 30
# Railway sends SIGTERM, then SIGKILL after the draining period: finish requests within it.
graceful_timeout = int(os.environ.get("RAILWAY_DEPLOYMENT_DRAINING_SECONDS", "30") or "30")
# Peers whose X-Forwarded-*/X-Real-IP headers are believed. Railway documents the headers its
# edge sets (X-Real-IP, X-Forwarded-Proto: https) but no address range for the edge, so by
# default nobody is trusted and the access log shows the TCP peer. An operator who knows the
# proxy's range can list it (comma-separated addresses or networks).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "").strip()
# Memory, not disk, where there is one: the heartbeat and the metrics files below live there.
SHM_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else None
# The worker heartbeat file on a tmpfs: a slow or full disk must not make the arbiter kill workers.
if SHM_DIR:
    worker_tmp_dir = SHM_DIR
# No runtime control socket: nothing here uses gunicornc, and parallel test servers would
# otherwise fight over the same $HOME/.gunicorn/gunicorn.ctl.
control_socket_disable = True
loglevel = LOG_LEVEL.lower()
# /metrics sums per-process counters over every worker (prometheus_client's multiprocess mode):
# a fresh folder per server, chosen before any worker imports the library, and removed on exit.
# On a tmpfs, like the heartbeat: the library maps sparse files, and the first write to a new
# page of one on a full disk is a SIGBUS that kills the worker (tests/e2e/test_full_disk_http.py).
METRICS_DIR: str | None = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    METRICS_DIR = tempfile.mkdtemp(prefix="runner-metrics-", dir=SHM_DIR)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = METRICS_DIR


class JsonLogger(glogging.Logger):
    """Gunicorn's error and access logs as one JSON object per line on stdout, via config.log."""

    def setup(self, cfg: Any) -> None:
        """Route gunicorn.error and gunicorn.access through the root handler configured by config.log."""
        self.cfg = cfg
        self._access_log_enabled = True
        self.loglevel = self.LOG_LEVELS.get(cfg.loglevel.lower(), logging.INFO)
        configure_logging(LOG_LEVEL)
        for log in (self.error_log, self.access_log):
            log.handlers.clear()
            log.propagate = True
        self.error_log.setLevel(self.loglevel)
        self.access_log.setLevel(logging.INFO)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        """One line per request: method, path (no query string), status, duration, client; no headers."""
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        extra = environ.get("runner.access_log_fields") or {}  # set by POST /run: run id and outcome
        info_line(  # the chain's line at a third of its cost: one per request
            "gunicorn.access", "request",
            method=environ.get("REQUEST_METHOD"),
            path=environ.get("PATH_INFO"),
            status=int(status) if str(status).isdigit() else status,
            duration_ms=round(request_time.total_seconds() * 1000, 1),
            remote_addr=client_address(environ, self.cfg.forwarded_allow_ips),
            bytes=getattr(resp, "sent", None),
            **extra,
        )


def client_address(environ: dict[str, Any], trusted: list[str]) -> str | None:
    """The TCP peer, or the X-Real-IP Railway's edge sets when the peer is a trusted proxy."""
    peer = environ.get("REMOTE_ADDR")
    if peer and peer.startswith("::ffff:"):  # the dual-stack listener reports IPv4 peers mapped
        peer = peer.removeprefix("::ffff:")
    real = (environ.get("HTTP_X_REAL_IP") or "").strip()
    if not peer or not real or not _trusted(peer, trusted):
        return peer
    return real


def _trusted(peer: str, trusted: list[str]) -> bool:
    """True if ``peer`` is listed in FORWARDED_ALLOW_IPS (an address, a network, or ``*``)."""
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    for entry in trusted:
        if entry.strip() == "*":
            return True
        try:
            if address in ipaddress.ip_network(entry.strip(), strict=False):
                return True
        except ValueError:
            continue
    return False


logger_class = JsonLogger


# ---- host services: the launcher's per-host start/stop (run dispatch, recovery) -------------
def when_ready(server: Any) -> None:
    """Gunicorn hook: the arbiter is listening; start the per-host services."""
    from handlers.launcher import start_host_services  # imported late: the config is read before the app

    start_host_services(server)


def child_exit(server: Any, worker: Any) -> None:
    """Gunicorn hook: a worker exited; its live gauges no longer count (counters are kept)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def worker_exit(server: Any, worker: Any) -> None:
    """Gunicorn hook, in the worker as it stops: close the app's pools while their threads can still stop."""
    from handlers.app import close_app

    if worker.pid == os.getpid():  # the arbiter calls it too, for a worker that is already gone
        close_app(vars(worker).get("wsgi"))  # None when the app never loaded


def on_exit(server: Any) -> None:
    """Gunicorn hook: the arbiter is exiting; stop the per-host services."""
    from handlers.launcher import stop_host_services

    stop_host_services(server)
    if METRICS_DIR is not None:  # ours (not one the operator chose): nothing reads it after the server
        shutil.rmtree(METRICS_DIR, ignore_errors=True)
# ---- end host services ------------------------------------------------------------------------
