"""PostgresPruner: deletes finished "PipelineRun" rows; stage rows, cards and callbacks cascade."""

from __future__ import annotations

from datetime import datetime

from persistence.pgpool import LazyPool

PRUNE = """
DELETE FROM "PipelineRun"
WHERE status IN ('COMPLETED', 'FAILED', 'CANCELLED')
  AND coalesce("completedAt", "updatedAt") < %(cutoff)s
RETURNING id
"""

DRY_RUN = """
SELECT id FROM "PipelineRun"
WHERE status IN ('COMPLETED', 'FAILED', 'CANCELLED')
  AND coalesce("completedAt", "updatedAt") < %(cutoff)s
ORDER BY id
"""


class PostgresPruner:
    """Prunes runs in PostgreSQL in one statement (one transaction)."""

    name = "database"

    def __init__(self, pool: LazyPool) -> None:
        self.pool = pool

    def prune(self, cutoff: datetime, *, dry_run: bool = False) -> list[str]:
        """Delete (or, dry, list) the finished rows that ended before ``cutoff``."""
        rows = self.pool.rows("prune_runs", DRY_RUN if dry_run else PRUNE, {"cutoff": cutoff})
        return sorted(str(row[0]) for row in rows)

    def close(self) -> None:
        """Close the pool."""
        self.pool.close()
