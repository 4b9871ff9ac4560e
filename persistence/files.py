"""FileStore: runs as folders under OUTPUT_DIR, laid out per contract §7.

    OUTPUT_DIR/<run_id>/run.json                   status, transitions, stage times, error
    OUTPUT_DIR/<run_id>/stage1/inspirations.json   … one file per stage …
    OUTPUT_DIR/<run_id>/report.md

Every file is written atomically. A per-run ``flock`` serialises writers across processes on a
host, so concurrent deliveries of one webhook create one run, and a superseded attempt cannot
overwrite a newer one.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from config.errors import Conflict, Superseded
from config.log import get_logger
from config.paths import RUN_ID_PATTERN, check_run_id, inside
from persistence import atomic
from persistence.commands import (
    CancelRun,
    ClaimRun,
    Command,
    CompleteRun,
    CreateRun,
    FailRun,
    RecordUsage,
    RetryRun,
    SaveStage,
    StartAttempt,
)
from persistence.errors import RunNotRecorded, disk_full, free_bytes, is_disk_full
from persistence.outbox.ports import CallbackOutbox, Delivery, delivery_for, webhook_id_for
from persistence.ports import CommandVerbs, SourcedRun
from persistence.query.ports import normalise_usage
from persistence.queue import Claim, Lease
from persistence.records import (
    STAGE_FILES,
    STAGE_NUMBERS,
    FinalReport,
    RunErrorInfo,
    RunRequest,
    RunSnapshot,
    RunState,
    RunStatus,
    RunUsage,
    StageResult,
    StageState,
    utcnow,
)

log = get_logger(__name__)

WAIT_FIRST_S = 0.5  # a full disk: first wait before the write is tried again, doubling up to WAIT_MAX_S
WAIT_MAX_S = 15.0
QUEUE_DIR = ".queue"  # one empty marker per QUEUED run: claim_next lists this, not every run
LEASE_DIR = ".leases"  # one marker per PROCESSING run: leases() lists this
RUN_FILE = "run.json"
REPORT_FILE = "report.md"
LOCK_FILE = ".lock"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _parse(moment: str | None) -> datetime | None:
    return datetime.fromisoformat(moment) if moment else None


class FileStore(CommandVerbs):
    """A RunStore over plain files; also the mirror in DUAL_WRITE mode."""

    name = "files"

    def __init__(self, root: Path, *, wait_for_space: bool = False, stages_in_run_json: bool = True,
                 sleep: Callable[[float], None] = time.sleep, outbox: CallbackOutbox | None = None) -> None:
        self.root = root
        # Where a finished run's completion callback is queued (FILE_ONLY with CALLBACK_URL only).
        self.outbox = outbox
        # The DUAL_WRITE mirror keeps a stage's completion in its file alone (two fsyncs a stage,
        # not four): the record holds the timings, and a heal writes them into run.json.
        self.stages_in_run_json = stages_in_run_json
        # FILE_ONLY: a run's writes wait for space on a full disk (the run resumes by itself);
        # the DUAL_WRITE mirror never waits (the record is the database, replay heals the mirror).
        self.wait_for_space = wait_for_space
        self._sleep = sleep

    def run_dir(self, run_id: str) -> Path:
        """The run's folder, refusing ids that would escape OUTPUT_DIR."""
        return inside(self.root, check_run_id(run_id))

    @contextmanager
    def _locked(self, run_id: str) -> Iterator[Path]:
        folder = self.run_dir(run_id)
        atomic.ensure_dir(folder)
        with open(folder / LOCK_FILE, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield folder
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self, folder: Path) -> dict[str, Any] | None:
        path = folder / RUN_FILE
        return atomic.read_json(path) if path.exists() else None

    def _write(self, folder: Path, doc: dict[str, Any], status: RunStatus | None = None) -> None:
        now = utcnow().isoformat()
        if status is not None and doc.get("status") != status:
            doc["status"] = str(status)
            doc["transitions"].append({"status": str(status), "at": now, "attempt": doc["attempt"]})
        doc["updated_at"] = now
        atomic.write_json(folder / RUN_FILE, doc)

    def _owned(self, folder: Path, run_id: str, attempt: int) -> dict[str, Any]:
        doc = self._read(folder)
        if doc is None:
            raise Superseded(f"run {run_id} has no run.json in {folder}: it was never created here")
        if doc["attempt"] > attempt:
            raise Superseded(
                f"run {run_id}: attempt {attempt} was superseded by attempt {doc['attempt']}; write refused"
            )
        return doc

    def apply(self, command: Command) -> bool:
        """Apply one write command to the run's files (under the run's flock).

        A full disk raises RunNotRecorded for CreateRun (the webhook answers 503) and DiskFull for
        the others, unless ``wait_for_space``: then the write waits, saying why, until it fits.
        """
        if isinstance(command, CreateRun):
            try:
                return self._apply(command)
            except OSError as exc:
                if not is_disk_full(exc):
                    raise
                raise RunNotRecorded(f"run {command.run_id} was not recorded: {disk_full(self.root, exc)}; "
                                     "retry later") from exc
        wait = WAIT_FIRST_S
        while True:
            try:
                return self._apply(command)
            except OSError as exc:
                if not is_disk_full(exc):
                    raise
                full = disk_full(self.root, exc)
                if not self.wait_for_space:
                    raise full from exc
                log.warning("disk_full_waiting", run_id=command.run_id, kind=command.kind, path=str(self.root),
                            free_bytes=free_bytes(self.root), retry_in_s=wait,
                            reason=f"no space left on the output disk; the run waits and resumes when space "
                                   f"returns ({full.message})")
                self._sleep(wait)
                wait = min(WAIT_MAX_S, wait * 2)

    def _apply(self, command: Command) -> bool:
        match command:
            case CreateRun(request=request):
                return self._create(request)
            case StartAttempt(run_id=run_id, attempt=attempt):
                self._start(run_id, attempt)
            case SaveStage(run_id=run_id, attempt=attempt, result=result):
                self._save_stage(run_id, attempt, result)
            case CompleteRun(run_id=run_id, attempt=attempt, report=report):
                self._complete(run_id, attempt, report)
            case FailRun(run_id=run_id, attempt=attempt, error=error):
                self._fail(run_id, attempt, error)
            case ClaimRun():
                pass  # only ever made by this store's own claim (persistence.resilient): nothing to add
            case RecordUsage(run_id=run_id, attempt=attempt, usage=usage):
                self._record_usage(run_id, attempt, usage)
            case CancelRun():
                return self._cancel(command)
            case RetryRun():
                return self._retry(command)
        return False

    def _create(self, request: RunRequest) -> bool:
        """Record the run as QUEUED; idempotent for the same request, Conflict for another."""
        with self._locked(request.run_id) as folder:
            doc = self._read(folder)
            if doc is not None:
                if doc["request"] != request.as_dict():
                    raise Conflict(
                        f"run {request.run_id} already exists with a different payload; "
                        "use a new run_id for a new run"
                    )
                if doc["status"] == str(RunStatus.QUEUED):
                    # A crash between run.json and its marker would strand the run: a repeat heals it.
                    self._mark(QUEUE_DIR, request.run_id)
                return False
            now = utcnow().isoformat()
            doc = {
                "run_id": request.run_id,
                "status": str(RunStatus.QUEUED),
                "request": request.as_dict(),
                "attempt": 0,
                "current_stage": None,
                "created_at": now,
                "updated_at": now,
                "completed_at": None,
                "stages": {},
                "error": None,
                "lease": None,
                "transitions": [{"status": str(RunStatus.QUEUED), "at": now, "attempt": 0}],
            }
            self._write(folder, doc)
            self._mark(QUEUE_DIR, request.run_id)
            return True

    def read_run(self, run_id: str) -> SourcedRun:
        """The run's state from run.json (None if absent), from "files"."""
        folder = self.run_dir(run_id)
        doc = self._read(folder)
        if doc is not None and not self.stages_in_run_json:
            _add_stage_files(folder, doc)
        return SourcedRun(None if doc is None else _state(doc), "files")

    def _start(self, run_id: str, attempt: int) -> None:
        """Mark PROCESSING under ``attempt``; an older attempt is refused."""
        with self._locked(run_id) as folder:
            doc = self._owned(folder, run_id, attempt)
            doc["attempt"] = attempt
            doc["error"] = None
            self._write(folder, doc, RunStatus.PROCESSING)
            self._unmark(QUEUE_DIR, run_id)

    def _save_stage(self, run_id: str, attempt: int, result: StageResult) -> None:
        """Write the stage file, then record the stage as completed in run.json."""
        with self._locked(run_id) as folder:
            doc = self._owned(folder, run_id, attempt)
            atomic.write_json(folder / STAGE_FILES[result.stage], result.output)
            if not self.stages_in_run_json:
                return  # the stage file is the mark (see __init__)
            doc["stages"][str(result.stage)] = {
                "status": "completed",
                "started_at": _iso(result.started_at),
                "completed_at": _iso(result.completed_at),
                "duration_ms": result.duration_ms,
            }
            doc["current_stage"] = result.stage
            self._write(folder, doc)

    def _record_usage(self, run_id: str, attempt: int, usage: RunUsage) -> None:
        """run.json's "engine", "model", "usage" and "cache" become ``usage``'s (a snapshot)."""
        with self._locked(run_id) as folder:
            doc = self._owned(folder, run_id, attempt)
            doc.update(usage.as_dict())
            self._write(folder, doc)

    def load_stage_outputs(self, run_id: str) -> dict[int, Mapping[str, Any]]:
        """Outputs of the stages run.json lists as completed."""
        folder = self.run_dir(run_id)
        doc = self._read(folder) or {"stages": {}}
        if not self.stages_in_run_json:
            _add_stage_files(folder, doc)
        return {
            n: atomic.read_json(folder / STAGE_FILES[n])
            for n in STAGE_NUMBERS
            if doc["stages"].get(str(n), {}).get("status") == "completed"
        }

    def _complete(self, run_id: str, attempt: int, report: FinalReport) -> None:
        """Write report.md and mark the run COMPLETED."""
        with self._locked(run_id) as folder:
            doc = self._owned(folder, run_id, attempt)
            atomic.write_bytes(folder / REPORT_FILE, report.markdown.encode("utf-8"))
            doc["completed_at"] = doc.get("completed_at") or utcnow().isoformat()
            doc["error"] = None
            doc["lease"] = None
            self._announce(doc, RunStatus.COMPLETED)
            self._write(folder, doc, RunStatus.COMPLETED)
            self._unmark(LEASE_DIR, run_id)

    def _fail(self, run_id: str, attempt: int, error: RunErrorInfo) -> None:
        """Mark the run FAILED with its stage, code and message."""
        with self._locked(run_id) as folder:
            doc = self._owned(folder, run_id, attempt)
            doc["error"] = error.as_dict()
            doc["completed_at"] = utcnow().isoformat()
            doc["lease"] = None
            self._announce(doc, RunStatus.FAILED)
            self._write(folder, doc, RunStatus.FAILED)
            self._unmark(LEASE_DIR, run_id)
            self._unmark(QUEUE_DIR, run_id)

    def _cancel(self, command: CancelRun) -> bool:
        """CANCELLED, past every attempt so far (a running process's writes are refused); True if it was live."""
        with self._locked(command.run_id) as folder:
            doc = self._read(folder)
            if doc is None:
                raise Superseded(f"run {command.run_id} has no run.json in {folder}: it was never created here")
            if doc["status"] not in (RunStatus.QUEUED, RunStatus.PROCESSING):
                return False
            doc["attempt"] = max(doc["attempt"], command.attempt) + 1
            doc["error"] = command.error.as_dict()
            doc["completed_at"] = utcnow().isoformat()
            doc["lease"] = None
            self._announce(doc, RunStatus.CANCELLED)
            self._write(folder, doc, RunStatus.CANCELLED)
            self._unmark(QUEUE_DIR, command.run_id)
            self._unmark(LEASE_DIR, command.run_id)
            return True

    def _retry(self, command: RetryRun) -> bool:
        """Back to QUEUED while still FAILED under ``command.attempt``; True if it was."""
        with self._locked(command.run_id) as folder:
            doc = self._read(folder)
            if doc is None:
                raise Superseded(f"run {command.run_id} has no run.json in {folder}: it was never created here")
            if doc["status"] != RunStatus.FAILED or doc["attempt"] != command.attempt:
                return False
            doc["error"] = None
            doc["completed_at"] = None
            doc["lease"] = None
            self._mark(QUEUE_DIR, command.run_id)
            self._write(folder, doc, RunStatus.QUEUED)
            return True

    def _announce(self, doc: dict[str, Any], outcome: RunStatus) -> None:
        """Queue the callback of the run's end, just before run.json records it (same id for the same outcome).

        First, so a crash between the two never leaves an end without its callback; an entry whose
        end was never recorded is withdrawn by the outbox (see ``outcome_recorded``).
        """
        if self.outbox is not None:
            self.outbox.enqueue(delivery_for(doc["run_id"], outcome, doc["attempt"], {
                "company_id": doc["request"]["company_id"], "user_id": doc["request"]["user_id"],
                "error": doc.get("error"), "usage": normalise_usage(doc.get("usage"))}))

    def outcome_recorded(self, delivery: Delivery) -> bool | None:
        """Whether run.json records the end ``delivery`` announces; None while a writer holds the run.

        False means it never will: nobody holds the run, so the writer that queued the callback
        died before recording the end, and the run's next attempt or cancel has a new id.
        """
        folder = self.run_dir(delivery.run_id)
        if not (folder / LOCK_FILE).exists():
            return False  # pruned, or never created here
        with open(folder / LOCK_FILE, "a+b") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None  # being written right now: ask again on the next pass
            doc = self._read(folder)
        return doc is not None and any(
            step["status"] == delivery.outcome
            and webhook_id_for(delivery.run_id, delivery.outcome, step["attempt"]) == delivery.webhook_id
            for step in doc.get("transitions") or ())

    def heal(self, snapshot: RunSnapshot) -> bool:
        """Bring the run's files to what the record says (DUAL_WRITE mirror); True if anything changed.

        Only what differs is written: stage files, report.md, then run.json. The record is the
        truth here, including an attempt or a status the mirror never saw (a crash between the
        two writes, or writes skipped while the disk was full).
        """
        state = snapshot.state
        changed = False
        with self._locked(state.run_id) as folder:
            for number, output in snapshot.outputs.items():
                path = folder / STAGE_FILES[number]
                if not path.exists() or atomic.read_json(path) != output:
                    atomic.write_json(path, output)
                    changed = True
            report = folder / REPORT_FILE
            if snapshot.report_markdown is not None and (
                    not report.exists() or report.read_text(encoding="utf-8") != snapshot.report_markdown):
                atomic.write_bytes(report, snapshot.report_markdown.encode("utf-8"))
                changed = True
            doc = self._read(folder)
            wanted = _doc_of(state, doc)
            if (doc is None or doc.get("status") != str(state.status)
                    or any(doc.get(key) != wanted[key] for key in HEALED_KEYS)):
                self._write(folder, wanted, state.status)
                changed = True
            if state.status.finished:
                self._unmark(LEASE_DIR, state.run_id)
                self._unmark(QUEUE_DIR, state.run_id)
        return changed

    # -- the queue (persistence.queue.RunQueue) ---------------------------------------------

    def _mark(self, index: str, run_id: str) -> None:
        # An empty marker needs no temp file: creating the name and syncing the folder is durable.
        folder = self.root / index
        atomic.ensure_dir(folder)
        os.close(os.open(folder / run_id, os.O_CREAT | os.O_WRONLY, 0o644))
        atomic.fsync_dir(folder)

    def _unmark(self, index: str, run_id: str) -> None:
        (self.root / index / run_id).unlink(missing_ok=True)

    def _listed(self, index: str) -> list[str]:
        folder = self.root / index
        if not folder.is_dir():
            return []
        # Oldest first: markers are created when a run is queued. Only run ids count: a crash
        # can leave other names behind, and they must never reach run_dir().
        markers = []
        for path in folder.iterdir():
            if RUN_ID_PATTERN.fullmatch(path.name):
                try:
                    markers.append((path.stat().st_mtime_ns, path.name))
                except FileNotFoundError:
                    continue  # claimed by another process while we listed
        return [name for _, name in sorted(markers)]

    def claim(self, run_id: str, owner: str, lease_seconds: int) -> Claim | None:
        """Take a QUEUED run, or a PROCESSING one whose lease lapsed, under a new attempt."""
        with self._locked(run_id) as folder:
            doc = self._read(folder)
            if doc is None or not _claimable(doc):
                if doc is None or RunStatus(doc["status"]).finished:
                    self._unmark(QUEUE_DIR, run_id)  # a stale marker: nothing left to run
                return None
            doc["attempt"] += 1
            doc["lease"] = {"owner": owner, "expires_at": (utcnow() + timedelta(seconds=lease_seconds)).isoformat()}
            doc["error"] = None
            self._mark(LEASE_DIR, run_id)
            self._write(folder, doc, RunStatus.PROCESSING)
            self._unmark(QUEUE_DIR, run_id)
            return Claim(run_id, doc["attempt"], RunRequest(**doc["request"]))

    def claim_next(self, owner: str, lease_seconds: int, limit: int,
                   only: Callable[[str], bool] | None = None) -> list[Claim]:
        """Claim up to ``limit`` QUEUED runs, oldest first (of those ``only`` accepts, if given)."""
        claims: list[Claim] = []
        for run_id in self._listed(QUEUE_DIR):
            if len(claims) >= limit:
                break
            if only is not None and not only(run_id):
                continue
            claim = self.claim(run_id, owner, lease_seconds)
            if claim is not None:
                claims.append(claim)
        return claims

    def renew(self, run_id: str, attempt: int, owner: str, lease_seconds: int) -> bool:
        """Extend our lease; False when the run moved on without us."""
        with self._locked(run_id) as folder:
            doc = self._read(folder)
            lease = (doc or {}).get("lease") or {}
            if doc is None or doc["attempt"] != attempt or lease.get("owner") != owner or doc["status"] != "PROCESSING":
                return False
            lease["expires_at"] = (utcnow() + timedelta(seconds=lease_seconds)).isoformat()
            self._write(folder, doc)
            return True

    def requeue(self, run_id: str, attempt: int, reason: str) -> bool:
        """Return an interrupted run to QUEUED so a later claim resumes it."""
        with self._locked(run_id) as folder:
            doc = self._read(folder)
            if doc is None or doc["attempt"] != attempt or doc["status"] != "PROCESSING":
                return False
            doc["lease"] = None
            doc["last_interruption"] = reason
            self._mark(QUEUE_DIR, run_id)
            self._write(folder, doc, RunStatus.QUEUED)
            self._unmark(LEASE_DIR, run_id)
            return True

    def leases(self) -> list[Lease]:
        """Every PROCESSING run with its lease."""
        found = []
        for run_id in self._listed(LEASE_DIR):
            doc = self._read(self.run_dir(run_id))
            if doc is None or doc["status"] != "PROCESSING":
                self._unmark(LEASE_DIR, run_id)
                continue
            lease = doc.get("lease") or {}
            found.append(Lease(run_id, doc["attempt"], lease.get("owner"), _parse(lease.get("expires_at"))))
        return found

    def report_path(self, run_id: str) -> Path:
        """Where report.md of the run is (or will be)."""
        return self.run_dir(run_id) / REPORT_FILE

    def close(self) -> None:
        """Nothing to release: files are opened per call."""


def _add_stage_files(folder: Path, doc: dict[str, Any]) -> None:
    """Count each stage whose file exists as completed (its file's time as completed_at), in ``doc``."""
    for number in STAGE_NUMBERS:
        if str(number) in doc["stages"]:
            continue
        try:
            written = (folder / STAGE_FILES[number]).stat().st_mtime
        except FileNotFoundError:
            continue
        done = datetime.fromtimestamp(written, UTC).isoformat()
        doc["stages"][str(number)] = {"status": "completed", "started_at": None, "completed_at": done,
                                      "duration_ms": None}
        doc["current_stage"] = max(number, doc.get("current_stage") or 0)


def _claimable(doc: dict[str, Any]) -> bool:
    if doc["status"] == "QUEUED":
        return True
    if doc["status"] != "PROCESSING":
        return False
    # A PROCESSING run without a lease is driven by the CLI, which resumes it itself.
    lease = doc.get("lease")
    expires = _parse(lease["expires_at"]) if lease else None
    return expires is not None and expires <= utcnow()


# The run.json fields a heal brings in line with the record (transitions and lease stay the mirror's).
HEALED_KEYS = ("request", "attempt", "current_stage", "stages", "error", "completed_at")


def _doc_of(state: RunState, previous: dict[str, Any] | None) -> dict[str, Any]:
    """run.json for ``state``, keeping the mirror's own history (transitions, lease) from ``previous``."""
    old = previous or {}
    stages = {}
    for number, stage in sorted(state.stages.items()):
        completed = stage.completed_at
        duration = stage.duration_ms
        started = completed - timedelta(milliseconds=duration) if completed and duration is not None else None
        stages[str(number)] = {"status": stage.status, "started_at": _iso(started), "completed_at": _iso(completed),
                               "duration_ms": duration}
    return {
        "run_id": state.run_id,
        "status": old.get("status", str(state.status)),  # _write records the transition to the new one
        "request": state.request.as_dict(),
        "attempt": state.attempt,
        "current_stage": state.current_stage,
        "created_at": old.get("created_at") or state.created_at.isoformat(),
        "updated_at": old.get("updated_at") or state.updated_at.isoformat(),
        "completed_at": _iso(state.completed_at),
        "stages": stages,
        "error": state.error.as_dict() if state.error else None,
        "lease": None if state.status.finished else old.get("lease"),
        "transitions": list(old.get("transitions") or []),
        "last_interruption": state.extra.get("last_interruption", old.get("last_interruption")),
    }


def _state(doc: dict[str, Any]) -> RunState:
    request = RunRequest(**doc["request"])
    error = doc.get("error")
    return RunState(
        request=request,
        status=RunStatus(doc["status"]),
        attempt=doc["attempt"],
        current_stage=doc.get("current_stage"),
        stages={
            int(n): StageState(s["status"], _parse(s.get("completed_at")), s.get("duration_ms"))
            for n, s in doc["stages"].items()
        },
        error=RunErrorInfo(**error) if error else None,
        created_at=datetime.fromisoformat(doc["created_at"]),
        updated_at=datetime.fromisoformat(doc["updated_at"]),
        completed_at=_parse(doc.get("completed_at")),
        extra={"lease": doc.get("lease"), "last_interruption": doc.get("last_interruption")},
        usage=RunUsage.from_dict(doc),
    )
