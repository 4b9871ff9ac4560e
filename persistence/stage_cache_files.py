"""The stage cache in files: ``OUTPUT_DIR/.stage-cache/<key[:2]>/<key>.json``, renamed into place.

Used in FILE_ONLY and DUAL_WRITE (beside the table). The first entry for a key wins: a second
writer finds the file and leaves it, so a reader never sees a half-written or swapped entry.
Unreadable entries are misses (logged), never errors: a cache only ever saves calls.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from config.log import get_logger
from persistence import atomic
from pipeline.stage_cache import CachedStage

log = get_logger(__name__)


class FileStageCache:
    """Implements ``pipeline.stage_cache.StageCache`` over a folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if len(key) != 64 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"a stage cache key is a SHA-256 hex digest, got {key!r}")
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> CachedStage | None:
        """The entry for ``key``, or None (absent or unreadable)."""
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            data = atomic.read_json(path)
            return CachedStage(stage=int(data["stage"]), output=dict(data["output"]),
                               usage=dict(data.get("usage") or {}), model=str(data.get("model") or ""))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("stage_cache_unreadable", path=str(path), error=f"{type(exc).__name__}: {exc}")
            return None

    def put(self, key: str, entry: CachedStage) -> None:
        """Keep ``entry`` unless the key already has one."""
        path = self._path(key)
        if path.exists():
            return
        # Atomic (rename) but not fsynced: a cache entry lost to a crash costs one call, never correctness,
        # and three fsyncs per run would cost more than the calls they might save.
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(atomic.dumps({"stage": entry.stage, "output": dict(entry.output), "usage": dict(entry.usage),
                                      "model": entry.model}))
        os.replace(tmp, path)
