"""Real-PostgreSQL fixtures for integration and e2e tests (a pytest plugin module).

    pg_server_url       session   the server's base URL ($TEST_DATABASE_URL or local postgres)
    pg_template         session   a template database with every migration applied once
    database_url        function  a fresh database cloned from the template: migrated, empty
    empty_database_url  function  a fresh database with no tables at all

Each test gets its own database (``CREATE DATABASE … TEMPLATE``, milliseconds), so tests never
see each other's rows and may break their database at will. Everything created is dropped.
A server that is not running fails the test with the command to start it: never a skip.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from persistence.migrations.engine import upgrade

# What conftest files take with ``import *``: the fixtures (helpers are imported by name).
__all__ = ["database_url", "empty_database_url", "pg_server_url", "pg_template", "url_for_database"]

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
START_HINT = (
    "start it with `pg_ctlcluster --skip-systemctl-redirect 15 main start` "
    "(or point TEST_DATABASE_URL at a PostgreSQL 14+ server whose user may CREATE DATABASE)"
)


def backends(url: str, application_name: str) -> int:
    """How many sessions of ``application_name`` the database at ``url`` lists now."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND application_name = %s", (application_name,)).fetchone()
    return int(row[0]) if row else 0


def wait_for_backends(url: str, application_name: str, at_most: int) -> int:
    """Wait until at most ``at_most`` sessions of ``application_name`` are listed; return the count.

    A backend leaves pg_stat_activity a moment after its client closes the connection, so a
    count taken right after close() can still include it. The 30 s bound is a hang guard only.
    """
    deadline = time.monotonic() + 30
    while (count := backends(url, application_name)) > at_most:
        assert time.monotonic() < deadline, f"{count} {application_name} sessions stayed open (at most {at_most})"
        time.sleep(0.05)
    return count


def url_for_database(server_url: str, name: str) -> str:
    """``server_url`` pointing at database ``name`` (credentials, host and query kept)."""
    return urlsplit(server_url)._replace(path="/" + name).geturl()


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def _admin(server_url: str) -> psycopg.Connection:
    return psycopg.connect(server_url, autocommit=True, connect_timeout=5)


def _create(server_url: str, name: str, template: str | None = None) -> None:
    statement = (sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
                 if template else sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with _admin(server_url) as conn:
        conn.execute(statement)


def _drop(server_url: str, name: str) -> None:
    with _admin(server_url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """Base URL of the test server; fails (never skips) with a how-to when it is down."""
    url = os.environ.get("TEST_DATABASE_URL", DEFAULT_SERVER_URL)
    try:
        with _admin(url) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        host = urlsplit(url).hostname
        pytest.fail(f"PostgreSQL for the tests is not reachable at {host} ({type(exc).__name__}): {START_HINT}",
                    pytrace=False)
    return url


@pytest.fixture(scope="session")
def pg_template(pg_server_url: str) -> Iterator[str]:
    """Name of a session template database with all migrations applied (once)."""
    name = _unique("runner_tpl")
    _create(pg_server_url, name)
    try:
        upgrade(url_for_database(pg_server_url, name))
        yield name
    finally:
        _drop(pg_server_url, name)


@pytest.fixture
def database_url(pg_server_url: str, pg_template: str) -> Iterator[str]:
    """URL of a fresh, fully migrated, empty database, dropped after the test."""
    name = _unique("runner_test")
    _create(pg_server_url, name, template=pg_template)
    try:
        yield url_for_database(pg_server_url, name)
    finally:
        _drop(pg_server_url, name)


@pytest.fixture
def empty_database_url(pg_server_url: str) -> Iterator[str]:
    """URL of a fresh database with no migrations applied, dropped after the test."""
    name = _unique("runner_empty")
    _create(pg_server_url, name)
    try:
        yield url_for_database(pg_server_url, name)
    finally:
        _drop(pg_server_url, name)
