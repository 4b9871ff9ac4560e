"""The queue statements of PostgresStore (persistence.queue.RunQueue): each takes a connection.

The store opens one bounded transaction per call and hands its connection here; the SQL and
its locking rules live in ``persistence.postgres.sql``.
"""

from __future__ import annotations

from persistence.postgres import sql as q
from persistence.postgres.connection import Conn, DictRow
from persistence.queue import Claim, Lease
from persistence.records import RunRequest


def claim(conn: Conn, run_id: str, owner: str, lease_seconds: int) -> Claim | None:
    """Claim one run if it is QUEUED or its lease lapsed."""
    row = conn.execute(q.CLAIM_ONE, {"run_id": run_id, "owner": owner, "lease_s": lease_seconds}).fetchone()
    return None if row is None else Claim(row["id"], row["attempt"], request_from_row(row))


def claim_next(conn: Conn, owner: str, lease_seconds: int, limit: int) -> list[Claim]:
    """Claim up to ``limit`` QUEUED runs, oldest first, skipping rows other replicas are claiming."""
    rows = conn.execute(q.CLAIM_NEXT, {"owner": owner, "lease_s": lease_seconds, "limit": limit}).fetchall()
    return [Claim(row["id"], row["attempt"], request_from_row(row)) for row in rows]


def renew(conn: Conn, run_id: str, attempt: int, owner: str, lease_seconds: int) -> bool:
    """Extend our lease; False when the run moved on without us."""
    params = {"run_id": run_id, "attempt": attempt, "owner": owner, "lease_s": lease_seconds}
    return conn.execute(q.RENEW_LEASE, params).fetchone() is not None


def requeue(conn: Conn, run_id: str, attempt: int, reason: str) -> bool:
    """Return an interrupted run to QUEUED so a later claim resumes it."""
    params = {"run_id": run_id, "attempt": attempt, "reason": reason, "seq": q.write_seq(attempt, q.SEQ_REQUEUE)}
    return conn.execute(q.REQUEUE, params).fetchone() is not None


def leases(conn: Conn) -> list[Lease]:
    """Every PROCESSING run with its lease."""
    rows = conn.execute(q.SELECT_LEASES).fetchall()
    return [Lease(r["id"], r["attempt"], r["leaseOwner"], r["leaseExpiresAt"]) for r in rows]


def request_from_row(row: DictRow) -> RunRequest:
    """The run's request from a PipelineRun row (a read, or a claim's RETURNING)."""
    return RunRequest(run_id=row["id"], company_id=row["companyId"], user_id=row["userId"],
                      document_url=row["documentUrl"])
