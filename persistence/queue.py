"""The queue port: claiming runs to execute, leases renewed by heartbeat, recovery of orphans.

A claim is atomic: only one claimant turns a QUEUED run (or a PROCESSING run whose lease
lapsed) into PROCESSING under a new, higher attempt number; every later write carries that
attempt, so a stale process is fenced out. PostgreSQL claims with ``FOR UPDATE SKIP LOCKED``
across replicas; files claim with a per-run ``flock`` on one host.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from persistence.records import RunRequest


@dataclass(frozen=True)
class Claim:
    """A run this owner may execute now, as ``attempt``; ``request`` is what the run was asked to do."""

    run_id: str
    attempt: int
    # Returned by the claim itself, so a run process can start fetching its document before it
    # reads anything (a request never changes once recorded). None where a store cannot say.
    request: RunRequest | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Lease:
    """A PROCESSING run, who holds it and until when."""

    run_id: str
    attempt: int
    owner: str | None
    expires_at: datetime | None

    def lapsed(self, now: datetime) -> bool:
        """True when the holder stopped renewing: its process is presumed dead."""
        return self.expires_at is None or self.expires_at <= now


class RunQueue(Protocol):
    """Claims, leases and requeues over a store's runs."""

    def claim(self, run_id: str, owner: str, lease_seconds: int) -> Claim | None:
        """Claim one run if it is QUEUED or its lease lapsed; None if another owner holds it or it finished."""

    def claim_next(self, owner: str, lease_seconds: int, limit: int) -> list[Claim]:
        """Claim up to ``limit`` QUEUED runs, oldest first, skipping runs others are claiming."""

    def renew(self, run_id: str, attempt: int, owner: str, lease_seconds: int) -> bool:
        """Extend the lease; False when the run is no longer ours under ``attempt``."""

    def requeue(self, run_id: str, attempt: int, reason: str) -> bool:
        """Put an interrupted PROCESSING run back to QUEUED (to resume); False if fenced out."""

    def leases(self) -> list[Lease]:
        """Every PROCESSING run with its lease; callers decide which are orphans."""
