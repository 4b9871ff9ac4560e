"""Web server fixtures, loaded by test modules through ``pytest_plugins = ["tests.e2e.web_fixtures"]``."""

from __future__ import annotations

import signal
from collections.abc import Iterator, Mapping

import pytest

from tests.e2e.webserver import API_TOKEN, OTHER_SECRETS, WEBHOOK_SECRET, ServerFactory, WebServer, start_gunicorn


@pytest.fixture(scope="session")
def gunicorn_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Start any number of servers (each with its own OUTPUT_DIR); all are stopped at the end."""
    started: list[WebServer] = []

    def start(env: Mapping[str, str]) -> WebServer:
        server = start_gunicorn(tmp_path_factory.mktemp("web"), env)
        started.append(server)
        return server

    yield start
    # SIGTERM all of them first: each drains for a while, and one after another added minutes.
    for server in started:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGTERM)
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def web(gunicorn_factory: ServerFactory) -> WebServer:
    """The configured server: FILE_ONLY (database writes off), both secrets set."""
    return gunicorn_factory({"WEBHOOK_SECRET": WEBHOOK_SECRET, "API_TOKEN": API_TOKEN,
                             "ENABLE_DATABASE_WRITES": "false", **OTHER_SECRETS})
