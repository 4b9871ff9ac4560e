"""``build_pruners(settings)``: a pruner for each place the mode keeps runs."""

from __future__ import annotations

from config.settings import Settings
from persistence.outbox.factory import OUTBOX_DIR
from persistence.retention.files import FilePruner
from persistence.retention.ports import RunPruner


def build_pruners(settings: Settings) -> list[RunPruner]:
    """PostgreSQL in the database modes, then the files wherever the mode writes them."""
    settings.require_runnable()
    pruners: list[RunPruner] = []
    if settings.mode.uses_database and settings.database_url:
        from persistence.pgpool import LazyPool
        from persistence.retention.postgres import PostgresPruner

        pruners.append(PostgresPruner(LazyPool(settings.database_url, name="prune", max_size=1)))
    if settings.mode.writes_files:
        pruners.append(FilePruner(settings.output_dir, settings.output_dir / OUTBOX_DIR))
    return pruners
