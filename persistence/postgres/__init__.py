"""PostgreSQL: connection handling (``connection``), the store (``store``), its queue and SQL, errors."""

from persistence.postgres.connection import DbTimeouts
from persistence.postgres.errors import is_transient, wrap_exceptions
from persistence.postgres.store import PostgresStore

__all__ = ["DbTimeouts", "PostgresStore", "is_transient", "wrap_exceptions"]
