"""One total deadline covers the whole fetch: connect, status line, headers and body."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from config.errors import StageError
from config.settings import Settings
from pipeline.fetch import FetchPolicy, fetch_document
from tests.blobserver import BlobServer, start_blob_server

# Every single read is well within read_timeout_s; only the total deadline can stop these.
POLICY = FetchPolicy(connect_timeout_s=1, read_timeout_s=2, total_timeout_s=3, attempts=2,
                     backoff_initial_s=0.01, backoff_max_s=0.05)


@pytest.fixture
def blob() -> Iterator[BlobServer]:
    server = start_blob_server()
    yield server
    server.close()


@pytest.mark.parametrize("route", ["/driphead?every=0.3", "/drip?every=0.3&size=100"])
def test_a_server_dripping_bytes_is_cut_off_at_the_total_deadline(blob: BlobServer, route: str) -> None:
    settings = Settings(blob_allowed_hosts=(blob.host,), blob_allow_http=True)
    with pytest.raises(StageError) as failed:
        fetch_document(settings, blob.url(route), policy=POLICY)
    assert failed.value.code == "BLOB_FETCH_FAILED"
    assert "took too long" in failed.value.message and "3 s" in failed.value.message
    assert sum(1 for seen in blob.seen if seen.path.startswith(route.split("?")[0])) == 1  # no retry after it
