"""config.log.info_line writes the line the logging chain writes, or lets the chain write it."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import threading
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


class GatedStream(io.StringIO):
    """A stream whose first write waits until the test opens the gate (a slow pipe)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.gate = threading.Event(), threading.Event()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        if self.writes == 1:
            self.entered.set()
            assert self.gate.wait(30), "the test never opened the gate"
        return super().write(text)


def test_lines_logged_while_another_thread_writes_are_written_by_it_in_order() -> None:
    out = GatedStream()
    configure_logging("INFO", json=True, stream=out)
    try:
        first = threading.Thread(target=info_line, args=("gunicorn.access", "request"), kwargs={"n": 0})
        first.start()
        assert out.entered.wait(30)
        for n in range(1, 6):  # each returns at once: the writing thread takes its line
            info_line("gunicorn.access", "request", n=n)
        assert out.writes == 1 and out.getvalue() == ""
        out.gate.set()
        first.join(30)
        assert not first.is_alive()
        assert [line["n"] for line in lines(out)] == [0, 1, 2, 3, 4, 5]
        assert out.writes == 2  # the five queued lines went out in one write
    finally:
        configure_logging("INFO")


class BrokenStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.broken = True

    def write(self, text: str) -> int:
        if self.broken:
            raise OSError("the pipe is closed")
        return super().write(text)


def test_a_failed_write_is_reported_and_the_next_line_still_goes_out(capsys: pytest.CaptureFixture[str]) -> None:
    out = BrokenStream()
    configure_logging("INFO", json=True, stream=out)
    try:
        info_line("gunicorn.access", "request", n=1)  # never raises into the request
        assert "the pipe is closed" in capsys.readouterr().err  # logging's own report, on stderr
        out.broken = False
        info_line("gunicorn.access", "request", n=2)
        # The failed line is reported, as logging.StreamHandler does, and nothing is stuck behind it.
        assert [line["n"] for line in lines(out)] == [2]
    finally:
        configure_logging("INFO")


# Forking while another thread writes is the case under test; Python 3.12+ warns about exactly that.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_child_forked_while_a_thread_writes_can_still_write() -> None:
    out = GatedStream()
    configure_logging("INFO", json=True, stream=out)
    try:
        writer = threading.Thread(target=info_line, args=("gunicorn.access", "request"), kwargs={"n": 0})
        writer.start()
        assert out.entered.wait(30)  # the parent's writer is mid-write, holding the group
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: its own stream; without the reset this line would only be queued
            os.close(read_end)
            child_out = io.StringIO()
            configure_logging("INFO", json=True, stream=child_out)
            info_line("gunicorn.access", "request", n=1)
            os.write(write_end, child_out.getvalue().encode())
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            written = pipe.read()
        os.waitpid(pid, 0)
        assert json.loads(written)["n"] == 1
        out.gate.set()
        writer.join(30)
    finally:
        configure_logging("INFO")
