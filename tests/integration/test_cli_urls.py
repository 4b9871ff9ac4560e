"""``python -m pipeline run URL``: a signed URL's query and fragment never reach stdout or stderr."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.blobserver import BlobServer, start_blob_server
from tests.conftest import REPO
from tests.integration.test_cli import run_cli, summary

SECRET_QUERY = "token=vercel-signed-QUERYSECRET"
SECRET_FRAGMENT = "access=FRAGMENTSECRET"


@pytest.fixture
def blob() -> Iterator[BlobServer]:
    server = start_blob_server()
    server.add_file("report.txt", (REPO / "data" / "samples" / "outdoor-gear-circularity.txt").read_bytes(),
                    "text/plain")
    yield server
    server.close()


@pytest.mark.parametrize("path, status", [("/files/report.txt", "COMPLETED"), ("/files/missing.txt", "FAILED")])
def test_a_signed_url_is_printed_and_logged_without_query_or_fragment(blob, output_dir: Path, path, status) -> None:
    url = blob.url(f"{path}?{SECRET_QUERY}#{SECRET_FRAGMENT}")
    result = run_cli("run", url, "--brand", "decathlon", "--run-id", "signed", output_dir=output_dir,
                     env={"BLOB_ALLOWED_HOSTS": blob.host, "BLOB_ALLOW_HTTP": "true"})
    assert summary(result)["status"] == status, result.stderr
    assert blob.seen and SECRET_QUERY in blob.seen[-1].path  # the query itself was sent to the server
    everything = result.stdout + result.stderr
    assert "QUERYSECRET" not in everything and "FRAGMENTSECRET" not in everything
    assert path.rsplit("/", 1)[1] in result.stderr  # the document is still named for the person
