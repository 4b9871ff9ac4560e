"""What the outbox keeps (``Delivery``) and what it does (``CallbackOutbox``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from persistence.records import utcnow

OUTCOMES = ("COMPLETED", "FAILED", "CANCELLED")


def webhook_id_for(run_id: str, outcome: str, attempt: int) -> str:
    """The one webhook-id of a run's outcome: the same outcome always gets the same id."""
    return f"msg_{run_id}_{outcome.lower()}_{attempt}"


def event_payload(run_id: str, outcome: str, at: datetime, data: dict[str, Any]) -> str:
    """The Standard Webhooks body ``{"type", "timestamp", "data"}`` as the exact text to send."""
    body = {"type": f"run.{outcome.lower()}", "timestamp": at.isoformat(),
            "data": {"run_id": run_id, "status": outcome, **data}}
    return json.dumps(body, separators=(",", ":"), sort_keys=False)


def delivery_for(run_id: str, outcome: str, attempt: int, data: dict[str, Any]) -> Delivery:
    """The outbox entry announcing that ``run_id`` ended with ``outcome`` under ``attempt``."""
    return Delivery(webhook_id_for(run_id, outcome, attempt), run_id, outcome,
                    event_payload(run_id, outcome, utcnow(), data))


@dataclass(frozen=True)
class Delivery:
    """One callback: its id, run, outcome, exact body, and how delivery went so far."""

    webhook_id: str
    run_id: str
    outcome: str
    payload: str
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None
    dead_at: datetime | None = None


class OutcomeLedger(Protocol):
    """Where runs' ends are recorded, for an outbox that is filled just before the record."""

    def outcome_recorded(self, delivery: Delivery) -> bool | None:
        """True: recorded; False: never will be (withdraw the entry); None: not known yet."""


class CallbackOutbox(Protocol):
    """Durable callbacks; claims keep two deliverers from sending one entry at once."""

    def enqueue(self, delivery: Delivery) -> bool:
        """Keep ``delivery`` for sending; False when its webhook_id is already known."""

    def claim_due(self, owner: str, limit: int, lease_seconds: float) -> list[Delivery]:
        """Up to ``limit`` entries due now, leased to ``owner`` for ``lease_seconds``."""

    def delivered(self, webhook_id: str) -> None:
        """Record that the receiver answered 2xx: never sent again."""

    def retry_later(self, webhook_id: str, attempts: int, next_at: datetime, error: str) -> None:
        """Record a failed try and when to try again."""

    def give_up(self, webhook_id: str, attempts: int, error: str) -> None:
        """Record that delivery stopped (attempts exhausted, or the URL is refused)."""

    def get(self, webhook_id: str) -> Delivery | None:
        """One entry, whatever its state."""

    def pending(self) -> int:
        """Entries neither delivered nor given up."""

    def close(self) -> None:
        """Release connections (a process closes what it opened before it exits)."""
