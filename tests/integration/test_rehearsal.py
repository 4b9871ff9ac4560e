"""The spare run process's rehearsal (pipeline/rehearsal.py): the real fetch, parse and gate of the
bundled sample from a one-shot loopback server, whatever the blob rules, and silent."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from config.errors import InvalidInput
from config.log import configure_logging, get_logger
from config.settings import Settings
from pipeline import rehearsal


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    configure_logging("INFO", json=True, stream=buffer)
    yield buffer
    configure_logging("WARNING")


def test_it_fetches_parses_and_gates_the_sample_under_production_blob_rules(log_lines: io.StringIO) -> None:
    # Production settings: HTTPS only, Vercel hosts only, a token that must never leave the host.
    settings = Settings(enable_database_writes=False, blob_read_write_token="vercel_blob_rw_rehearsal_secret")
    document = rehearsal.rehearse_document_path(settings)
    assert document.name == rehearsal.SAMPLE.name
    assert document.language == "en" and document.relevance is not None and document.words > 500


def test_it_logs_nothing_and_leaves_logging_as_it_found_it(log_lines: io.StringIO) -> None:
    rehearsal.rehearse_document_path(Settings(enable_database_writes=False))
    assert log_lines.getvalue() == "", "a rehearsal's document_fetched/admitted lines would read as a real run's"
    assert logging.root.manager.disable == logging.NOTSET
    get_logger("test").info("after_the_rehearsal")
    [line] = [json.loads(raw) for raw in log_lines.getvalue().splitlines()]
    assert line["message"] == "after_the_rehearsal"


def test_a_missing_sample_is_an_os_error_the_spare_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    # handlers/run_process.py catches RunnerError and OSError and logs spare_warmup_skipped.
    monkeypatch.setattr(rehearsal, "SAMPLE", rehearsal.SAMPLE.with_name("no-such-sample.txt"))
    with pytest.raises(FileNotFoundError):
        rehearsal.rehearse_document_path(Settings(enable_database_writes=False))


def test_a_fetch_error_inside_the_quiet_block_is_raised_with_logging_restored(log_lines: io.StringIO) -> None:
    with pytest.raises(InvalidInput, match="MAX_DOCUMENT_BYTES"):  # the sample is 6.5 KB
        rehearsal.rehearse_document_path(Settings(enable_database_writes=False, max_document_bytes=1_000))
    assert logging.root.manager.disable == logging.NOTSET
