"""``python -m persistence.migrate up | down [--to V] | status | plan``: the schema's command line.

The command lives in ``persistence.migrations.cli``; this module keeps the documented entry
point and re-exports the library API (``from persistence.migrate import upgrade``).
"""

from __future__ import annotations

import sys

from persistence.migrations.cli import (
    MigrationDrift,
    MigrationError,
    MigrationOptions,
    MigrationStatus,
    StepResult,
    downgrade,
    main,
    migration_status,
    plan,
    upgrade,
)

__all__ = ["MigrationDrift", "MigrationError", "MigrationOptions", "MigrationStatus", "StepResult", "downgrade",
           "main", "migration_status", "plan", "upgrade"]

if __name__ == "__main__":
    sys.exit(main())
