"""Migration files on disk: ``NNNN_name.up.sql`` + ``NNNN_name.down.sql``, no database involved.

The folder is append-only: a migration, once applied anywhere, is never edited (its sha256 is
recorded and an edit is reported as drift). Each file runs inside one transaction, so it must
not contain BEGIN/COMMIT nor statements that refuse a transaction (CREATE INDEX CONCURRENTLY).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "sql" / "migrations"
FILE_PATTERN = re.compile(r"(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.(?P<direction>up|down)\.sql")


class MigrationFileError(ValueError):
    """The migrations folder is malformed (a missing down step, a duplicate version, a stray file)."""


@dataclass(frozen=True)
class Migration:
    """One numbered migration: its up and down SQL and the checksum of the up step."""

    version: int
    name: str
    up_sql: str
    down_sql: str
    checksum: str

    @property
    def label(self) -> str:
        """``0002_add_stage_outputs_and_report``: how logs and tables name it."""
        return f"{self.version:04d}_{self.name}"


def checksum(data: bytes) -> str:
    """sha256 hex digest of a migration's up file, as recorded in runner_schema_migrations."""
    return hashlib.sha256(data).hexdigest()


def load_migrations(folder: Path | None = None) -> tuple[Migration, ...]:
    """Every migration in ``folder`` (default ``sql/migrations``), sorted by version.

    Raises MigrationFileError when a ``.sql`` file does not follow the naming scheme, a version
    is used twice, or a migration lacks its up or down step.
    """
    folder = folder or DEFAULT_MIGRATIONS_DIR
    if not folder.is_dir():
        raise MigrationFileError(f"migrations folder {folder} does not exist")
    parts: dict[int, dict[str, tuple[str, bytes]]] = {}
    names: dict[int, str] = {}
    for path in sorted(folder.glob("*.sql")):
        match = FILE_PATTERN.fullmatch(path.name)
        if match is None:
            raise MigrationFileError(
                f"{path.name} in {folder} is not named NNNN_name.up.sql or NNNN_name.down.sql "
                "(lowercase name, four-digit version)"
            )
        version, name = int(match["version"]), match["name"]
        if names.setdefault(version, name) != name:
            raise MigrationFileError(
                f"version {version:04d} is used by two migrations: {names[version]} and {name}"
            )
        parts.setdefault(version, {})[match["direction"]] = (path.name, path.read_bytes())
    migrations = []
    for version in sorted(parts):
        steps = parts[version]
        for direction in ("up", "down"):
            if direction not in steps:
                raise MigrationFileError(
                    f"migration {version:04d}_{names[version]} has no {direction} step: "
                    f"add {version:04d}_{names[version]}.{direction}.sql"
                )
        up_bytes, down_bytes = steps["up"][1], steps["down"][1]
        migrations.append(
            Migration(
                version=version,
                name=names[version],
                up_sql=up_bytes.decode("utf-8"),
                down_sql=down_bytes.decode("utf-8"),
                checksum=checksum(up_bytes),
            )
        )
    return tuple(migrations)
