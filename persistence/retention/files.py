"""FilePruner: deletes finished run folders under OUTPUT_DIR, each under its run lock."""

from __future__ import annotations

import fcntl
import json
import shutil
from datetime import datetime
from pathlib import Path

from config.paths import RUN_ID_PATTERN
from persistence.retention.ports import FINISHED

RUN_FILE = "run.json"
LOCK_FILE = ".lock"


def _ended(folder: Path) -> tuple[str, datetime] | None:
    try:
        doc = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    moment = doc.get("completed_at") or doc.get("updated_at")
    return (doc.get("status"), datetime.fromisoformat(moment)) if moment else None


class FilePruner:
    """Prunes ``root`` (OUTPUT_DIR) and the callback entries in ``outbox`` for the runs it deletes."""

    name = "files"

    def __init__(self, root: Path, outbox: Path | None = None) -> None:
        self.root = root
        self.outbox = outbox

    def prune(self, cutoff: datetime, *, dry_run: bool = False) -> list[str]:
        """Delete each finished run folder that ended before ``cutoff``."""
        if not self.root.is_dir():
            return []
        pruned = []
        for folder in sorted(self.root.iterdir()):
            if not RUN_ID_PATTERN.fullmatch(folder.name) or not folder.is_dir():
                continue
            ended = _ended(folder)
            if ended is None or ended[0] not in FINISHED or ended[1] >= cutoff:
                continue
            if not dry_run and not self._delete(folder, cutoff):
                continue
            pruned.append(folder.name)
        return pruned

    def close(self) -> None:
        """Nothing to release."""

    def _delete(self, folder: Path, cutoff: datetime) -> bool:
        with open(folder / LOCK_FILE, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            ended = _ended(folder)  # again under the lock: a retry may have just revived it
            if ended is None or ended[0] not in FINISHED or ended[1] >= cutoff:
                return False
            # run.json first: from then on the folder is no run, whatever is left of it.
            (folder / RUN_FILE).unlink()
            shutil.rmtree(folder)
        if self.outbox is not None and self.outbox.is_dir():
            for entry in self.outbox.glob(f"msg_{folder.name}_*.json"):
                entry.unlink(missing_ok=True)
        return True
