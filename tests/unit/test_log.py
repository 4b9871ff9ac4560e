"""config.log.info_line writes the line the logging chain writes, or lets the chain write it."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.log import bind_run, clear_run, configure_logging, get_logger, info_line

FIELDS = {"method": "POST", "status": 202, "duration_ms": 1.5, "none": None, "odd": {3}, "run_id": "given"}


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure_logging("INFO", json=True, stream=out)
    yield out
    clear_run()
    configure_logging("INFO")


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def without_time(line: dict[str, object]) -> dict[str, object]:
    return {key: value for key, value in line.items() if key != "timestamp"}


def test_the_line_is_the_chains_line_key_for_key_and_in_order(stream: io.StringIO) -> None:
    bind_run("bound", attempt=2, stage=3)
    info_line("gunicorn.access", "request", **FIELDS)
    get_logger("gunicorn.access").info("request", **FIELDS)
    fast, chain = lines(stream)
    assert list(fast) == list(chain)  # the same keys in the same order
    assert without_time(fast) == without_time(chain)
    assert fast["run_id"] == "given" and fast["attempt"] == 2  # a field wins over the bound context
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", str(fast["timestamp"]))


def test_a_silenced_logger_writes_nothing(stream: io.StringIO) -> None:
    logging.getLogger("gunicorn.access").setLevel(logging.WARNING)
    try:
        info_line("gunicorn.access", "request", **FIELDS)
    finally:
        logging.getLogger("gunicorn.access").setLevel(logging.NOTSET)
    assert stream.getvalue() == ""


def test_another_handler_gets_the_line_through_the_chain(stream: io.StringIO, tmp_path: Path) -> None:
    extra = logging.FileHandler(tmp_path / "copy.log")
    logging.getLogger().addHandler(extra)
    try:
        info_line("gunicorn.access", "request", **FIELDS)
    finally:
        logging.getLogger().removeHandler(extra)
        extra.close()
    assert [line["message"] for line in lines(stream)] == ["request"]
    assert "request" in (tmp_path / "copy.log").read_text()  # the shortcut would have skipped it


def test_a_console_gets_the_chains_readable_line() -> None:
    out = io.StringIO()
    configure_logging("INFO", json=False, stream=out)
    try:
        info_line("gunicorn.access", "request", method="POST")
    finally:
        configure_logging("INFO")
    assert out.getvalue().rstrip().endswith("method=POST") and not out.getvalue().startswith("{")


def test_a_failed_write_is_reported_as_logging_does_and_never_raises(stream: io.StringIO,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    stream.close()
    info_line("gunicorn.access", "request", **FIELDS)
    assert "Logging error" in capsys.readouterr().err
