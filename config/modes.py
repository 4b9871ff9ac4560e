"""The four persistence modes chosen by ENABLE_DATABASE_WRITES and ENABLE_FILE_FALLBACK."""

from __future__ import annotations

from enum import StrEnum


class Mode(StrEnum):
    """Where run state and stage outputs are written (contract §3)."""

    DATABASE_ONLY = "DATABASE_ONLY"
    DUAL_WRITE = "DUAL_WRITE"
    FILE_ONLY = "FILE_ONLY"
    INVALID = "INVALID"

    @classmethod
    def choose(cls, *, database_writes: bool, database_configured: bool, file_fallback: bool) -> Mode:
        """Apply the contract's mode table; no database URL means database writes are off."""
        database = database_writes and database_configured
        if database:
            return cls.DUAL_WRITE if file_fallback else cls.DATABASE_ONLY
        return cls.FILE_ONLY if file_fallback else cls.INVALID

    @property
    def uses_database(self) -> bool:
        """True when PostgreSQL is the system of record."""
        return self in (Mode.DATABASE_ONLY, Mode.DUAL_WRITE)

    @property
    def writes_files(self) -> bool:
        """True when every output is also written under OUTPUT_DIR as files."""
        return self in (Mode.DUAL_WRITE, Mode.FILE_ONLY)
