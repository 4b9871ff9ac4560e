"""A small tmpfs to fill up: full-disk tests without touching the machine's own disks.

    with small_disk(tmp_path / "out", size="2m") as disk:
        disk.fill()      # leave (almost) no byte free
        disk.free()      # give the space back

Mounting needs root (the test machine runs as root): anything else fails the test, never skips it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

FILLER = ".filler"


@dataclass
class SmallDisk:
    """A mounted tmpfs and the filler file that eats its space."""

    path: Path

    def free_bytes(self) -> int:
        """Bytes an unprivileged writer could still use."""
        return shutil.disk_usage(self.path).free

    def fill(self) -> None:
        """Write a filler until the filesystem says ENOSPC (unbuffered: nothing left to flush)."""
        fd = os.open(self.path / FILLER, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            for size in (1 << 16, 512, 1):
                with contextlib.suppress(OSError):
                    while True:
                        os.write(fd, b"\0" * size)
        finally:
            os.close(fd)

    def free(self) -> None:
        """Remove the filler: the space is back."""
        (self.path / FILLER).unlink(missing_ok=True)


@contextlib.contextmanager
def small_disk(path: Path, size: str = "4m") -> Iterator[SmallDisk]:
    """Mount a tmpfs of ``size`` on ``path`` (created), unmount it afterwards."""
    if os.geteuid() != 0:
        raise AssertionError("full-disk tests mount a tmpfs and need root (run the suite as root, as CI does)")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], check=True)
    try:
        yield SmallDisk(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
