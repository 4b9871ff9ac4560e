"""The one boundary where psycopg errors become the runner's error tree.

    connection lost, refused, timed out, server shutting down,
    statement/lock/idle timeouts, our own per-call deadline   -> StoreUnavailable (transient)
    a table, column or function the code expects is missing     -> SchemaMismatch
    any other psycopg error                                     -> StoreError

Messages name the action and the SQLSTATE but never the connection string: libpq messages
can echo parts of the URL, so a password found in the URL is blanked out of every message.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import errors as pgerr

from config.errors import SchemaMismatch, StoreError, StoreUnavailable

# SQLSTATEs that mean "this schema is not the one the code was written for".
SCHEMA_ERRORS: tuple[type[psycopg.Error], ...] = (
    pgerr.UndefinedTable,
    pgerr.UndefinedColumn,
    pgerr.UndefinedFunction,
    pgerr.UndefinedObject,
    pgerr.InvalidSchemaName,
    pgerr.WrongObjectType,
)
# Errors after which the same call may well succeed on a healthy connection.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,  # connection failures, QueryCanceled, LockNotAvailable, AdminShutdown, ...
    psycopg.InterfaceError,  # "the connection is closed"
    pgerr.IdleInTransactionSessionTimeout,
    OSError,
)


class DeadlineExceeded(Exception):
    """Raised inside the boundary when our watchdog cut a call that outlived its deadline."""


def redact(text: str, url: str | None) -> str:
    """``text`` with the URL's password (if any) blanked out."""
    if not url:
        return text
    try:
        password = urlsplit(url).password
    except ValueError:
        return text
    if password:
        for secret in {password, unquote(password)}:
            text = text.replace(secret, "***")
    return text


def describe(exc: BaseException, url: str | None = None) -> str:
    """A one-line, password-free description of a driver error: class, SQLSTATE, first line."""
    first = (str(exc).strip().splitlines() or [""])[0]
    state = exc.sqlstate if isinstance(exc, psycopg.Error) else None
    tag = f"{type(exc).__name__}{f' [{state}]' if state else ''}"
    return redact(f"{tag}: {first}" if first else tag, url)


@contextmanager
def wrap_exceptions(action: str, *, url: str | None = None, deadline_s: float | None = None) -> Iterator[None]:
    """Translate psycopg (and socket) errors raised in the block into StoreError subclasses.

    ``action`` says what was being done ("save_stage", "applying 0002_..."); it starts every
    message. Errors that are already part of the runner's tree pass through untouched.
    """
    try:
        yield
    except DeadlineExceeded as exc:
        raise StoreUnavailable(
            f"database {action} exceeded its {deadline_s or 0:g} s deadline; the connection was cut "
            "(network partition or an overloaded server)"
        ) from exc
    except SCHEMA_ERRORS as exc:
        raise SchemaMismatch(
            f"database {action} failed, the schema is not the one this code expects "
            f"({describe(exc, url)}): run `python -m persistence.migrate status`, then `up`"
        ) from exc
    except UNAVAILABLE_ERRORS as exc:
        raise StoreUnavailable(f"database {action} failed, database unavailable: {describe(exc, url)}") from exc
    except psycopg.Error as exc:
        raise StoreError(f"database {action} failed: {describe(exc, url)}") from exc


def is_transient(exc: BaseException) -> bool:
    """True when retrying the whole call later may succeed (the retry layer's predicate)."""
    return isinstance(exc, StoreUnavailable)
