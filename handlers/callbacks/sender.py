"""One delivery attempt: sign the stored body with a fresh timestamp and POST it to a pinned address.

Standard Webhooks v1: ``webhook-id`` (the outcome's id, the same on every retry),
``webhook-timestamp`` and ``webhook-signature`` over ``id.timestamp.body``. Redirects are not
followed; any answer but 2xx, a timeout or a connection error is a failed attempt.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import certifi
import urllib3
from urllib3.exceptions import HTTPError

from config.errors import InvalidInput, StageError
from config.settings import Settings
from handlers.callbacks.target import callback_target
from handlers.webhook_signature import sign
from persistence.outbox.ports import Delivery


@dataclass(frozen=True)
class SendPolicy:
    """Timeouts of one attempt, in seconds."""

    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0


@dataclass(frozen=True)
class Outcome:
    """How one attempt went: ``ok``; else ``permanent`` (never retry) and a log-safe ``error``."""

    ok: bool
    error: str = ""
    permanent: bool = False
    status: int | None = None


def send(settings: Settings, delivery: Delivery, policy: SendPolicy = SendPolicy()) -> Outcome:  # noqa: B008
    """POST ``delivery`` to CALLBACK_URL once."""
    url, secret = settings.callback_url, settings.callback_signing_secret
    if not url or not secret:
        return Outcome(False, "CALLBACK_URL or its signing secret is no longer set", permanent=True)
    try:
        target, addresses = callback_target(settings, url)
    except InvalidInput as exc:
        return Outcome(False, f"{exc.code}: {exc.message}", permanent=True)
    except StageError as exc:  # DNS trouble may pass
        return Outcome(False, exc.message)
    body = delivery.payload.encode("utf-8")
    stamp = int(time.time())
    headers = {"Host": target.host_header, "Content-Type": "application/json",
               "User-Agent": "innovation-pipeline-runner", "webhook-id": delivery.webhook_id,
               "webhook-timestamp": str(stamp), "webhook-signature": sign(secret, delivery.webhook_id, stamp, body)}
    timeout = urllib3.Timeout(connect=policy.connect_timeout_s, read=policy.read_timeout_s)
    last = "no address answered"
    for address in addresses:
        pool = (urllib3.HTTPSConnectionPool(address, target.port, timeout=timeout, retries=False, maxsize=1,
                                            cert_reqs="CERT_REQUIRED", ca_certs=certifi.where(),
                                            server_hostname=target.host, assert_hostname=target.host)
                if target.scheme == "https" else
                urllib3.HTTPConnectionPool(address, target.port, timeout=timeout, retries=False, maxsize=1))
        try:
            response = pool.urlopen("POST", target.request_target, body=body, headers=headers, redirect=False,
                                    assert_same_host=False)
        except (HTTPError, OSError) as exc:
            last = f"{target.display}: {type(exc).__name__}"
            continue
        finally:
            pool.close()
        if 200 <= response.status < 300:
            return Outcome(True, status=response.status)
        return Outcome(False, f"{target.display} answered HTTP {response.status}", status=response.status)
    return Outcome(False, last)
