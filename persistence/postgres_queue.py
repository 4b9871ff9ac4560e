"""The queue verbs of PostgresStore (persistence.queue.RunQueue) over "PipelineRun".

Kept apart from postgres.py so the store's file stays about one concern; each function takes
the store and runs one bounded, translated transaction through it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from persistence import postgres_sql as q
from persistence.queue import Claim, Lease

if TYPE_CHECKING:
    from persistence.postgres import PostgresStore


def claim(store: PostgresStore, run_id: str, owner: str, lease_seconds: int) -> Claim | None:
    """Claim one run if it is QUEUED or its lease lapsed."""
    with store._transaction("claim") as conn:
        row = conn.execute(q.CLAIM_ONE, {"run_id": run_id, "owner": owner, "lease_s": lease_seconds}).fetchone()
    return None if row is None else Claim(row[0], row[1])


def claim_next(store: PostgresStore, owner: str, lease_seconds: int, limit: int) -> list[Claim]:
    """Claim up to ``limit`` QUEUED runs, oldest first, skipping rows other replicas are claiming."""
    if limit <= 0:
        return []
    with store._transaction("claim_next") as conn:
        rows = conn.execute(q.CLAIM_NEXT, {"owner": owner, "lease_s": lease_seconds, "limit": limit}).fetchall()
    return [Claim(run_id, attempt) for run_id, attempt in rows]


def renew(store: PostgresStore, run_id: str, attempt: int, owner: str, lease_seconds: int) -> bool:
    """Extend our lease; False when the run moved on without us."""
    params = {"run_id": run_id, "attempt": attempt, "owner": owner, "lease_s": lease_seconds}
    with store._transaction("renew") as conn:
        return conn.execute(q.RENEW_LEASE, params).fetchone() is not None


def requeue(store: PostgresStore, run_id: str, attempt: int, reason: str) -> bool:
    """Return an interrupted run to QUEUED so a later claim resumes it."""
    params = {"run_id": run_id, "attempt": attempt, "reason": reason,
              "seq": q.write_seq(attempt, q.SEQ_REQUEUE)}
    with store._transaction("requeue") as conn:
        return conn.execute(q.REQUEUE, params).fetchone() is not None


def leases(store: PostgresStore) -> list[Lease]:
    """Every PROCESSING run with its lease."""
    with store._transaction("leases") as conn:
        rows = conn.execute(q.SELECT_LEASES).fetchall()
    return [Lease(run_id, attempt, owner, expires) for run_id, attempt, owner, expires in rows]
