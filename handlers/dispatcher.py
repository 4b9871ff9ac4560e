"""The host's run dispatcher: a fork server that starts one subprocess per run.

``python -m handlers.dispatcher`` (started by the web process, see handlers/launcher.py):

* one per state folder, held by an exclusive ``flock`` taken before the heavy imports (one
  standby may wait while an old dispatcher drains; any other exits at once);
* the pipeline stack is imported once here, so a run's process is a ``fork()`` that starts
  its first stage within milliseconds instead of paying ~300 ms of imports; while a slot is
  free, one **spare** run process is forked ahead of the next claim and has its adapters (and
  database connection) ready, so a claim is handed to it instead (handlers/run_process.py);
* each child runs in its own session, dies with the dispatcher (PR_SET_PDEATHSIG), and runs
  exactly one claimed attempt; at most MAX_CONCURRENT_RUNS at once, the rest stay QUEUED;
* leases are renewed by heartbeat for live children; a child that dies is requeued to resume
  from its last finished stage, or failed with its cause after MAX_RUN_ATTEMPTS;
* a child whose stage outlives STAGE_TIMEOUT_SECONDS is killed (handlers/watchdog.py) and
  retried, or failed with STAGE_TIMEOUT;
* on SIGTERM it stops claiming, asks children to stop after their current stage, and waits
  up to RAILWAY_DEPLOYMENT_DRAINING_SECONDS; interrupted runs go back to QUEUED.

As a worker service (RUN_DISPATCH=workers), ``python -m handlers.dispatcher`` is the service's
own process: any number of them, each on its own state folder, claim from the one PostgreSQL
queue (SKIP LOCKED, leases, attempt fencing). The web host then starts its own with
``--no-claims``: it only replays the host's spool and recovers lapsed leases, and never runs a run.

The loop is single-threaded on purpose: forking a process that has threads is unsafe.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass
from typing import IO

from config.errors import RunnerError
from config.log import configure_logging, get_logger
from config.paths import RUN_ID_PATTERN
from config.settings import Settings
from handlers import dispatch_socket
from handlers.child_stopper import ChildStopper
from handlers.recovery import ReapReport, reap, recover_run
from handlers.run_process import (
    EXIT_INTERRUPTED,
    EXIT_SUPERSEDED,
    Spare,
    become_run_process,
    build_services,
    fork_spare,
    run_claim,
)
from handlers.watchdog import Watchdog
from persistence import atomic
from persistence.queue import Claim
from persistence.records import RunStatus

log = get_logger(__name__)

REPLAY_EVERY_S = 30.0
REPLAY_MAX_RECORDS = 2_000  # per tick: the loop must get back to heartbeats and claims
POLL_SECONDS = 1.0
SPARE_AFTER_HANDOFF_S = 0.05  # the next spare: once the run just handed off has started (~10 ms), not mid-claim
SPARE_AFTER_CRASH_S = 5.0  # a spare that dies idle is replaced, but never in a tight loop


@dataclass
class Child:
    """A run subprocess and the claim it executes."""

    claim: Claim
    started: float


def state_identity(settings: Settings) -> str:
    """A random id kept in the state folder: the same across restarts on one volume, new per container."""
    path = settings.state_dir / "host-id"
    if not path.exists():
        atomic.write_bytes(path, secrets.token_hex(6).encode())
    return path.read_text().strip()


class Dispatcher:
    """Claims runs and forks one child per run; see the module docstring."""

    def __init__(self, settings: Settings, *, claims: bool = True) -> None:
        # The fork server's preload: everything a run needs is imported and parsed once here,
        # so a forked run starts its first stage without paying for it.
        import pipeline.fetch  # noqa: F401  (a run fetches its document first)
        import pipeline.rehearsal  # noqa: F401  (each spare rehearses that fetch)
        from pipeline.bootstrap import bootstrap
        from pipeline.brands import load_all_brands

        self.settings = settings
        self.claims = claims  # False on a web host whose runs execute on worker services
        self.app = bootstrap(settings)
        load_all_brands(settings.brands_dir)
        self.store = self.app.persistence.store
        self.replayable = self.app.persistence.replayable
        self.identity = state_identity(settings)
        self.owner = f"{self.identity}/{os.getpid()}-{int(time.time() * 1000)}"
        self.children: dict[int, Child] = {}
        self.stopper = ChildStopper()  # cancelled or superseded runs: SIGTERM, then SIGKILL after a grace
        self.watchdog = Watchdog(settings)
        self.stopping = False
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = socket.socketpair()
        self.listener: socket.socket | None = None
        self.last_heartbeat = self.last_reap = self.last_replay = 0.0
        self.spare: Spare | None = None  # a run process forked ahead of the next claim
        self.spare_due = 0.0
        self.saturation = dispatch_socket.saturation(settings.state_dir)

    # -- lifecycle ---------------------------------------------------------------------------

    def serve(self) -> None:
        """Dispatch until SIGTERM, then drain. The caller holds the host lock (see main)."""
        atomic.write_bytes(dispatch_socket.pid_path(self.settings), str(os.getpid()).encode())
        self.listener = dispatch_socket.open_listener(self.settings)
        self.saturation.release()  # whatever an earlier dispatcher said last
        self._install_signals()
        log.info("dispatcher_started", owner=self.owner, max_concurrent_runs=self.settings.max_concurrent_runs,
                 lease_seconds=self.settings.run_lease_seconds, mode=str(self.settings.mode), claims=self.claims)
        self._recover(startup=True)
        while not self.stopping:
            self._tick()
        self._dismiss_spare()
        self.saturation.release()  # a stopping dispatcher claims nothing: webhooks find its socket gone
        self._drain()
        self._uninstall_signals()
        dispatch_socket.pid_path(self.settings).unlink(missing_ok=True)
        self.store.close()
        log.info("dispatcher_stopped", owner=self.owner)

    def _install_signals(self) -> None:
        self.wake_w.setblocking(False)
        self.wake_r.setblocking(False)
        signal.set_wakeup_fd(self.wake_w.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd sees it
        self.selector.register(self.wake_r, selectors.EVENT_READ, "signal")
        self.selector.register(self._listener(), selectors.EVENT_READ, "notify")

    def _uninstall_signals(self) -> None:
        """Give the wake-up socket back before closing it: a SIGCHLD from a child still draining
        would otherwise be written to a closed descriptor, and Python reports that on stderr."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.selector.close()
        self.wake_r.close()
        self.wake_w.close()

    def _listener(self) -> socket.socket:
        if self.listener is None:
            raise RuntimeError("the dispatcher's notify socket is opened by serve() first")
        return self.listener

    def _on_stop(self, signum: int, _frame: object) -> None:
        self.stopping = True

    # -- the loop ----------------------------------------------------------------------------

    def _tick(self) -> None:
        wanted: list[str] = []
        timeout = POLL_SECONDS
        if self._spare_wanted():  # wake when the next spare is due, not up to a second later
            timeout = min(timeout, max(0.0, self.spare_due - time.monotonic()))
        for key, _ in self.selector.select(timeout=timeout):
            if key.data == "notify":
                wanted.extend(self._read_notifications())
            else:
                self._drain_wakeups()
        self._collect_children()
        self.stopper.enforce()
        if self.stopping:
            return
        self._stop_cancelled(wanted)
        self.watchdog.check(self.children)
        now = time.monotonic()
        if now - self.last_heartbeat >= max(1.0, self.settings.run_lease_seconds / 3):
            self._heartbeat()
            self.last_heartbeat = now
        if now - self.last_reap >= max(2.0, self.settings.run_lease_seconds / 2):
            self._recover(startup=False)
            self.last_reap = now
        if now - self.last_replay >= REPLAY_EVERY_S:
            self._replay_spool()
            self.last_replay = now
        if self.claims:
            self._fill_slots(wanted)
            self._keep_a_spare()

    def _read_notifications(self) -> list[str]:
        ids: list[str] = []
        while True:
            try:
                data = self._listener().recv(128)
            except BlockingIOError:
                return ids
            run_id = data.decode("ascii", "replace")
            if RUN_ID_PATTERN.fullmatch(run_id):
                ids.append(run_id)

    def _drain_wakeups(self) -> None:
        try:
            while self.wake_r.recv(512):
                pass
        except BlockingIOError:
            pass

    def _fill_slots(self, wanted: list[str]) -> None:
        free = self.settings.max_concurrent_runs - len(self.children)
        if free <= 0:
            self.saturation.hold()  # web workers stop announcing new runs (dispatch_socket.Saturation)
            return
        # Said BEFORE looking for QUEUED runs: a run that a web worker did not announce because
        # it still read "full" was recorded before this, so the claim below can see it.
        self.saturation.release()
        if self._provider_down():
            return
        lease = self.settings.run_lease_seconds
        running = {c.claim.run_id for c in self.children.values()}
        claims: list[Claim] = []
        try:
            for run_id in dict.fromkeys(wanted):  # notified runs first: the fast path
                if len(claims) < free and run_id not in running:
                    claim = self.store.claim(run_id, self.owner, lease)
                    if claim is not None:
                        claims.append(claim)
            if len(claims) < free:
                claims += self.store.claim_next(self.owner, lease, free - len(claims))
        except (RunnerError, OSError) as exc:  # the loop must outlive any one bad claim or a full disk
            log.error("dispatcher_claim_failed", error=str(exc), code=_code(exc))
        for claim in claims:
            self._start(claim)
        if len(self.children) >= self.settings.max_concurrent_runs:
            self.saturation.hold()

    def _provider_down(self) -> bool:
        """While the host's OpenRouter breaker is open, runs stay QUEUED: that is a requeued run's delay."""
        if self.settings.engine != "openrouter":
            return False
        from pipeline.openrouter.breaker import ProviderBreaker, breaker_path

        return ProviderBreaker(breaker_path(self.settings.state_dir)).open_for() > 0

    def _heartbeat(self) -> None:
        for pid, child in list(self.children.items()):
            claim = child.claim
            try:
                held = self.store.renew(claim.run_id, claim.attempt, self.owner, self.settings.run_lease_seconds)
            except (RunnerError, OSError) as exc:
                log.error("lease_renew_failed", run_id=claim.run_id, error=str(exc))
                continue
            if not held:
                # Cancelled, or someone else took the run (our lease lapsed): stop ours; fencing
                # refuses its writes anyway, and the kill after the grace frees the slot.
                log.warning("lease_lost", run_id=claim.run_id, attempt=claim.attempt, pid=pid)
                self.stopper.stop(pid, claim.run_id, "lease lost (cancelled or taken over)")

    def _stop_cancelled(self, notified: list[str]) -> None:
        """A notification for a run we are running means it may have been cancelled: check now."""
        running = {c.claim.run_id: (pid, c.claim) for pid, c in self.children.items()}
        for run_id in dict.fromkeys(notified):
            if run_id not in running:
                continue
            pid, claim = running[run_id]
            try:
                state = self.store.get_run(run_id)
            except (RunnerError, OSError) as exc:
                log.error("cancel_check_failed", run_id=run_id, error=str(exc))
                continue
            if state is None or state.status is not RunStatus.PROCESSING or state.attempt != claim.attempt:
                self.stopper.stop(pid, run_id, f"run is {state.status if state else 'gone'}")

    def _recover(self, *, startup: bool) -> ReapReport | None:
        def dead_owner(owner: str | None) -> bool:
            # We hold this state folder's lock, so any other owner recorded under it is gone.
            return owner is not None and owner.startswith(self.identity + "/") and owner != self.owner

        try:
            report = reap(self.store, self.settings, dead_owner=dead_owner if startup else lambda owner: False)
        except (RunnerError, OSError) as exc:
            log.error("recovery_failed", error=str(exc))
            return None
        if report.requeued or report.failed:
            log.warning("runs_recovered", startup=startup, **report.as_dict())
        return report

    def _replay_spool(self) -> None:
        """Drain this host's spool into the database (a cron service cannot see this host's volume)."""
        if self.replayable is None:  # FILE_ONLY: there is no database to replay into
            return
        try:
            report = self.replayable.replay(100, max_records=REPLAY_MAX_RECORDS)
        except (RunnerError, OSError) as exc:
            log.error("spool_replay_failed", error=str(exc), code=_code(exc))
            return
        if report.applied or report.dead:
            log.info("spool_replayed_by_dispatcher", **report.as_dict())

    # -- children ----------------------------------------------------------------------------

    def _start(self, claim: Claim) -> None:
        spare, self.spare = self.spare, None
        if spare is not None and spare.hand(claim):
            pid, how = spare.pid, "spare"
            self.spare_due = time.monotonic() + SPARE_AFTER_HANDOFF_S
        else:
            pid, how = self._fork_fresh(claim), "fork"
        self.children[pid] = Child(claim, time.monotonic())
        log.info("run_process_started", run_id=claim.run_id, attempt=claim.attempt, pid=pid,
                 running=len(self.children), started_by=how)

    def _inherited(self) -> list[socket.socket | None]:
        """The dispatcher's sockets, which a run process closes at once."""
        return [self.listener, self.wake_r, self.wake_w]

    def _fork_fresh(self, claim: Claim) -> int:
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 1
            try:
                stop = become_run_process(self._inherited())
                code = run_claim(self.settings, build_services(self.settings), claim, stop)
            except BaseException:
                log.exception("run_process_crashed", run_id=claim.run_id, attempt=claim.attempt)
            finally:
                os._exit(code)
        return pid

    def _spare_wanted(self) -> bool:
        """No spare is waiting, and a run could use one: this host claims and has a free slot."""
        return (self.claims and self.spare is None and not self.stopping
                and len(self.children) < self.settings.max_concurrent_runs)

    def _keep_a_spare(self) -> None:
        """Fork a spare run process when one is wanted and due (see handlers.run_process)."""
        if not self._spare_wanted() or time.monotonic() < self.spare_due:
            return
        self.spare = fork_spare(self.settings, self._inherited(),
                                on_crash=lambda: log.exception("spare_run_process_crashed"))

    def _dismiss_spare(self) -> None:
        """Stopping: end the idle spare and reap it here (PR_SET_PDEATHSIG covers a dispatcher that dies)."""
        if self.spare is not None:
            spare, self.spare = self.spare, None
            log.info("spare_dismissed", pid=spare.pid, exit_code=spare.retire())

    def _collect_children(self) -> None:
        while self.children or self.spare is not None:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is not None:
                self._after_exit(pid, child, status)
                self.spare_due = min(self.spare_due, time.monotonic())  # a slot is free: get its spare ready
            elif self.spare is not None and pid == self.spare.pid:
                # Died idle (its warm-up crashed, or it was killed): replace it later, never in a loop.
                log.warning("spare_run_process_exited", pid=pid, exit_code=os.waitstatus_to_exitcode(status))
                self.spare.dismiss()
                self.spare = None
                self.spare_due = time.monotonic() + SPARE_AFTER_CRASH_S

    def _after_exit(self, pid: int, child: Child, status: int) -> None:
        claim = child.claim
        code = os.waitstatus_to_exitcode(status)
        stopped_because = self.stopper.forget(pid)
        log.info("run_process_exited", run_id=claim.run_id, attempt=claim.attempt, exit_code=code,
                 seconds=round(time.monotonic() - child.started, 3), stopped_because=stopped_because)
        if code in (0, EXIT_SUPERSEDED, EXIT_INTERRUPTED) or stopped_because is not None:
            self.watchdog.forget(claim)
        if code in (0, EXIT_SUPERSEDED) or stopped_because is not None:
            return  # stopped on purpose: the run already moved on (cancelled, or another attempt owns it)
        try:
            if code == EXIT_INTERRUPTED:
                if self.store.requeue(claim.run_id, claim.attempt, "interrupted by shutdown"):
                    log.info("run_requeued", run_id=claim.run_id, cause="interrupted by shutdown")
                return
            error_code, cause, stage = self.watchdog.explain(claim, status)
            recover_run(self.store, self.settings, claim.run_id, claim.attempt, cause, ReapReport(),
                        code=error_code, stage=stage)
        except (RunnerError, OSError) as exc:
            log.error("run_recovery_failed", run_id=claim.run_id, error=str(exc))

    def _drain(self) -> None:
        deadline = time.monotonic() + max(1, self.settings.draining_seconds - 2)
        for pid in self.children:
            os.kill(pid, signal.SIGTERM)
        # Logged after the signals: every child has been asked to stop after its current stage.
        log.info("dispatcher_draining", running=[c.claim.run_id for c in self.children.values()],
                 seconds=self.settings.draining_seconds)
        while self.children and time.monotonic() < deadline:
            self.selector.select(timeout=0.2)
            self._drain_wakeups()
            self._collect_children()
        if self.children:
            log.warning("drain_timeout", still_running=[c.claim.run_id for c in self.children.values()])


def _code(exc: BaseException) -> str:
    """The runner's error code, or the exception's class name for anything else (an OSError)."""
    return exc.code if isinstance(exc, RunnerError) else type(exc).__name__


def _take_host_lock(settings: Settings) -> IO[bytes] | None:
    """The host lock, taken before anything heavy so launchers see a live dispatcher at once.

    If another dispatcher holds it (an old one still draining after a restart), wait as the one
    standby for at most the draining time; a second would-be standby exits at once.
    """
    atomic.ensure_dir(settings.state_dir)
    lock = open(dispatch_socket.lock_path(settings), "a+b")  # noqa: SIM115 (returned to the caller, held)
    if _try_lock(lock):
        return lock
    with open(dispatch_socket.lock_path(settings).with_suffix(".standby"), "a+b") as standby:
        if not _try_lock(standby):
            lock.close()
            return None
        deadline = time.monotonic() + settings.draining_seconds + 5
        while time.monotonic() < deadline:
            if _try_lock(lock):
                return lock
            time.sleep(0.1)
    lock.close()
    return None


def _try_lock(handle: IO[bytes]) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m handlers.dispatcher [--no-claims]``."""
    configure_logging("INFO", json=True)  # before settings: even a configuration error is a JSON line
    args = sys.argv[1:] if argv is None else argv
    if any(arg != "--no-claims" for arg in args):
        log.error("dispatcher_usage", error=f"unknown arguments {args}: the only option is --no-claims")
        return 2
    try:
        settings = Settings.from_env()
        configure_logging(settings.log_level, json=True)
        settings.require_runnable()
        lock = _take_host_lock(settings)
        if lock is None:
            log.info("dispatcher_not_needed", reason="another dispatcher serves this state folder")
            return 0
        with lock:
            Dispatcher(settings, claims="--no-claims" not in args).serve()
    except RunnerError as exc:
        log.error("dispatcher_refused_to_start", code=exc.code, error=str(exc))
        return 2
    except Exception:
        # The process boundary: stdout is Railway's log, and a bare traceback on stderr would be
        # split into unsearchable error lines. Log it whole, then exit non-zero.
        log.exception("dispatcher_crashed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
