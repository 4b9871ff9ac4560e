"""PostgresOutbox: the CallbackOutbox over "CallbackOutbox" (migration 0007).

Claims take due rows with ``FOR UPDATE SKIP LOCKED`` and lease them, so deliverers on several
replicas never send one row at the same time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from persistence.outbox.ports import Delivery
from persistence.pgpool import LazyPool

ENQUEUE = """
INSERT INTO "CallbackOutbox" ("webhookId", "runId", outcome, payload, "nextAttemptAt")
VALUES (%(webhook_id)s, %(run_id)s, %(outcome)s, %(payload)s, coalesce(%(next_at)s, now()))
ON CONFLICT ("webhookId") DO NOTHING
RETURNING "webhookId"
"""

_COLUMNS = """
"webhookId", "runId", outcome, payload, attempts, "nextAttemptAt", "lastError", "deliveredAt", "deadAt"
"""

CLAIM_DUE = """
WITH due AS (
    SELECT "webhookId" FROM "CallbackOutbox"
    WHERE "deliveredAt" IS NULL AND "deadAt" IS NULL AND "nextAttemptAt" <= now()
      AND ("leaseExpiresAt" IS NULL OR "leaseExpiresAt" <= now())
    ORDER BY "nextAttemptAt", "webhookId"
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE "CallbackOutbox" AS o
SET "leaseOwner" = %(owner)s, "leaseExpiresAt" = now() + make_interval(secs => %(lease_s)s)
FROM due WHERE o."webhookId" = due."webhookId"
RETURNING """ + ", ".join(f"o.{c.strip()}" for c in _COLUMNS.split(","))

DELIVERED = """
UPDATE "CallbackOutbox" SET "deliveredAt" = now(), "leaseOwner" = NULL, "leaseExpiresAt" = NULL
WHERE "webhookId" = %(webhook_id)s
"""

RETRY_LATER = """
UPDATE "CallbackOutbox"
SET attempts = %(attempts)s, "nextAttemptAt" = %(next_at)s, "lastError" = %(error)s,
    "leaseOwner" = NULL, "leaseExpiresAt" = NULL
WHERE "webhookId" = %(webhook_id)s AND "deliveredAt" IS NULL
"""

GIVE_UP = """
UPDATE "CallbackOutbox"
SET attempts = %(attempts)s, "deadAt" = now(), "lastError" = %(error)s, "leaseOwner" = NULL, "leaseExpiresAt" = NULL
WHERE "webhookId" = %(webhook_id)s AND "deliveredAt" IS NULL
"""

GET = "SELECT " + _COLUMNS + ' FROM "CallbackOutbox" WHERE "webhookId" = %(webhook_id)s'

PENDING = 'SELECT count(*) FROM "CallbackOutbox" WHERE "deliveredAt" IS NULL AND "deadAt" IS NULL'


def _delivery(row: tuple[Any, ...]) -> Delivery:
    return Delivery(*row)


class PostgresOutbox:
    """The CallbackOutbox in PostgreSQL."""

    def __init__(self, pool: LazyPool) -> None:
        self.pool = pool

    def enqueue(self, delivery: Delivery) -> bool:
        """Insert the entry; False when its webhook_id exists."""
        rows = self.pool.rows("outbox_enqueue", ENQUEUE, {
            "webhook_id": delivery.webhook_id, "run_id": delivery.run_id, "outcome": delivery.outcome,
            "payload": delivery.payload, "next_at": delivery.next_attempt_at})
        return bool(rows)

    def claim_due(self, owner: str, limit: int, lease_seconds: float) -> list[Delivery]:
        """Lease due rows to ``owner``."""
        rows = self.pool.rows("outbox_claim", CLAIM_DUE, {"owner": owner, "limit": limit, "lease_s": lease_seconds})
        return sorted((_delivery(row) for row in rows), key=lambda d: (d.next_attempt_at, d.webhook_id))

    def delivered(self, webhook_id: str) -> None:
        """Mark delivered."""
        self.pool.rows("outbox_delivered", DELIVERED, {"webhook_id": webhook_id})

    def retry_later(self, webhook_id: str, attempts: int, next_at: datetime, error: str) -> None:
        """Record a failed try."""
        self.pool.rows("outbox_retry", RETRY_LATER, {"webhook_id": webhook_id, "attempts": attempts,
                                                     "next_at": next_at, "error": error[:2000]})

    def give_up(self, webhook_id: str, attempts: int, error: str) -> None:
        """Stop trying."""
        self.pool.rows("outbox_give_up", GIVE_UP, {"webhook_id": webhook_id, "attempts": attempts,
                                                   "error": error[:2000]})

    def get(self, webhook_id: str) -> Delivery | None:
        """One entry."""
        rows = self.pool.rows("outbox_get", GET, {"webhook_id": webhook_id})
        return _delivery(rows[0]) if rows else None

    def pending(self) -> int:
        """Rows still to deliver."""
        return int(self.pool.rows("outbox_pending", PENDING, {})[0][0])

    def close(self) -> None:
        """Close the pool (its threads too): an exiting process must not wait on them."""
        self.pool.close()
