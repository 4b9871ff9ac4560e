"""Standard Webhooks v1 signatures: verify the raw body before anything parses it.

    webhook-id         unique message id (also the sender's idempotency key)
    webhook-timestamp  Unix seconds; refused outside ±300 s of our clock (replay window)
    webhook-signature  space-separated ``v1,<base64 HMAC-SHA256>``; any one match is enough,
                       so a sender rotating its secret can sign with the old and the new one

The signed content is ``f"{id}.{timestamp}.".encode() + body``. The secret is base64, with or
without the ``whsec_`` prefix, with or without its ``=`` padding: its decoded bytes are the key,
exactly as the official Standard Webhooks libraries read it (tests/unit/test_webhook_oracle.py
checks both directions against the Python one). Where those libraries silently skip characters
outside the base64 alphabet (and so may compute a key the sender never had), this module refuses
the secret with a configuration error that says how to fix it.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import time
from collections.abc import Mapping

from config.errors import ConfigError, RunnerError

TOLERANCE_SECONDS = 300
SECRET_PREFIX = "whsec_"
MAX_ID_CHARS = 256
MAX_SIGNATURES = 16  # bounds the work an attacker can ask for with one request


class SignatureError(RunnerError):
    """The request is not signed by someone holding WEBHOOK_SECRET; ``reason`` says how it failed."""

    code = "SIGNATURE_INVALID"

    def __init__(self, reason: str) -> None:
        super().__init__(f"webhook signature rejected: {reason}")
        self.reason = reason


@functools.lru_cache(maxsize=8)  # every webhook needs it, and a process holds one or two secrets
def secret_key(secret: str) -> bytes:
    """The HMAC key for ``secret``: the base64 after an optional ``whsec_``; missing padding is restored."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    # The official libraries accept unpadded base64 (Python's appends "=="): restore the padding.
    padded = encoded + "=" * (-len(encoded) % 4)
    try:
        key = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        # Never echo the secret: say only what shape is expected.
        raise ConfigError("WEBHOOK_SECRET is not base64 (Standard Webhooks secrets are 'whsec_<base64>' or the "
                          "bare base64, as the sender's library reads them): copy the secret again from the "
                          "sender, or generate one with `python -c \"import base64, os; "
                          "print('whsec_' + base64.b64encode(os.urandom(32)).decode())\"`") from exc
    if not key:
        raise ConfigError("WEBHOOK_SECRET decodes to an empty key: copy the secret again from the sender")
    return key


def _digest(key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """The ``webhook-signature`` header value a sender holding ``secret`` would send (tests, bench)."""
    digest = _digest(secret_key(secret), msg_id, str(timestamp), body)
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(secret: str, body: bytes, *, msg_id: str = "msg_test",
                   timestamp: int | None = None) -> dict[str, str]:
    """All three Standard Webhooks headers for ``body`` (tests and the bench)."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return {"webhook-id": msg_id, "webhook-timestamp": str(stamp),
            "webhook-signature": sign(secret, msg_id, stamp, body)}


def verify(secret: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> str:
    """Check the signature of ``body``; return the webhook id, or raise SignatureError."""
    msg_id = (headers.get("webhook-id") or "").strip()
    stamp = (headers.get("webhook-timestamp") or "").strip()
    signatures = (headers.get("webhook-signature") or "").split()
    if not msg_id or not stamp or not signatures:
        raise SignatureError("the webhook-id, webhook-timestamp and webhook-signature headers are required")
    if len(msg_id) > MAX_ID_CHARS or not msg_id.isprintable():
        raise SignatureError("webhook-id is too long or holds control characters")
    if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 12:
        raise SignatureError("webhook-timestamp must be whole Unix seconds")
    skew = abs((time.time() if now is None else now) - int(stamp))
    if skew > TOLERANCE_SECONDS:
        raise SignatureError(f"webhook-timestamp is {int(skew)} s away from now (at most {TOLERANCE_SECONDS} s): "
                             "check the sender's clock, or the message is a replay")
    expected = _digest(secret_key(secret), msg_id, stamp, body)
    matched = False
    for entry in signatures[:MAX_SIGNATURES]:
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue  # other schemes (v1a asymmetric) are not ours to check
        try:
            candidate = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        # Compare every entry (no early exit) so timing says nothing about which one matched.
        matched |= hmac.compare_digest(candidate, expected)
    if not matched:
        raise SignatureError("no v1 signature matches: check WEBHOOK_SECRET on both sides")
    return msg_id
