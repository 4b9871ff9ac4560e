"""End-to-end tests may use a real, migrated PostgreSQL: the fixtures of tests/pgfixtures.py."""

from collections.abc import Iterator

import pytest

from tests.blobserver import BlobServer, start_blob_server
from tests.e2e.run_modes import SAMPLES
from tests.fake_openrouter import FakeOpenRouter, start_fake_openrouter
from tests.pgfixtures import *  # noqa: F401,F403  (database_url, empty_database_url, pg_server_url, pg_template)


@pytest.fixture
def blob() -> Iterator[BlobServer]:
    """The local Vercel Blob stand-in, serving the bundled samples as report.txt and report.md."""
    server = start_blob_server()
    server.add_file("report.txt", (SAMPLES / "outdoor-gear-circularity.txt").read_bytes(), "text/plain")
    server.add_file("report.md", (SAMPLES / "convenience-reinvented.md").read_bytes(), "text/markdown")
    yield server
    server.gate.set()  # a test may have shut it: let any fetch still waiting finish
    server.close()


@pytest.fixture
def llm() -> Iterator[FakeOpenRouter]:
    """The local chat-completions server standing in for OpenRouter."""
    fake = start_fake_openrouter()
    yield fake
    fake.close()
