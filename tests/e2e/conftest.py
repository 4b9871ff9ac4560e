"""End-to-end tests may use a real, migrated PostgreSQL: the fixtures of tests/pgfixtures.py."""

from tests.pgfixtures import *  # noqa: F401,F403  (database_url, empty_database_url, pg_server_url, pg_template)
