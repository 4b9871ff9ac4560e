"""How web workers reach the host's dispatcher: a datagram naming a run, and its identity files.

The socket is in Linux's abstract namespace (no path length limit, nothing left on disk),
named after the state folder, so each OUTPUT_DIR has its own dispatcher. A lost datagram
costs only latency: the dispatcher also polls the store for QUEUED runs.

``Saturation`` is the dispatcher's word that every run slot is taken, in an 8-byte file both
sides map: while it holds, a new run is not announced (the dispatcher claims QUEUED runs
itself as slots free up), so a burst of webhooks does not wake it once per run for nothing.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import hashlib
import mmap
import os
import socket
import struct
import threading
import time
from pathlib import Path

from config.log import get_logger
from config.settings import Settings

log = get_logger(__name__)


def socket_address(settings: Settings) -> bytes:
    """The abstract socket name of the dispatcher serving ``settings.output_dir``."""
    return _address(settings.state_dir)


@functools.lru_cache(maxsize=8)
def _address(state_dir: Path) -> bytes:
    # Cached: resolve() is a few system calls, paid once per process instead of per webhook.
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:20]
    return b"\0innovation-runner-dispatch-" + digest.encode()


def lock_path(settings: Settings) -> Path:
    """The file whose exclusive lock marks the live dispatcher of this state folder."""
    return settings.state_dir / "dispatcher.lock"


def pid_path(settings: Settings) -> Path:
    """The file holding the live dispatcher's process id."""
    return settings.state_dir / "dispatcher.pid"


SATURATION_FILE = "dispatcher.saturated"
SATURATION_BYTES = struct.calcsize("d")
# How long one word of the dispatcher's holds: it refreshes it every tick (at least once a second).
SATURATION_HOLD_S = 3.0


class Saturation:
    """Until when the dispatcher has no free run slot (``time.monotonic()``, host-wide), in a mapped file.

    The dispatcher writes it (``hold``, ``release``); web workers read it (``full``), with no
    system call. Its word lapses by itself: a dispatcher that dies while full stops refreshing
    it, and the next webhook then finds the dead socket and starts a new one. A word further
    ahead than one hold is not believed: it was written under another boot's clock (the file
    outlives a container on a volume). The file is never replaced, so a mapping stays valid
    across dispatcher restarts.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._map: mmap.mmap | None = None
        self._lock = threading.Lock()
        self._warned = False

    def _mapped(self, *, write: bool) -> mmap.mmap | None:
        found = self._map
        if found is not None:
            return found
        with self._lock:
            if self._map is None:
                try:
                    self._map = self._open(write=write)
                except OSError as exc:
                    # Missing (no dispatcher yet), unreadable, or a full or read-only state disk:
                    # without the word, every run is announced, as before it existed.
                    if write and not self._warned and not isinstance(exc, FileNotFoundError):
                        self._warned = True  # once: the dispatcher retries every tick
                        log.warning("dispatcher_saturation_unwritable", path=str(self.path),
                                    error=type(exc).__name__, reason=str(exc))
                    return None
            return self._map

    def _open(self, *, write: bool) -> mmap.mmap | None:
        fd = os.open(self.path, (os.O_RDWR | os.O_CREAT if write else os.O_RDONLY) | os.O_CLOEXEC, 0o644)
        try:
            if os.fstat(fd).st_size < SATURATION_BYTES:
                if not write:
                    return None  # being created: read it next time
                # Written, not ftruncate'd: a sparse file's page is allocated when the mapping is
                # first written, and on a full disk that is a SIGBUS instead of an OSError here.
                os.pwrite(fd, bytes(SATURATION_BYTES), 0)
            return mmap.mmap(fd, SATURATION_BYTES, prot=mmap.PROT_READ | (mmap.PROT_WRITE if write else 0))
        finally:
            os.close(fd)  # the mapping keeps the file

    def full(self) -> bool:
        """True while the dispatcher says every slot is taken and its word has not lapsed."""
        mapped = self._mapped(write=False)
        if mapped is None:
            return False
        now = time.monotonic()
        return now < struct.unpack_from("d", mapped)[0] <= now + SATURATION_HOLD_S

    def hold(self) -> None:
        """The dispatcher: every slot is taken; say so for SATURATION_HOLD_S (refreshed each tick)."""
        self._write(time.monotonic() + SATURATION_HOLD_S)

    def release(self) -> None:
        """The dispatcher: a slot is free (said before it looks for QUEUED runs to claim)."""
        self._write(0.0)

    def _write(self, until: float) -> None:
        mapped = self._mapped(write=True)
        if mapped is not None:
            struct.pack_into("d", mapped, 0, until)


@functools.lru_cache(maxsize=8)
def saturation(state_dir: Path) -> Saturation:
    """This process's view of the saturation file of ``state_dir`` (one mapping per process)."""
    return Saturation(state_dir / SATURATION_FILE)


_SENDERS: dict[int, socket.socket] = {}
_SENDERS_LOCK = threading.Lock()


def _sender() -> socket.socket:
    """This process's datagram socket for notifications (one per process, shared by threads).

    sendto on a datagram socket is atomic, so threads can share it; a forked child gets its own.
    """
    pid = os.getpid()
    sock = _SENDERS.get(pid)
    if sock is None:
        with _SENDERS_LOCK:
            sock = _SENDERS.get(pid)
            if sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sock.setblocking(False)
                os.set_inheritable(sock.fileno(), False)
                _SENDERS.clear()  # a parent's socket, inherited over fork: not ours to use
                _SENDERS[pid] = sock
    return sock


def notify(settings: Settings, run_id: str) -> bool:
    """Wake the dispatcher for ``run_id``; False when no dispatcher is listening."""
    try:
        _sender().sendto(run_id.encode("ascii"), socket_address(settings))
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except BlockingIOError:
        return True  # its queue is full: it is busy and will poll the store anyway
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            return False
        raise
    return True


def dispatcher_alive(settings: Settings) -> bool:
    """True when a dispatcher holds this state folder's lock."""
    path = lock_path(settings)
    if not path.exists():
        return False
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def dispatcher_pid(settings: Settings) -> int | None:
    """The live dispatcher's pid, if it wrote one."""
    try:
        return int(pid_path(settings).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def open_listener(settings: Settings) -> socket.socket:
    """Bind the dispatcher's datagram socket (non-blocking)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(socket_address(settings))
    sock.setblocking(False)
    os.set_inheritable(sock.fileno(), False)
    return sock
