"""The dispatcher's "every slot is taken" word (dispatch_socket.Saturation), and the launcher that heeds it.

A web worker reads the word from a mapped file; the launcher then skips the wake-up datagram.
The datagrams are received here on a real socket bound at the dispatcher's address.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import Settings
from handlers import dispatch_socket
from handlers.dispatch_socket import SATURATION_FILE, SATURATION_HOLD_S, Saturation
from handlers.launcher import DispatcherLauncher
from tests.conftest import REPO
from tests.smalldisk import small_disk


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(output_dir=tmp_path / "out")
    settings.state_dir.mkdir(parents=True)
    return settings


@pytest.fixture
def listener(settings: Settings) -> Iterator[socket.socket]:
    """A socket where the dispatcher's would be: it receives what the launcher sends."""
    sock = dispatch_socket.open_listener(settings)
    yield sock
    sock.close()


def received(sock: socket.socket) -> list[str]:
    got = []
    while True:
        try:
            got.append(sock.recv(128).decode())
        except BlockingIOError:
            return got


def test_one_process_hears_what_another_says(tmp_path: Path) -> None:
    path = tmp_path / SATURATION_FILE
    reader = Saturation(path)
    assert not reader.full()  # no dispatcher has written anything yet
    say = ("import sys; from pathlib import Path; from handlers.dispatch_socket import Saturation; "
           "getattr(Saturation(Path(sys.argv[1])), sys.argv[2])()")
    subprocess.run([sys.executable, "-c", say, str(path), "hold"], cwd=REPO, check=True)
    assert reader.full()
    subprocess.run([sys.executable, "-c", say, str(path), "release"], cwd=REPO, check=True)
    assert not reader.full()


@pytest.mark.parametrize("ahead", [-1.0, SATURATION_HOLD_S + 60, 1e9])
def test_a_lapsed_word_or_one_from_another_boots_clock_is_not_believed(tmp_path: Path, ahead: float) -> None:
    path = tmp_path / SATURATION_FILE
    Saturation(path).release()  # creates the file
    path.write_bytes(struct.pack("d", time.monotonic() + ahead))  # same inode: a mapping sees it
    assert not Saturation(path).full()


def test_a_full_dispatcher_is_not_woken_for_a_new_run(settings: Settings, listener: socket.socket) -> None:
    launcher = DispatcherLauncher(settings)
    dispatcher_side = Saturation(settings.state_dir / SATURATION_FILE)
    launcher.notify("before")
    dispatcher_side.hold()
    for n in range(20):
        launcher.notify(f"while-full-{n}")
    dispatcher_side.release()
    launcher.notify("after")
    assert received(listener) == ["before", "after"]


def test_cancelling_still_wakes_a_full_dispatcher(settings: Settings, listener: socket.socket) -> None:
    # A cancel is announced straight on the socket: a full dispatcher must stop the run it holds.
    Saturation(settings.state_dir / SATURATION_FILE).hold()
    assert dispatch_socket.notify(settings, "cancel-me")
    assert received(listener) == ["cancel-me"]


def test_a_full_state_disk_costs_the_word_never_the_dispatcher(tmp_path: Path) -> None:
    # The word's bytes are written, not left sparse: a sparse page of a mapping is allocated on
    # its first write, and on a full disk that killed the process with SIGBUS.
    with small_disk(tmp_path / "state", size="1m") as disk:
        disk.fill()
        saturation = Saturation(disk.path / SATURATION_FILE)
        for _ in range(3):
            saturation.hold()  # no error, no signal: the dispatcher ticks on
        assert not saturation.full()  # nothing was said, so every run is still announced
        disk.free()
        saturation.hold()
        assert saturation.full()
        disk.fill()
        saturation.release()  # the page exists now: writing it needs no new space
        assert not saturation.full()
