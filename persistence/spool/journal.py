"""The spool: a durable journal of database writes the database has not confirmed yet.

    spool_dir/<seq:020d>.<run_id>.<kind>.json    one record per write command, in write order
    spool_dir/dead/<same name> + <name>.reason.json   records the database keeps refusing
    spool_dir/.seq    the host's last sequence number      spool_dir/.replay.lock
    spool_dir/.runs/<run_id>    the run's marker: it exists while the run may have records

A record is one write command as JSON (``{"seq", "run_id", "kind", "command", "spooled_at"}``),
written to a temporary file, fsynced and renamed into place (persistence.atomic), so a SIGKILL
leaves either the whole record or nothing. Records of older releases (``{"verb", "args"}``)
still read as the same commands (``legacy``).
Replay deletes a record only after the database confirmed it; a crash between the two re-applies
it later, which is harmless because every store write is an idempotent, fenced upsert.

The run markers keep "does this run have spooled writes?" (asked before every write) O(1) however
long the backlog: a record never exists without its run's marker. ``append`` creates the marker
durably and holds a shared flock on it while it writes the record; replay removes a marker only
under an exclusive flock, after a listing shows the run has no record left. A marker without
records (a crash between the two) only spools the run's next write, which the next drain
applies and cleans up. ``.runs/.built`` says every record older than the markers has one (a
spool written before markers existed is indexed once, on first use).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.errors import RunnerError
from config.log import get_logger
from config.paths import check_run_id
from persistence import atomic
from persistence.commands import KINDS, Command, command_from_json
from persistence.spool.legacy import legacy_command

log = get_logger(__name__)

SEQ_FILE = ".seq"
SEQ_LOCK = ".seq.lock"
DEAD_DIR = "dead"
REASON_SUFFIX = ".reason.json"
RUNS_DIR = ".runs"
BUILT = ".built"
FORGET_CHUNK = 200  # markers locked at once while cleaning up (bounded file descriptors)


@dataclass(frozen=True)
class SpoolRecord:
    """One journalled write: where it lives, its order, its run, its kind and (lazily) its body."""

    path: Path
    seq: int
    run_id: str
    kind: str

    def body(self) -> dict[str, Any]:
        """The record's JSON: {"seq", "run_id", "kind", "command", "spooled_at"} (or an old record's)."""
        return atomic.read_json(self.path)

    def command(self) -> Command:
        """The write command the record holds (old ``verb``/``args`` records included)."""
        return command_of(self.body())


def command_of(body: dict[str, Any]) -> Command:
    """The command of a record body, in today's format or the one before typed commands."""
    if "command" in body:
        return command_from_json(body["command"])
    return legacy_command(body["verb"], body["args"])


def _is_record_name(name: str) -> bool:
    return name[:1].isdigit() and name.endswith(".json")


def _parse_name(path: Path) -> SpoolRecord | None:
    parts = path.name.split(".")
    if len(parts) != 4 or parts[3] != "json" or not parts[0].isdigit() or parts[2] not in KINDS:
        return None  # temp files (".name.xyz.tmp"), locks, sidecars, strangers
    return SpoolRecord(path, int(parts[0]), parts[1], parts[2])


class Journal:
    """The journal under ``spool_dir``: append, list lazily in order, markers, dead letters."""

    def __init__(self, spool_dir: Path) -> None:
        self.dir = spool_dir
        self.dead_dir = spool_dir / DEAD_DIR
        self.runs_dir = spool_dir / RUNS_DIR
        self._run_marker_prefix = f"{self.runs_dir}{os.sep}"  # has_pending joins strings: no Path per webhook
        self._indexed = False

    @contextmanager
    def _flock(self, name: str, *, blocking: bool = True) -> Iterator[bool]:
        atomic.ensure_dir(self.dir)
        with open(self.dir / name, "a+b") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _next_seq(self) -> int:
        """A host-wide increasing number; never below the clock, so a lost .seq cannot reuse one."""
        with self._flock(SEQ_LOCK):
            path = self.dir / SEQ_FILE
            last = int(path.read_text().strip() or 0) if path.exists() else 0
            seq = max(last + 1, time.time_ns())
            atomic.write_bytes(path, f"{seq}\n".encode())
            return seq

    def append(self, command: Command) -> SpoolRecord:
        """Journal one write command durably; once this returns the write cannot be lost."""
        run_id = check_run_id(command.run_id)
        body: dict[str, Any] = {"seq": 0, "run_id": run_id, "kind": command.kind, "command": command.to_json(),
                                "spooled_at": time.time()}
        with self._marked(run_id):
            body["seq"] = seq = self._next_seq()
            path = self.dir / f"{seq:020d}.{run_id}.{command.kind}.json"
            atomic.write_json(path, body)
        log.info("spool_appended", run_id=run_id, kind=command.kind, seq=seq)
        return SpoolRecord(path, seq, run_id, command.kind)

    # -- the run markers ---------------------------------------------------------------------

    def _index(self) -> None:
        """Make sure every record has its run's marker (once per spool folder, then a stat)."""
        if self._indexed:
            return
        built = self.runs_dir / BUILT
        if not built.exists():
            atomic.ensure_dir(self.runs_dir)
            for name in self._names():
                run_id = name.split(".")[1]
                if not (self.runs_dir / run_id).exists():
                    (self.runs_dir / run_id).touch()
            atomic.fsync_dir(self.runs_dir)
            atomic.write_bytes(built, b"")
            log.info("spool_runs_indexed")
        self._indexed = True

    @contextmanager
    def _marked(self, run_id: str) -> Iterator[None]:
        """Hold the run's marker (created durably if new) shared while a record is written."""
        self._index()
        path = self.runs_dir / run_id
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                created = True
            except FileNotFoundError:
                self._indexed = False  # the spool folder was removed under us: index it again
                self._index()
                continue
            except FileExistsError:
                try:
                    fd = os.open(path, os.O_RDWR)
                except FileNotFoundError:
                    continue  # removed between the two opens: create it again
                created = False
            fcntl.flock(fd, fcntl.LOCK_SH)
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # replay removed this marker while we waited: take the new one
        try:
            if created:
                atomic.fsync_dir(self.runs_dir)  # the marker must survive whatever its record does
            yield
        finally:
            os.close(fd)  # releases the flock

    def _forget(self, run_ids: set[str]) -> None:
        """Remove the markers of runs left without records (under an exclusive flock each)."""
        ordered = sorted(run_ids)
        for start in range(0, len(ordered), FORGET_CHUNK):
            held: list[tuple[str, int]] = []
            try:
                for run_id in ordered[start:start + FORGET_CHUNK]:
                    try:
                        fd = os.open(self.runs_dir / run_id, os.O_RDWR)
                    except FileNotFoundError:
                        continue
                    held.append((run_id, fd))
                    fcntl.flock(fd, fcntl.LOCK_EX)
                left = {name.split(".")[1] for name in self._names()}
                for run_id, fd in held:
                    path = self.runs_dir / run_id
                    if run_id not in left and os.stat(path).st_ino == os.fstat(fd).st_ino:
                        path.unlink()  # not fsynced: a marker that comes back is only stale
            finally:
                for _, fd in held:
                    os.close(fd)

    # -- listing ------------------------------------------------------------------------------

    def _names(self, run_id: str | None = None) -> list[str]:
        # Names only (tens of bytes each): 10,000 records cost well under a megabyte. A run's
        # records are picked by name before anything is built or sorted.
        marker = f".{run_id}." if run_id is not None else ""
        try:
            with os.scandir(self.dir) as entries:
                return sorted(e.name for e in entries
                              if marker in e.name and _is_record_name(e.name) and e.is_file())
        except FileNotFoundError:
            return []

    def pending(self, run_id: str | None = None) -> Iterator[SpoolRecord]:
        """Records not yet confirmed, oldest first; bodies are read only when asked for."""
        if run_id is not None and not self.has_pending(run_id):
            return
        for name in self._names(run_id):
            record = _parse_name(self.dir / name)
            if record is not None and (run_id is None or record.run_id == run_id):
                yield record

    def has_pending(self, run_id: str) -> bool:
        """True while ``run_id`` may have records waiting (its later writes must queue behind them)."""
        if not self._indexed and not self.dir.exists():
            return False
        try:
            self._index()
        except OSError:
            return bool(self._names(run_id))  # the index cannot be built (a full disk): list instead
        return os.path.exists(self._run_marker_prefix + run_id)

    def any_pending(self) -> bool:
        """True if any record waits; stops at the first one found."""
        try:
            with os.scandir(self.dir) as entries:
                return any(_is_record_name(e.name) for e in entries)
        except FileNotFoundError:
            return False

    def count(self) -> int:
        """How many records wait for replay (the /health spool_backlog): names are not parsed."""
        try:
            with os.scandir(self.dir) as entries:
                return sum(1 for e in entries if _is_record_name(e.name))
        except FileNotFoundError:
            return 0

    def dead(self) -> Iterator[SpoolRecord]:
        """Records moved aside because the database refused them for good."""
        if not self.dead_dir.exists():
            return
        for name in sorted(os.listdir(self.dead_dir)):
            record = _parse_name(self.dead_dir / name)
            if record is not None:
                yield record

    def discard(self, record: SpoolRecord) -> None:
        """Forget a record the database confirmed (a missing file means another replayer did)."""
        try:
            record.path.unlink()
        except FileNotFoundError:
            log.warning("spool_record_already_gone", run_id=record.run_id, seq=record.seq)

    def revive(self, record: SpoolRecord) -> SpoolRecord:
        """Put a dead letter back at the end of the journal (an operator fixed its cause).

        Appended first, then removed from dead/: a crash in between leaves the letter in both
        places, and replaying a command twice changes nothing.
        """
        revived = self.append(record.command())
        (self.dead_dir / (record.path.name + REASON_SUFFIX)).unlink(missing_ok=True)
        record.path.unlink(missing_ok=True)
        atomic.fsync_dir(self.dead_dir)
        log.info("spool_record_revived", run_id=record.run_id, kind=record.kind, seq=revived.seq)
        return revived

    def bury(self, record: SpoolRecord, exc: BaseException) -> None:
        """Move a record the database refuses for good to dead/, with the reason beside it."""
        atomic.ensure_dir(self.dead_dir)
        reason = {"error": type(exc).__name__, "code": exc.code if isinstance(exc, RunnerError) else None,
                  "message": str(exc), "run_id": record.run_id, "kind": record.kind, "seq": record.seq,
                  "at": time.time()}
        # Sidecar first: a crash between the two steps leaves a stray reason, never a silent record.
        atomic.write_json(self.dead_dir / (record.path.name + REASON_SUFFIX), reason)
        os.replace(record.path, self.dead_dir / record.path.name)
        atomic.fsync_dir(self.dead_dir)
        atomic.fsync_dir(self.dir)
        log.error("spool_record_dead", run_id=record.run_id, kind=record.kind, seq=record.seq,
                  error=type(exc).__name__, reason=str(exc))

    def _fsync_dir(self) -> None:
        """Make the folder's latest deletions durable."""
        atomic.fsync_dir(self.dir)
