"""``python -m handlers.callbacks``: the host's callback deliverer, one per state folder.

Started by the web process's start-up hook when CALLBACK_URL is set (handlers.launcher),
stopped with it. Every POLL_SECONDS it delivers what is due; on SIGTERM it finishes the
current attempt and exits. A second one on the same host exits at once (a ``flock``);
replicas share the outbox safely through leases. ``python -m handlers.cron callbacks`` is
the backstop that delivers what is due when no web process runs.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import threading

from config.errors import RunnerError
from config.log import configure_logging, get_logger
from config.settings import Settings
from handlers.callbacks.deliver import RetryPolicy, deliver_due
from persistence import atomic
from persistence.outbox.factory import build_outbox

log = get_logger("handlers.callbacks")
POLL_SECONDS = 1.0
LOCK_FILE = "callbacks.lock"
PID_FILE = "callbacks.pid"


def serve(settings: Settings, policy: RetryPolicy | None = None) -> int:
    """Deliver until SIGTERM; 0 when another deliverer already serves this host."""
    atomic.ensure_dir(settings.state_dir)
    with open(settings.state_dir / LOCK_FILE, "a+b") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("callback_deliverer_already_running")
            return 0
        (settings.state_dir / PID_FILE).write_text(str(os.getpid()))
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        outbox = build_outbox(settings)
        owner = f"{socket.gethostname()}/{os.getpid()}"
        log.info("callback_deliverer_started", owner=owner)
        try:
            while not stop.is_set():
                try:
                    report = deliver_due(settings, outbox, owner, policy or RetryPolicy())
                except (RunnerError, OSError) as exc:  # the database or the disk: try again next tick
                    code = exc.code if isinstance(exc, RunnerError) else type(exc).__name__
                    log.error("callback_delivery_pass_failed", error=str(exc), code=code)
                else:
                    if report.delivered or report.retried or report.given_up:
                        continue  # more may be due right away
                stop.wait(POLL_SECONDS)
        finally:
            outbox.close()  # its pool's threads stop now, not in a finalizer at exit
        log.info("callback_deliverer_stopped", owner=owner)
        (settings.state_dir / PID_FILE).unlink(missing_ok=True)
        return 0


def main() -> int:
    """Entry point: settings from the environment; exits 2 on a configuration error."""
    try:
        settings = Settings.from_env()
    except RunnerError as exc:
        print(exc.message)
        return 2
    configure_logging(settings.log_level)
    if not settings.callback_url:
        log.info("callback_deliverer_not_needed", reason="CALLBACK_URL is not set")
        return 0
    return serve(settings)
