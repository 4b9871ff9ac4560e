"""Persistence's own refinements of the error tree (config.errors): full disks and unrecorded runs."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from config.errors import StoreUnavailable

# What a write raises when the filesystem has no room left (ENOSPC) or the quota is used (EDQUOT).
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class DiskFull(StoreUnavailable):
    """A file write found no space left: transient, it works again once space returns."""

    code = "DISK_FULL"


class RunNotRecorded(StoreUnavailable):
    """Nowhere could take the write (database down and the spool unwritable): nothing was recorded."""

    code = "RUN_NOT_RECORDED"


def is_disk_full(exc: BaseException) -> bool:
    """True for an OSError that means the disk (or quota) is full."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def free_bytes(path: Path) -> int | None:
    """Bytes free for writing on the filesystem of ``path`` (or its nearest existing parent); None if unknown."""
    for candidate in (path, *path.parents):
        try:
            return shutil.disk_usage(candidate).free
        except FileNotFoundError:
            continue
        except OSError:
            return None
    return None


def disk_full(root: Path, exc: OSError) -> DiskFull:
    """The DiskFull to raise for ``exc`` under ``root``, saying where, how much is free and what to do."""
    free = free_bytes(root)
    return DiskFull(f"no space left on the disk of {root} ({free if free is not None else 'unknown'} bytes "
                    f"free): {exc.strerror or exc}; free space on that volume (or grow it) and the write resumes")
