"""handlers/webhook_signature.py against the official Standard Webhooks library, in both directions.

``standardwebhooks`` (PyPI, the specification's reference implementation for Python) is the
oracle: what it signs we accept, what we sign it accepts, both refuse the same forgeries, and
both read every secret form (``whsec_`` or bare, padded or not) as the same key.
"""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from handlers.webhook_signature import SignatureError, secret_key, sign, verify

# The example of the Standard Webhooks specification.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIME = 1614265330
SPEC_BODY = '{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

keys = st.binary(min_size=1, max_size=64)
message_ids = st.text(st.characters(codec="ascii", categories=["L", "N", "P"]), min_size=1, max_size=64)
# The library reads the body as UTF-8 text, as a JSON webhook is.
bodies = st.text(max_size=512)


@st.composite
def secrets(draw: st.DrawFn, key: bytes | None = None) -> str:
    """A secret for ``key`` in any form a sender may hand out."""
    encoded = base64.b64encode(draw(keys) if key is None else key).decode()
    if draw(st.booleans()):
        encoded = encoded.rstrip("=")
    return ("whsec_" if draw(st.booleans()) else "") + encoded


def stamp_of(now: int) -> datetime:
    return datetime.fromtimestamp(now, tz=UTC)


def test_the_library_and_we_agree_on_the_specification_example() -> None:
    oracle = Webhook(SPEC_SECRET)
    assert oracle.sign(SPEC_ID, stamp_of(SPEC_TIME), SPEC_BODY) == SPEC_SIGNATURE
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIME, SPEC_BODY.encode()) == SPEC_SIGNATURE


@settings(max_examples=200, deadline=None)
@given(key=keys, data=st.data())
def test_every_secret_form_is_the_same_key_for_both(key: bytes, data: st.DataObject) -> None:
    secret = data.draw(secrets(key))
    assert secret_key(secret) == key
    assert Webhook(secret).sign("m", stamp_of(SPEC_TIME), "") == sign(secret, "m", SPEC_TIME, b"")


@settings(max_examples=200, deadline=None)
@given(secret=secrets(), msg_id=message_ids, body=bodies)
def test_what_the_library_signs_we_accept(secret: str, msg_id: str, body: str) -> None:
    now = int(time.time())
    signature = Webhook(secret).sign(msg_id, stamp_of(now), body)
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(now), "webhook-signature": signature}
    assert verify(secret, headers, body.encode(), now=now) == msg_id


@settings(max_examples=200, deadline=None)
@given(secret=secrets(), msg_id=message_ids, body=bodies)
def test_what_we_sign_the_library_accepts(secret: str, msg_id: str, body: str) -> None:
    now = int(time.time())
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(now),
               "webhook-signature": sign(secret, msg_id, now, body.encode())}
    Webhook(secret).verify(body.encode(), headers, json_parse=False)  # raises when it refuses


@settings(max_examples=200, deadline=None)
@given(signer=secrets(), checker=secrets(), msg_id=message_ids, body=bodies, tampered=bodies,
       rotate=st.booleans())
def test_both_refuse_and_accept_the_same_deliveries(signer: str, checker: str, msg_id: str, body: str,
                                                   tampered: str, rotate: bool) -> None:
    now = int(time.time())
    signature = sign(signer, msg_id, now, body.encode())
    if rotate:  # a sender rotating its secret signs with both: any one match is enough
        signature = f"{sign(checker, 'other', now, b'')} {signature}"
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(now), "webhook-signature": signature}
    try:
        Webhook(checker).verify(tampered.encode(), headers, json_parse=False)
        oracle_accepts = True
    except WebhookVerificationError:
        oracle_accepts = False
    try:
        verify(checker, headers, tampered.encode(), now=now)
        we_accept = True
    except SignatureError:
        we_accept = False
    assert we_accept == oracle_accepts
    assert we_accept == (secret_key(signer) == secret_key(checker) and body == tampered)


@pytest.mark.parametrize("skew", [-301, 301])
def test_both_refuse_a_timestamp_outside_five_minutes(skew: int) -> None:
    now = int(time.time())
    stamp = now + skew
    headers = {"webhook-id": SPEC_ID, "webhook-timestamp": str(stamp),
               "webhook-signature": sign(SPEC_SECRET, SPEC_ID, stamp, SPEC_BODY.encode())}
    with pytest.raises(WebhookVerificationError):
        Webhook(SPEC_SECRET).verify(SPEC_BODY.encode(), headers, json_parse=False)
    with pytest.raises(SignatureError):
        verify(SPEC_SECRET, headers, SPEC_BODY.encode(), now=now)
