"""``build_query(settings)``: the RunQuery for the mode of contract §3."""

from __future__ import annotations

from config.modes import Mode
from config.settings import Settings
from persistence.query.dual import DualRunQuery
from persistence.query.files import FileRunQuery
from persistence.query.ports import RunQuery


def build_query(settings: Settings) -> RunQuery:
    """FILE_ONLY: the files; DATABASE_ONLY: PostgreSQL; DUAL_WRITE: PostgreSQL, then the files."""
    settings.require_runnable()
    files = FileRunQuery(settings.output_dir)
    if settings.mode is Mode.FILE_ONLY or not settings.database_url:
        return files
    # Imported here so FILE_ONLY processes never load the database driver.
    from persistence.query.postgres import PostgresRunQuery

    database = PostgresRunQuery(settings.database_url)
    return DualRunQuery(database, files) if settings.mode is Mode.DUAL_WRITE else database
