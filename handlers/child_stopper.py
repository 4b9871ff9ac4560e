"""Stopping a run's process on purpose: told first (SIGTERM), killed after a grace period.

The dispatcher stops a child when its run was cancelled or taken over by another attempt
(a lost lease). SIGTERM asks the run to stop after its current stage; a stage can take
minutes (an LLM call), so after ``grace_s`` the child gets SIGKILL. Every stage finished
before stays saved; writes of the stopped attempt are refused by attempt fencing anyway.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from config.log import get_logger

log = get_logger(__name__)
GRACE_SECONDS = 5.0


class ChildStopper:
    """Children being stopped: pid -> (kill deadline, why)."""

    def __init__(self, grace_s: float = GRACE_SECONDS) -> None:
        self.grace_s = grace_s
        self._stopping: dict[int, tuple[float, str]] = {}

    def stop(self, pid: int, run_id: str, reason: str) -> None:
        """Tell ``pid`` to stop now; kill it if it is still there after the grace period."""
        if pid in self._stopping:
            return
        self._stopping[pid] = (time.monotonic() + self.grace_s, reason)
        log.info("run_process_stopping", run_id=run_id, pid=pid, reason=reason, grace_s=self.grace_s)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return  # already gone: the dispatcher collects it

    def enforce(self) -> None:
        """SIGKILL every child whose grace period ran out (called on each dispatcher tick)."""
        now = time.monotonic()
        for pid, (deadline, reason) in list(self._stopping.items()):
            if now >= deadline:
                log.warning("run_process_killed", pid=pid, reason=reason, grace_s=self.grace_s)
                with contextlib.suppress(ProcessLookupError):  # it may have exited on its own just now
                    os.kill(pid, signal.SIGKILL)
                self._stopping[pid] = (float("inf"), reason)  # never twice

    def forget(self, pid: int) -> str | None:
        """The child exited: why we stopped it (None if we did not)."""
        entry = self._stopping.pop(pid, None)
        return entry[1] if entry else None
