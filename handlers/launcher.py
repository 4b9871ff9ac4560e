"""How the web process hands an accepted run to the host's dispatcher, and keeps one running.

``RunLauncher`` is the port the webhook route calls after recording a run. In production it is
``DispatcherLauncher``: a datagram wakes ``python -m handlers.dispatcher`` (the fork server that
runs one subprocess per run). gunicorn's master starts the dispatcher when it is ready and
stops it on exit (``start_host_services`` / ``stop_host_services``, called from
handlers/gunicorn.conf.py). If the dispatcher died, the next webhook starts a new one: its host
lock makes a second one harmless. A lost wake-up costs only latency: the dispatcher also polls.

With RUN_DISPATCH=workers the web host runs no run at all: ``QueueLauncher`` leaves the recorded
run QUEUED in PostgreSQL for the worker service (``python -m handlers.dispatcher`` on other
hosts, which poll the queue), and the host's own dispatcher starts with ``--no-claims``: it
only replays this host's spool and recovers lapsed leases.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from typing import Any, Protocol

from config.log import get_logger
from config.modes import Mode
from config.settings import APP_DIR, Settings
from handlers import dispatch_socket
from persistence import atomic

log = get_logger(__name__)


class RunLauncher(Protocol):
    """Starts a recorded run. Calling notify twice for one run must never execute it twice."""

    def notify(self, run_id: str) -> None:
        """Tell the executor that ``run_id`` is recorded and waiting (QUEUED)."""


class NullLauncher:
    """A launcher that starts nothing: for in-process tests of the HTTP surface alone."""

    def notify(self, run_id: str) -> None:
        """Do nothing."""


class QueueLauncher:
    """RUN_DISPATCH=workers: the recorded run waits in the PostgreSQL queue for a worker to claim it."""

    def notify(self, run_id: str) -> None:
        """Nothing to do: workers poll the queue (claims make a repeated delivery harmless)."""


def launcher_for(settings: Settings) -> RunLauncher:
    """The launcher of this deployment shape: the host's dispatcher, or the workers' queue."""
    return QueueLauncher() if settings.run_dispatch == "workers" else DispatcherLauncher(settings)


def dispatcher_argv(settings: Settings) -> list[str]:
    """The command of this host's dispatcher: it claims runs unless runs execute on workers."""
    argv = [sys.executable, "-m", "handlers.dispatcher"]
    return [*argv, "--no-claims"] if settings.run_dispatch == "workers" else argv


class DispatcherLauncher:
    """Hands accepted runs to the host's dispatcher (claims make repeats harmless)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.saturation = dispatch_socket.saturation(settings.state_dir)

    def notify(self, run_id: str) -> None:
        """Wake the dispatcher for ``run_id``, starting one if none is alive; not while it is full."""
        if self.saturation.full():
            # Every slot is taken: a wake-up could start nothing. The dispatcher said so before
            # it last claimed, so this run (recorded before we looked) is claimed as a slot frees.
            return
        if dispatch_socket.notify(self.settings, run_id):
            return
        log.warning("dispatcher_unreachable", run_id=run_id, action="starting a dispatcher")
        ensure_dispatcher(self.settings)


SPAWN_BACKOFF_S = 5.0  # a dispatcher takes a moment to start: one spawn per host in that time


def ensure_dispatcher(settings: Settings, *, throttle: bool = True) -> bool:
    """Start ``python -m handlers.dispatcher`` unless one holds this state folder; True if started.

    With ``throttle`` (webhook workers), spawns are limited host-wide to one per
    SPAWN_BACKOFF_S, so a burst of webhooks during a dispatcher's start-up starts one process,
    not one per webhook. gunicorn's start-up hook spawns without it.
    """
    if dispatch_socket.dispatcher_alive(settings):
        return False
    atomic.ensure_dir(settings.state_dir)
    with open(settings.state_dir / "dispatcher.spawned", "a+b") as marker:
        fcntl.flock(marker, fcntl.LOCK_EX)
        last = os.fstat(marker.fileno())
        if throttle and last.st_size and time.time() - last.st_mtime < SPAWN_BACKOFF_S:
            return False
        marker.write(b".")  # the write moves the file's mtime: the time of this spawn
        marker.flush()
        process = subprocess.Popen(dispatcher_argv(settings), cwd=APP_DIR)
    log.info("dispatcher_spawned", pid=process.pid, throttled=throttle, claims=settings.run_dispatch == "local")
    return True


def stop_dispatcher(settings: Settings, *, grace_seconds: float) -> bool:
    """Ask the dispatcher to drain (SIGTERM) and wait up to ``grace_seconds``; True once it let go."""
    pid = dispatch_socket.dispatcher_pid(settings)
    if pid is None:
        return True
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and dispatch_socket.dispatcher_alive(settings):
        time.sleep(0.05)
    stopped = not dispatch_socket.dispatcher_alive(settings)
    log.info("dispatcher_stop_requested", pid=pid, stopped=stopped)
    return stopped


def start_host_services(server: Any) -> None:
    """gunicorn ``when_ready``: start the host's dispatcher (which recovers orphaned runs first),
    and the callback deliverer when CALLBACK_URL is set."""
    settings = Settings.from_env()
    if settings.mode is Mode.INVALID:
        log.error("dispatcher_not_started", reason="mode INVALID: nothing would be saved")
        return
    ensure_dispatcher(settings, throttle=False)
    if settings.callback_url:
        process = subprocess.Popen([sys.executable, "-m", "handlers.callbacks"], cwd=APP_DIR)
        log.info("callback_deliverer_spawned", pid=process.pid)


def stop_host_services(server: Any) -> None:
    """gunicorn ``on_exit``: drain the dispatcher within RAILWAY_DEPLOYMENT_DRAINING_SECONDS,
    and stop the callback deliverer (what it has not sent stays in the outbox)."""
    settings = Settings.from_env()
    stop_dispatcher(settings, grace_seconds=max(1.0, settings.draining_seconds))
    stop_callback_deliverer(settings)


def stop_callback_deliverer(settings: Settings) -> None:
    """SIGTERM the host's callback deliverer, if one runs; it finishes its current attempt."""
    lock_file, pid_file = settings.state_dir / "callbacks.lock", settings.state_dir / "callbacks.pid"
    if not lock_file.exists():
        return
    with open(lock_file, "a+b") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # held: a deliverer runs, and the pid file names it
        else:
            return  # nobody holds it: a leftover pid file must not make us signal a stranger
    try:
        os.kill(int(pid_file.read_text()), signal.SIGTERM)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return
