"""Issue 8's defects 4 and 5 over HTTP, against real gunicorn and a real full disk (a small tmpfs).

4. An unwritable spool while the database is down: POST /run answers 503 with a body that says
   nothing was recorded and to retry later (never a bare 500).
5. /health reports the free space of OUTPUT_DIR and answers 503 when nothing can be written.
"""

from __future__ import annotations

import socket
import tempfile
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


def metrics_dir_of(server: WebServer) -> Path:
    """The folder holding the server's prometheus_client files (named after its workers' pids)."""
    workers = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()
    found = {path.parent for base in (Path("/dev/shm"), Path(tempfile.gettempdir()), *server_tmp(server))
             for pid in workers for path in base.glob(f"runner-metrics-*/*_{pid}.db")}
    assert len(found) == 1, found
    return found.pop()


def server_tmp(server: WebServer) -> list[Path]:
    return [Path(server.env["TMPDIR"])] if "TMPDIR" in server.env else []


def test_a_full_temporary_disk_never_kills_a_web_worker_and_no_metrics_folder_is_left(tmp_path: Path) -> None:
    # prometheus_client keeps its multiprocess counters in sparse files it maps: the first write
    # to a new page of one on a full disk is a SIGBUS that kills the worker. They live on
    # /dev/shm (memory, like gunicorn's heartbeat), not beside the container's temporary files.
    with small_disk(tmp_path / "tmp", size="2m") as disk:
        server = start_gunicorn(tmp_path / "web", {"WEBHOOK_SECRET": WEBHOOK_SECRET, "API_TOKEN": API_TOKEN,
                                                   "OUTPUT_DIR": str(tmp_path / "out"), "TMPDIR": str(disk.path),
                                                   "ENABLE_DATABASE_WRITES": "false"})
        try:
            disk.fill()  # the container's disk fills up while the service runs
            answers = [post_run(server, payload(f"tmp-full-{n}")).status_code for n in range(3)]
            metrics = requests.get(server.url("/metrics"), headers={"Authorization": f"Bearer {API_TOKEN}"},
                                   timeout=10)
            counters = metrics_dir_of(server)
        finally:
            disk.free()
            server.stop()
    assert answers == [202, 202, 202]
    assert 'pipeline_webhook_responses_total{code="202"} 3.0' in metrics.text
    assert counters.parent == Path("/dev/shm")
    assert not counters.exists()  # the server's own counters folder went with it
