"""A run's process, forked by the dispatcher: fresh at a claim, or a spare forked ahead of one.

A fresh fork pays, between the claim and its first stage, for the fork itself, for its own
adapters (in DATABASE_ONLY and DUAL_WRITE a new connection to a new PostgreSQL backend, whose
first statements load its catalogue caches) and for the copy-on-write faults of whatever it
touches first. A **spare** pays all of that before any run exists: the dispatcher forks it while
idle, it builds its adapters, reads a run that does not exist (opening and warming the
connection) and rehearses a run's document path on the loopback (pipeline.rehearsal: the first
fetch and gate in a forked process cost 2-3 times the next ones), then waits on a socket. A
claim handed to it starts its fetch at once; the dispatcher forks the next spare soon after.

Either way the process runs exactly one claimed attempt (``run_claim``) and exits with its code.
A spare that is never handed a claim exits 0 on EOF (the dispatcher closed its end), and with
EXIT_INTERRUPTED on SIGTERM while idle (see StopFlag). It never outlives the dispatcher
(PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import select
import signal
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from config.errors import RunnerError, Superseded
from config.log import copy_log_to, get_logger
from config.settings import Settings
from handlers.recovery import run_log_path
from handlers.watchdog import StageMarker, mark_path
from persistence.queue import Claim
from persistence.records import RunRequest

if TYPE_CHECKING:
    from pipeline.runner import RunServices

log = get_logger(__name__)

EXIT_INTERRUPTED = 75  # EX_TEMPFAIL: stopped between stages for a shutdown; resume later
EXIT_SUPERSEDED = 3  # a newer attempt owns the run: this process had nothing to do
PR_SET_PDEATHSIG = 1
_MAX_CLAIM_BYTES = 64 * 1024
SPARE_RETIRE_GRACE_S = 2.0


class StopFlag:
    """Set by SIGTERM: the run stops after its current stage. Before a claim, SIGTERM exits at once."""

    def __init__(self) -> None:
        self.requested = False
        self.running = False

    def on_sigterm(self, _signum: int, _frame: object) -> None:
        """The SIGTERM handler."""
        if not self.running:
            # A spare with no run yet: nothing to save. "Interrupted", not 0: if a claim was on
            # its way, the dispatcher requeues that run at once instead of waiting for its lease.
            os._exit(EXIT_INTERRUPTED)
        self.requested = True


def become_run_process(inherited: Iterable[socket.socket | None]) -> StopFlag:
    """Detach from the dispatcher in a just-forked child: own session, signals, no inherited sockets."""
    os.setsid()
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # never outlive the dispatcher
    signal.set_wakeup_fd(-1)
    stop = StopFlag()
    signal.signal(signal.SIGTERM, stop.on_sigterm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for sock in inherited:
        if sock is not None:
            sock.close()
    return stop


def build_services(settings: Settings) -> RunServices:
    """Fresh adapters: the parent's database connection must never be used from two processes."""
    from pipeline.bootstrap import bootstrap  # the dispatcher imports the stack after its lock

    return bootstrap(settings, quiet=True).services


def run_claim(settings: Settings, services: RunServices, claim: Claim, stop: StopFlag) -> int:
    """Run one claimed attempt in this process; returns the process's exit code."""
    from pipeline.runner import execute_run, start_document

    stop.running = True
    # From the claim itself: the run's fetch starts first, and the rest below overlaps it. The
    # run's own log file (its last lines, quoted if it dies) may therefore miss the fetch's
    # first line; stdout has every line.
    prefetched = start_document(services, claim.request, claim.attempt) if claim.request else None
    copy_log_to(run_log_path(settings, claim.run_id))
    try:
        request = claim.request
        if request is None:
            state = services.store.get_run(claim.run_id)
            if state is None:
                log.error("run_missing", run_id=claim.run_id)
                return 1
            request = state.request
        marker = StageMarker(mark_path(settings, claim.run_id), claim.attempt)  # the watchdog's clock
        outcome = execute_run(services, request, attempt=claim.attempt, progress=marker,
                              should_stop=lambda: stop.requested, claimed=True, prefetched=prefetched)
    except Superseded as exc:
        log.warning("attempt_superseded", run_id=claim.run_id, attempt=claim.attempt, error=str(exc))
        return EXIT_SUPERSEDED
    finally:
        services.store.close()
    if outcome.interrupted:
        return EXIT_INTERRUPTED
    run_log_path(settings, claim.run_id).unlink(missing_ok=True)
    return 0


# -- spares ------------------------------------------------------------------------------------

@dataclass
class Spare:
    """A forked run process waiting for a claim on ``channel`` (the dispatcher's end)."""

    pid: int
    channel: socket.socket

    def hand(self, claim: Claim) -> bool:
        """Give the spare ``claim``; False if it is gone (the caller forks a fresh process instead)."""
        request = claim.request.as_dict() if claim.request is not None else None
        payload = json.dumps({"run_id": claim.run_id, "attempt": claim.attempt, "request": request})
        try:
            self.channel.sendall(payload.encode() + b"\n")
            return True
        except OSError:  # it died before the claim reached it: EPIPE or ECONNRESET
            return False
        finally:
            self.channel.close()

    def dismiss(self) -> None:
        """Close the dispatcher's end: an idle spare exits 0 on EOF."""
        self.channel.close()

    def retire(self, grace_seconds: float = SPARE_RETIRE_GRACE_S) -> int | None:
        """Stop the idle spare and reap it; its exit code, or None if it was already reaped.

        A stopping dispatcher calls this so that no child of its exits after it has given up
        its signal wake-up socket. SIGTERM ends an idle spare at once, even one still warming up
        against a database that does not answer; SIGKILL follows after ``grace_seconds``.
        """
        self.dismiss()
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:  # exited and already reaped
            return None
        deadline = time.monotonic() + grace_seconds
        while True:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return None
            if pid:
                return os.waitstatus_to_exitcode(status)
            if time.monotonic() >= deadline:
                os.kill(self.pid, signal.SIGKILL)
                return os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
            time.sleep(0.01)  # a shutdown path: a short poll is simpler than a SIGCHLD wait here


def fork_spare(settings: Settings, inherited: Iterable[socket.socket | None],
               on_crash: Callable[[], None]) -> Spare:
    """Fork a spare run process (see the module docstring); the parent gets its pid and channel."""
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the spare: never returns
        code = 1
        try:
            ours.close()
            code = _spare_main(settings, [*inherited], theirs)
        except BaseException:
            on_crash()
        finally:
            os._exit(code)
    theirs.close()
    return Spare(pid, ours)


def _spare_main(settings: Settings, inherited: list[socket.socket | None], channel: socket.socket) -> int:
    stop = become_run_process(inherited)
    services = build_services(settings)
    _warm(settings, services, channel)
    claim = _receive(channel)
    channel.close()
    if claim is None:
        services.store.close()
        return 0
    return run_claim(settings, services, claim, stop)


def _warm(settings: Settings, services: RunServices, channel: socket.socket) -> None:
    """Open the store's connection and load the backend's caches by reading a run that does not
    exist; then, unless a claim is already waiting, rehearse a run's document path
    (pipeline.rehearsal) so that the pages it touches are this process's before the run needs them."""
    nobody = f"spare-warmup-{secrets.token_hex(6)}"
    try:
        services.store.get_run(nobody)
        services.store.load_stage_outputs(nobody)
    except (RunnerError, OSError) as exc:  # the run will meet (and report) the same trouble itself
        log.info("spare_warmup_skipped", step="store", reason=str(exc))
    if select.select([channel], [], [], 0)[0]:
        return  # a claim (or EOF) is here: the rehearsal would only delay it
    from pipeline.rehearsal import rehearse_document_path  # the stack, imported after the host lock

    try:
        rehearse_document_path(settings)
    except (RunnerError, OSError) as exc:  # a slower first fetch, nothing worse: the run still runs
        log.info("spare_warmup_skipped", step="document", reason=str(exc))


def _receive(channel: socket.socket) -> Claim | None:
    """The claim the dispatcher hands over, or None at EOF (dismissed)."""
    data = b""
    while not data.endswith(b"\n") and len(data) < _MAX_CLAIM_BYTES:
        chunk = channel.recv(4096)
        if not chunk:
            return None
        data += chunk
    message = json.loads(data)
    request = RunRequest(**message["request"]) if message["request"] is not None else None
    return Claim(message["run_id"], int(message["attempt"]), request)
