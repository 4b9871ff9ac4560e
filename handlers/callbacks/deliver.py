"""Deliver due callbacks from the outbox: bounded retries with jittered exponential backoff.

An entry is sent until the receiver answers 2xx, or ``max_attempts`` tries have failed, or the
URL is refused by the SSRF rules (then at once): it is then given up, logged as an error, and
kept. Each try is leased, so two deliverers never send one entry at the same time; a
deliverer that dies mid-send leaves the lease to lapse and the entry is tried again later
(the receiver deduplicates by ``webhook-id``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta

from config.log import get_logger
from config.settings import Settings
from handlers.callbacks.sender import SendPolicy, send
from persistence.outbox.ports import CallbackOutbox
from persistence.records import utcnow

log = get_logger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to try; production defaults (about 13 hours in all), tests shrink them."""

    max_attempts: int = 10
    first_delay_s: float = 5.0
    factor: float = 3.0
    max_delay_s: float = 3600.0
    lease_s: float = 60.0
    batch: int = 20
    send: SendPolicy = field(default_factory=SendPolicy)

    def delay(self, failed_attempts: int) -> float:
        """Seconds before the next try after ``failed_attempts`` failures (±20 % jitter)."""
        base = min(self.max_delay_s, self.first_delay_s * self.factor ** (failed_attempts - 1))
        return base * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not cryptography


@dataclass
class DeliveryReport:
    """What one pass did."""

    delivered: int = 0
    retried: int = 0
    given_up: int = 0

    def as_dict(self) -> dict[str, int]:
        """The report as JSON."""
        return {"delivered": self.delivered, "retried": self.retried, "given_up": self.given_up}


def deliver_due(settings: Settings, outbox: CallbackOutbox, owner: str, policy: RetryPolicy) -> DeliveryReport:
    """Send every entry due now (one batch); record each result in the outbox."""
    report = DeliveryReport()
    for delivery in outbox.claim_due(owner, policy.batch, policy.lease_s):
        result = send(settings, delivery, policy.send)
        attempts = delivery.attempts + 1
        fields = {"webhook_id": delivery.webhook_id, "run_id": delivery.run_id, "outcome": delivery.outcome,
                  "attempt": attempts}
        if result.ok:
            outbox.delivered(delivery.webhook_id)
            report.delivered += 1
            log.info("callback_delivered", status=result.status, **fields)
        elif result.permanent or attempts >= policy.max_attempts:
            outbox.give_up(delivery.webhook_id, attempts, result.error)
            report.given_up += 1
            log.error("callback_given_up", reason=result.error, permanent=result.permanent, **fields)
        else:
            next_at = utcnow() + timedelta(seconds=policy.delay(attempts))
            outbox.retry_later(delivery.webhook_id, attempts, next_at, result.error)
            report.retried += 1
            log.warning("callback_failed", reason=result.error, next_attempt_at=next_at.isoformat(), **fields)
    return report
