"""What the migrator reports and raises: plain frozen values and the migration errors.

Kept apart from ``migrator`` (which talks to PostgreSQL) so the CLI, the health check and tests
can use them without reading the machinery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from config.errors import StoreError
from persistence.migrations.files import Migration


class MigrationError(StoreError):
    """Migrations could not be applied or rolled back; the message says why and what to do."""

    code = "MIGRATION_FAILED"


class MigrationDrift(MigrationError):
    """An applied migration's file changed, or the database has migrations this code lacks."""

    code = "SCHEMA_DRIFT"


class MigrationUsageError(MigrationError):
    """The request makes no sense for this database (e.g. ``up --to`` an older version)."""

    code = "MIGRATION_USAGE"


@dataclass(frozen=True)
class MigrationOptions:
    """How patient and how careful a migration run is. Tests shrink the timeouts."""

    migrations_dir: Path | None = None
    lock_wait_s: float = 60.0  # total wait for the advisory lock held by another deploy
    lock_timeout_s: float = 5.0  # how long one DDL statement may queue for a table lock
    statement_timeout_s: float = 300.0
    lock_retries: int = 5  # attempts per migration when its table lock is not granted
    connect_timeout_s: int = 10


@dataclass(frozen=True)
class AppliedMigration:
    """A row of runner_schema_migrations."""

    version: int
    name: str
    checksum: str
    applied_at: datetime | None = None
    duration_ms: int | None = None

    @property
    def label(self) -> str:
        """``0002_add_stage_outputs_and_report``."""
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True)
class MigrationStatus:
    """Where the database stands against the migration files."""

    applied: tuple[AppliedMigration, ...]
    pending: tuple[Migration, ...]
    drifted: tuple[AppliedMigration, ...]
    unknown: tuple[AppliedMigration, ...]

    @property
    def state(self) -> str:
        """'drift' (an applied file changed), 'unknown' (the database is ahead of the code),
        'behind' (migrations pending) or 'ok'."""
        if self.drifted:
            return "drift"
        if self.unknown:
            return "unknown"
        return "behind" if self.pending else "ok"

    @property
    def version(self) -> int:
        """The highest applied version (0 for an empty database)."""
        return max((m.version for m in self.applied), default=0)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, for ``status --json`` and the health check."""

        def applied(m: AppliedMigration) -> dict[str, Any]:
            return {"version": m.version, "name": m.name, "checksum": m.checksum,
                    "applied_at": m.applied_at.isoformat() if m.applied_at else None,
                    "duration_ms": m.duration_ms}

        return {
            "state": self.state,
            "version": self.version,
            "applied": [applied(m) for m in self.applied],
            "pending": [{"version": m.version, "name": m.name, "checksum": m.checksum} for m in self.pending],
            "drifted": [applied(m) for m in self.drifted],
            "unknown": [applied(m) for m in self.unknown],
        }


@dataclass(frozen=True)
class StepResult:
    """One migration step that ran (or, for ``plan``, would run)."""

    version: int
    name: str
    direction: str  # "up" | "down"
    duration_ms: float
    locks: tuple[tuple[str, str], ...] = field(default=())  # (relation, mode), plan only

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"version": self.version, "name": self.name, "direction": self.direction,
                "duration_ms": round(self.duration_ms, 1),
                "locks": [{"relation": r, "mode": m} for r, m in self.locks]}
