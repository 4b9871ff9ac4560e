"""Issue 8's defects 4 and 5 over HTTP, against real gunicorn and a real full disk (a small tmpfs).

4. An unwritable spool while the database is down: POST /run answers 503 with a body that says
   nothing was recorded and to retry later (never a bare 500).
5. /health reports the free space of OUTPUT_DIR and answers 503 when nothing can be written.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e.webserver import API_TOKEN, WEBHOOK_SECRET, WebServer, payload, post_run, start_gunicorn
from tests.smalldisk import SmallDisk, small_disk

pytestmark = pytest.mark.timeout(240)


def refused_url() -> str:
    """A PostgreSQL URL on a local port where nothing listens: the database is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"postgresql://postgres@127.0.0.1:{port}/nowhere"


@pytest.fixture
def full_disk_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[WebServer, SmallDisk]]:
    """gunicorn whose OUTPUT_DIR is a small tmpfs, with the env the test parametrizes."""
    env: dict[str, str] = request.param
    with small_disk(tmp_path / "out", size="4m") as disk:
        server = start_gunicorn(tmp_path / "web", {"WEBHOOK_SECRET": WEBHOOK_SECRET, "API_TOKEN": API_TOKEN,
                                                   "OUTPUT_DIR": str(disk.path), **env})
        try:
            yield server, disk
        finally:
            disk.free()
            server.stop()


@pytest.mark.parametrize("full_disk_server", [{"DATABASE_URL": refused_url(), "ENABLE_FILE_FALLBACK": "false"}],
                         indirect=True)
def test_an_unwritable_spool_while_the_database_is_down_answers_503_with_a_clear_body(
        full_disk_server: tuple[WebServer, SmallDisk]) -> None:
    server, disk = full_disk_server
    disk.fill()
    response = post_run(server, payload("nowhere-to-go"))
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["code"] == "RUN_NOT_RECORDED"
    assert "not recorded" in body["error"] and "retry" in body["error"]


@pytest.mark.parametrize("full_disk_server", [{"ENABLE_DATABASE_WRITES": "false"}], indirect=True)
def test_health_reports_free_space_and_is_503_when_nothing_can_be_written(
        full_disk_server: tuple[WebServer, SmallDisk]) -> None:
    server, disk = full_disk_server
    roomy = requests.get(server.url("/health"), timeout=10)
    assert roomy.status_code == 200 and roomy.json()["disk_free_bytes"] > 0
    disk.fill()
    full = requests.get(server.url("/health"), timeout=10)
    assert full.status_code == 503, full.text
    assert full.json()["status"] == "unhealthy" and full.json()["disk_free_bytes"] < 64 * 1024
    disk.free()
    assert requests.get(server.url("/health"), timeout=10).status_code == 200
