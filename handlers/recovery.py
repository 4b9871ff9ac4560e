"""Recovering runs whose process died: resume them, or fail them with the cause.

Used by the dispatcher (when a child exits abnormally, and at start-up for runs an earlier
incarnation held) and by ``python -m handlers.cron reap`` (for leases that lapsed anywhere).
A recovered run goes back to QUEUED and its next attempt resumes from the last finished stage;
after MAX_RUN_ATTEMPTS it is FAILED with the cause in words (signal or exit code, out of memory,
stage, document). The run's last log lines go to the log, never into the run's error: the status
API shows that message to the frontend.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from config.errors import PROCESS_DIED
from config.log import get_logger
from config.paths import check_run_id
from config.settings import Settings
from persistence.commands import FailRun
from persistence.ports import QueuedStore
from persistence.queue import Lease
from persistence.records import RunErrorInfo, utcnow
from pipeline.blob_rules import display_url

log = get_logger(__name__)

LOG_TAIL_LINES = 5


@dataclass
class ReapReport:
    """What a recovery pass did, by run id."""

    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        """The report as JSON-ready lists."""
        return {"requeued": self.requeued, "failed": self.failed, "skipped": self.skipped}


def run_log_path(settings: Settings, run_id: str) -> Path:
    """Where a run subprocess copies its log lines, so a crash can be explained."""
    return settings.state_dir / "logs" / f"{check_run_id(run_id)}.log"


def last_log_lines(settings: Settings, run_id: str, count: int = LOG_TAIL_LINES) -> list[str]:
    """The last ``count`` log lines a run's process wrote, if any."""
    path = run_log_path(settings, run_id)
    if not path.exists():
        return []
    with path.open(encoding="utf-8", errors="replace") as handle:
        return [line.rstrip("\n") for line in deque(handle, maxlen=count)]


def recover_run(store: QueuedStore, settings: Settings, run_id: str, attempt: int, cause: str,
                report: ReapReport, *, code: str = PROCESS_DIED, stage: int | None = None) -> None:
    """Requeue a run whose ``attempt`` died, or fail it with ``code`` once its attempts are used up."""
    state = store.get_run(run_id)
    if state is None or state.status.finished or state.attempt != attempt:
        report.skipped.append(run_id)
        return
    if attempt < settings.max_run_attempts:
        if store.requeue(run_id, attempt, cause):
            log.warning("run_requeued", run_id=run_id, attempt=attempt, cause=cause,
                        resumes_after_stage=max(state.completed_stages, default=0))
            report.requeued.append(run_id)
        else:
            report.skipped.append(run_id)
        return
    document = display_url(state.request.document_url).rstrip("/").rsplit("/", 1)[-1] or "the document"
    message = (f"{cause}; document {document}; gave up after {attempt} attempt(s) "
               f"(MAX_RUN_ATTEMPTS={settings.max_run_attempts})")
    if not stage:  # unknown, or the document intake: the runner counts intake as stage 1
        stage = len(state.completed_stages) + 1
    store.apply(FailRun(run_id, attempt, RunErrorInfo(stage=min(stage, 5), code=code, message=message)))
    log.error("run_failed_after_retries", run_id=run_id, attempt=attempt, code=code, cause=cause,
              last_log_lines=last_log_lines(settings, run_id))
    report.failed.append(run_id)


def reap(store: QueuedStore, settings: Settings, *,
         dead_owner: Callable[[str | None], bool] = lambda owner: False) -> ReapReport:
    """Recover every PROCESSING run whose lease lapsed or whose owner is known to be dead."""
    report = ReapReport()
    now = utcnow()
    for lease in store.leases():
        if lease.lapsed(now):
            cause = f"lease held by {lease.owner or 'nobody'} lapsed at {lease.expires_at} (process presumed dead)"
        elif dead_owner(lease.owner):
            cause = f"process {lease.owner} is gone (the web service restarted)"
        else:
            continue
        recover_run(store, settings, lease.run_id, lease.attempt, cause, report)
    return report


def describe_exit(status: int) -> str:
    """A person's description of a waitpid() status."""
    import os
    import signal

    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = str(number)
        hint = " (out of memory or killed)" if number == signal.SIGKILL else ""
        return f"run process killed by {name}{hint}"
    return f"run process exited with code {os.WEXITSTATUS(status)}"


__all__ = ["Lease", "ReapReport", "describe_exit", "last_log_lines", "reap", "recover_run", "run_log_path"]
