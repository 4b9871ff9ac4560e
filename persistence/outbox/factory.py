"""``build_outbox(settings)``: files in FILE_ONLY, PostgreSQL when the mode writes to a database."""

from __future__ import annotations

from config.settings import Settings
from persistence.files import FileStore
from persistence.outbox.files import FileOutbox
from persistence.outbox.ports import CallbackOutbox

OUTBOX_DIR = ".outbox"


def outbox_dir(settings: Settings) -> FileOutbox:
    """The file outbox of OUTPUT_DIR; it sends only ends the run files record."""
    return FileOutbox(settings.output_dir / OUTBOX_DIR, ledger=FileStore(settings.output_dir))


def build_outbox(settings: Settings) -> CallbackOutbox:
    """The outbox the mode's terminal writes fill (see persistence.outbox)."""
    settings.require_runnable()
    if not settings.mode.uses_database or not settings.database_url:
        return outbox_dir(settings)
    from persistence.outbox.postgres import PostgresOutbox
    from persistence.pgpool import LazyPool

    return PostgresOutbox(LazyPool(settings.database_url, name="callback-outbox", max_size=2))
