"""The per-stage watchdog and the cause of a run process's death, for handlers/dispatcher.py.

A run process marks each stage as it starts (``StageMarker``, a ``Progress`` that writes one
small file per run under the state folder). The dispatcher's loop calls ``Watchdog.check`` on
every tick, and the marks are read at most every LOOK_EVERY_S: a run whose current stage (or
document intake, before stage 1) has run longer than STAGE_TIMEOUT_SECONDS is killed with its
whole process group, which includes a PDF extraction child. Its lease would otherwise be
renewed forever, holding one of MAX_CONCURRENT_RUNS slots.

When a run process exits abnormally, ``Watchdog.explain`` says why in words a person reads in
the status API: the watchdog's timeout (code STAGE_TIMEOUT), or the signal or exit code, whether
the kernel's OOM killer fired in this container, and the stage it was in (code PROCESS_DIED).
Never a log line: those stay in the logs.

No threads: the dispatcher forks, and everything here runs inside its single-threaded loop.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from config.errors import PROCESS_DIED, STAGE_TIMEOUT
from config.log import get_logger
from config.paths import check_run_id
from config.settings import Settings
from persistence.queue import Claim
from persistence.records import STAGE_NAMES

log = get_logger(__name__)

INTAKE = 0  # the document fetch and text extraction, before stage 1
# How often the marks of known runs are read again. The loop ticks on every webhook's wake-up
# (thousands a second in a burst) and a stage lasts seconds: a read per tick was half of the
# dispatcher's CPU under load. A new run is still looked at on its first tick.
LOOK_EVERY_S = 0.25
# cgroup v2, then v1: the kernel counts OOM kills of the container here.
OOM_COUNTERS = (Path("/sys/fs/cgroup/memory.events"), Path("/sys/fs/cgroup/memory/memory.oom_control"))


def stage_name(stage: int) -> str:
    """A person's name for a stage number (0 is the document intake)."""
    if stage == INTAKE:
        return "document intake (fetch and text extraction)"
    return f"stage {stage} ({STAGE_NAMES.get(stage, 'unknown')})"


def mark_path(settings: Settings, run_id: str) -> Path:
    """Where a run process writes the stage it is in."""
    return settings.state_dir / "stages" / check_run_id(run_id)


class StageMarker:
    """A run's Progress that records the current stage for the dispatcher's watchdog."""

    def __init__(self, path: Path, attempt: int) -> None:
        self.path = path
        self.attempt = attempt
        self._write(INTAKE)

    def _write(self, stage: int) -> None:
        # Not durable on purpose (no fsync): it only matters while this process lives, and a
        # failed write (a full disk) must not fail the run; the clock then keeps the last stage.
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            scratch = self.path.with_name(self.path.name + ".tmp")
            scratch.write_text(json.dumps({"attempt": self.attempt, "stage": stage}))
            os.replace(scratch, self.path)
        except OSError as exc:
            log.warning("stage_mark_not_written", stage=stage, error=str(exc))

    def stage_started(self, stage: int, name: str) -> None:
        """Record that ``stage`` began: its clock starts now."""
        self._write(stage)

    def stage_finished(self, stage: int, name: str, seconds: float) -> None:
        """Nothing: the next stage's start restarts the clock."""

    def stage_skipped(self, stage: int, name: str) -> None:
        """Nothing: a skipped stage takes no time."""


class ChildLike(Protocol):
    """What the watchdog needs to know of a dispatcher child."""

    claim: Claim


@dataclass
class _Watch:
    stage: int
    since: float  # monotonic time the watchdog first saw this stage
    oom_kills: int | None
    timed_out: str | None = None


@dataclass
class Watchdog:
    """Kills runs whose stage outlives STAGE_TIMEOUT_SECONDS; explains every abnormal exit."""

    settings: Settings
    watches: dict[tuple[str, int], _Watch] = field(default_factory=dict)
    next_look: float = 0.0  # monotonic time the known runs' marks are next read

    def check(self, children: Mapping[int, ChildLike]) -> None:
        """Called on every dispatcher tick: start clocks for new stages, kill overdue runs."""
        now = time.monotonic()
        if now < self.next_look and all((c.claim.run_id, c.claim.attempt) in self.watches
                                        for c in children.values()):
            return
        self.next_look = now + LOOK_EVERY_S
        limit = self.settings.stage_timeout_seconds
        for pid, child in children.items():
            claim = child.claim
            key = (claim.run_id, claim.attempt)
            stage = self._current_stage(claim)
            watch = self.watches.get(key)
            if watch is None:
                watch = self.watches[key] = _Watch(stage, now, _oom_kills())
            elif stage != watch.stage:
                watch.stage, watch.since = stage, now
            if watch.timed_out is None and now - watch.since > limit:
                watch.timed_out = (f"{stage_name(watch.stage)} ran longer than STAGE_TIMEOUT_SECONDS={limit} "
                                   "and was stopped")
                log.error("stage_timeout", run_id=claim.run_id, attempt=claim.attempt, stage=watch.stage,
                          pid=pid, seconds=limit)
                _kill_group(pid)

    def explain(self, claim: Claim, status: int) -> tuple[str, str, int]:
        """(code, cause, stage) for a run process that exited with wait ``status``; forgets the run."""
        watch = self.watches.pop((claim.run_id, claim.attempt), None)
        # The mark as the process left it: the watch may be up to LOOK_EVERY_S behind.
        stage = self._current_stage(claim, unknown=watch.stage if watch else INTAKE)
        mark_path(self.settings, claim.run_id).unlink(missing_ok=True)
        if watch is not None and watch.timed_out:
            return STAGE_TIMEOUT, watch.timed_out, stage
        death = describe_death(status, watch.oom_kills if watch else None)
        return PROCESS_DIED, f"{death} during {stage_name(stage)}", stage

    def forget(self, claim: Claim) -> None:
        """Drop the run's clock and mark (a normal exit)."""
        self.watches.pop((claim.run_id, claim.attempt), None)
        mark_path(self.settings, claim.run_id).unlink(missing_ok=True)

    def _current_stage(self, claim: Claim, unknown: int = INTAKE) -> int:
        try:
            mark = json.loads(mark_path(self.settings, claim.run_id).read_bytes())
        except (OSError, ValueError):
            return unknown  # not written yet (the process is still starting), or unreadable
        return int(mark["stage"]) if mark.get("attempt") == claim.attempt else INTAKE


def describe_death(status: int, oom_kills_before: int | None) -> str:
    """A person's description of a waitpid() status, naming the OOM killer when it fired."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        if number == signal.SIGKILL:
            after = _oom_kills()
            if oom_kills_before is not None and after is not None and after > oom_kills_before:
                return "the run process ran out of memory (killed by SIGKILL from the kernel's OOM killer)"
            return "the run process was killed by SIGKILL (out of memory, or stopped from outside)"
        return f"the run process was killed by {name}"
    return f"the run process exited with code {os.WEXITSTATUS(status)}"


def _oom_kills() -> int | None:
    """How many OOM kills this container's cgroup has seen, or None if the kernel does not say."""
    for path in OOM_COUNTERS:
        try:
            for line in path.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            continue
    return None


def _kill_group(pid: int) -> None:
    """SIGKILL the run process and its children (it leads its own session, see _child_main)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:  # not yet in its own session: the process alone
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # it already exited; the dispatcher collects it
