"""FileOutbox: one JSON file per callback under OUTPUT_DIR/.outbox/, one lock for every change.

Callbacks are few (one per finished run), so a single ``flock`` over the folder keeps claims,
enqueues and results consistent across the processes of a host without per-entry locks.
"""

from __future__ import annotations

import fcntl
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from config.log import get_logger
from persistence import atomic
from persistence.outbox.ports import Delivery, OutcomeLedger
from persistence.records import utcnow

log = get_logger(__name__)

LOCK_FILE = ".lock"
WEBHOOK_ID = re.compile(r"msg_[A-Za-z0-9_-]{1,120}")


def _load(data: dict[str, Any]) -> Delivery:
    for key in ("next_attempt_at", "delivered_at", "dead_at"):
        data[key] = datetime.fromisoformat(data[key]) if data.get(key) else None
    data.pop("lease_owner", None)
    data.pop("lease_expires_at", None)
    return Delivery(**data)


def _dump(delivery: Delivery, **lease: str | None) -> dict[str, Any]:
    data = asdict(delivery)
    for key in ("next_attempt_at", "delivered_at", "dead_at"):
        data[key] = data[key].isoformat() if data[key] else None
    return {**data, **lease}


class FileOutbox:
    """The CallbackOutbox over files in ``folder``.

    With a ``ledger`` (FILE_ONLY: the run files), an entry is sent only once the ledger records
    the end it announces: FileStore queues a callback just before it writes the end, so a crash
    between the two leaves an entry to withdraw, never an end without its callback.
    """

    def __init__(self, folder: Path, ledger: OutcomeLedger | None = None) -> None:
        self.folder = folder
        self.ledger = ledger

    @contextmanager
    def _locked(self) -> Iterator[None]:
        atomic.ensure_dir(self.folder)
        with open(self.folder / LOCK_FILE, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _path(self, webhook_id: str) -> Path:
        if not WEBHOOK_ID.fullmatch(webhook_id):
            raise ValueError(f"not a webhook id: {webhook_id!r}")
        return self.folder / f"{webhook_id}.json"

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            return dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None

    def enqueue(self, delivery: Delivery) -> bool:
        """Write the entry unless its id exists (pending, delivered or given up)."""
        with self._locked():
            path = self._path(delivery.webhook_id)
            if path.exists():
                return False
            due = delivery.next_attempt_at or utcnow()
            atomic.write_json(path, _dump(replace(delivery, next_attempt_at=due)))
            return True

    def _entries(self) -> Iterator[tuple[Path, dict[str, Any]]]:
        if not self.folder.is_dir():
            return
        for path in sorted(self.folder.glob("msg_*.json")):
            data = self._read(path)
            if data is not None:
                yield path, data

    def claim_due(self, owner: str, limit: int, lease_seconds: float) -> list[Delivery]:
        """Due, unleased (or lapsed) pending entries, oldest due first."""
        now = utcnow()
        with self._locked():
            due = []
            for path, data in self._entries():
                if data.get("delivered_at") or data.get("dead_at"):
                    continue
                lease = data.get("lease_expires_at")
                if lease and datetime.fromisoformat(lease) > now:
                    continue
                if datetime.fromisoformat(data["next_attempt_at"]) <= now:
                    due.append((data["next_attempt_at"], path, data))
            claimed = []
            for _, path, data in sorted(due, key=lambda item: item[0])[:limit]:
                data["lease_owner"] = owner
                data["lease_expires_at"] = (now + timedelta(seconds=lease_seconds)).isoformat()
                atomic.write_json(path, data)
                claimed.append(_load(dict(data)))
        return self._confirmed(claimed)

    def _confirmed(self, claimed: list[Delivery]) -> list[Delivery]:
        """The claimed entries whose end the ledger records; withdraws those it never will.

        Asked outside the outbox lock: a run's writer holds the run's lock while it enqueues.
        """
        if self.ledger is None:
            return claimed
        sendable = []
        for delivery in claimed:
            verdict = self.ledger.outcome_recorded(delivery)
            if verdict:
                sendable.append(delivery)
                continue
            with self._locked():
                path = self._path(delivery.webhook_id)
                if verdict is None:  # its run is being written: give the lease back for the next pass
                    data = self._read(path)
                    if data is not None:
                        data["lease_owner"] = data["lease_expires_at"] = None
                        atomic.write_json(path, data)
                    continue
                path.unlink(missing_ok=True)
            log.warning("callback_withdrawn", webhook_id=delivery.webhook_id, run_id=delivery.run_id,
                        outcome=delivery.outcome, reason="the run's end it announces was never recorded "
                                                         "(its process died between the two writes)")
        return sendable

    def _update(self, webhook_id: str, **changes: Any) -> None:
        with self._locked():
            path = self._path(webhook_id)
            data = self._read(path)
            if data is None:
                return
            data.update({k: v.isoformat() if isinstance(v, datetime) else v for k, v in changes.items()})
            data["lease_owner"] = data["lease_expires_at"] = None
            atomic.write_json(path, data)

    def delivered(self, webhook_id: str) -> None:
        """Mark delivered."""
        self._update(webhook_id, delivered_at=utcnow())

    def retry_later(self, webhook_id: str, attempts: int, next_at: datetime, error: str) -> None:
        """Record a failed try."""
        self._update(webhook_id, attempts=attempts, next_attempt_at=next_at, last_error=error)

    def give_up(self, webhook_id: str, attempts: int, error: str) -> None:
        """Stop trying."""
        self._update(webhook_id, attempts=attempts, dead_at=utcnow(), last_error=error)

    def get(self, webhook_id: str) -> Delivery | None:
        """One entry."""
        data = self._read(self._path(webhook_id))
        return None if data is None else _load(data)

    def pending(self) -> int:
        """Entries still to deliver."""
        return sum(1 for _, data in self._entries() if not data.get("delivered_at") and not data.get("dead_at"))

    def close(self) -> None:
        """Nothing is held open between calls."""
