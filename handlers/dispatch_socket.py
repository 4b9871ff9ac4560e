"""How web workers reach the host's dispatcher: a datagram naming a run, and its identity files.

The socket is in Linux's abstract namespace (no path length limit, nothing left on disk),
named after the state folder, so each OUTPUT_DIR has its own dispatcher. A lost datagram
costs only latency: the dispatcher also polls the store for QUEUED runs.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import hashlib
import os
import socket
import threading
from pathlib import Path

from config.settings import Settings


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
