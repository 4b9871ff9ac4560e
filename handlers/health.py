"""The /health service: can this process record runs right now, and how well?

    unhealthy (503)  nothing can be written: INVALID mode, or every place a write could go
                     (database, files, spool) is unavailable; a disk with less than
                     MIN_FREE_BYTES free counts as unwritable (``disk_free_bytes`` reports it)
    degraded  (200)  runs are still recorded, but somewhere second-best (database down, breaker
                     open, spool backlog, schema behind/drifted, a fallback folder not writable)
    healthy   (200)  everything as configured

The database probe (``ping`` + ``schema_state`` on the store's database side) runs in a daemon
thread, is awaited for at most ``PROBE_TIMEOUT_S`` and its answer cached for ``PROBE_TTL_S``, one
probe in flight per app: a dead database makes /health answer fast, never pile up threads.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.errors import StoreError
from config.log import get_logger
from config.modes import Mode
from config.settings import Settings
from persistence.errors import free_bytes
from persistence.ports import Pingable

log = get_logger(__name__)

PROBE_TIMEOUT_S = 1.0
MIN_FREE_BYTES = 64 * 1024  # below this OUTPUT_DIR counts as full: a stage output or spool record needs more
PROBE_TTL_S = 5.0


@dataclass(frozen=True)
class HealthReport:
    """The /health answer: an HTTP status and its JSON body."""

    http_status: int
    body: dict[str, Any]


class DatabaseProbe:
    """A bounded, cached, single-flight probe of one database; safe to share between threads."""

    def __init__(self, target: Pingable | None, *, timeout_s: float = PROBE_TIMEOUT_S, ttl_s: float = PROBE_TTL_S):
        self.target = target
        self.timeout_s = timeout_s
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._done.set()
        self._checked_at = float("-inf")
        self._connection = "failed"
        self._schema = "unknown"

    def _run(self) -> None:
        """Worker thread: ping, then ask the schema; each answer is published as soon as known."""
        target = self.target
        if target is None:  # check() never starts a probe without a target
            self._done.set()
            return
        try:
            try:
                target.ping(self.timeout_s)
            except StoreError as exc:
                log.warning("health_database_failed", code=exc.code, reason=exc.message)
                return
            with self._lock:
                self._connection = "healthy"
            try:
                schema = target.schema_state()
            except StoreError as exc:
                log.warning("health_schema_unknown", code=exc.code, reason=exc.message)
                schema = "unknown"
            with self._lock:
                self._schema = schema
        finally:
            self._done.set()

    def check(self) -> tuple[str, str]:
        """(database_connection, schema): 'skipped'/'unknown' with no database."""
        if self.target is None:
            return "skipped", "unknown"
        with self._lock:
            now = time.monotonic()
            if now - self._checked_at >= self.ttl_s and self._done.is_set():
                self._checked_at = now
                self._done.clear()
                # Until the new probe answers, assume the worst: a hung database never answers.
                self._connection, self._schema = "failed", "unknown"
                threading.Thread(target=self._run, name="health-probe", daemon=True).start()
            # Every caller waits only inside the first timeout_s of a probe, never longer.
            remaining = self._checked_at + self.timeout_s - now
            done = self._done
        if remaining > 0:
            done.wait(remaining)
        with self._lock:
            return self._connection, self._schema


_PROBES: weakref.WeakKeyDictionary[Any, DatabaseProbe] = weakref.WeakKeyDictionary()
_PROBES_LOCK = threading.Lock()


def probe_for(owner: Any, database: Pingable | None) -> DatabaseProbe:
    """The probe cached for ``owner`` (the Flask app), of ``database`` (None: no database in this mode)."""
    with _PROBES_LOCK:
        probe = _PROBES.get(owner)
        if probe is None:
            probe = DatabaseProbe(database)
            _PROBES[owner] = probe
        return probe


def writable(path: Path) -> bool:
    """True if ``path`` (or, while it does not exist yet, its nearest existing parent) is writable."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate.is_dir() and os.access(candidate, os.W_OK | os.X_OK)
    return False


def version(settings: Settings) -> str:
    """The deployed commit (short), or 'dev' outside Railway."""
    sha = settings.extras.get("RAILWAY_GIT_COMMIT_SHA", "").strip()
    return sha[:7] if sha else "dev"


def check_health(settings: Settings, probe: DatabaseProbe, *, breaker_state: Any, spool_backlog: Any) -> HealthReport:
    """Assess the process; ``breaker_state``/``spool_backlog`` are the factory's functions of settings."""
    mode = settings.mode
    body: dict[str, Any] = {
        "status": "healthy", "mode": str(mode), "database_writes": mode.uses_database,
        "file_fallback": mode.writes_files, "database_connection": "skipped", "circuit": "closed",
        "spool_backlog": 0, "schema": "unknown", "version": version(settings),
        "environment": settings.railway_environment,
        # Whether OUTPUT_DIR (the spool) outlives this container, and where runs execute: what this
        # deployment does with a webhook during a database outage (see docs/runbook.md, 1.3).
        "durability": "durable" if settings.output_durable else "ephemeral",
        "durability_detail": settings.durability,
        "run_dispatch": settings.run_dispatch,
    }
    if mode is Mode.INVALID:
        body["status"] = "unhealthy"
        return HealthReport(503, body)
    problems: list[str] = []
    free = free_bytes(settings.output_dir)
    body["disk_free_bytes"] = free
    # A disk with less than MIN_FREE_BYTES left takes no run.json or spool record: not writable.
    room = free is None or free >= MIN_FREE_BYTES
    files_ok = writable(settings.output_dir) and room
    spool_ok = writable(settings.spool_dir) and room
    try:
        body["spool_backlog"] = spool_backlog(settings)
    except (OSError, StoreError) as exc:
        body["spool_backlog"] = None
        problems.append(f"spool unreadable: {type(exc).__name__}")
    database_ok = False
    if mode.uses_database:
        body["database_connection"], body["schema"] = probe.check()
        database_ok = body["database_connection"] == "healthy"
        try:
            body["circuit"] = breaker_state(settings)
        except (OSError, StoreError, ValueError) as exc:
            body["circuit"] = "open"
            problems.append(f"breaker state unreadable: {type(exc).__name__}")
    can_write = {
        Mode.FILE_ONLY: files_ok,
        Mode.DUAL_WRITE: files_ok or database_ok or spool_ok,
        Mode.DATABASE_ONLY: database_ok or spool_ok,
    }[mode]
    if not can_write:
        body["status"] = "unhealthy"
        return HealthReport(503, body)
    degraded = (
        problems
        or (mode.writes_files and not files_ok)
        or (mode.uses_database and (not database_ok or body["circuit"] != "closed" or not spool_ok
                                    or body["schema"] != "ok"))
        or bool(body["spool_backlog"])
    )
    if degraded:
        body["status"] = "degraded"
    return HealthReport(200, body)
