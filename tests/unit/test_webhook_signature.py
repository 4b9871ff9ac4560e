"""Standard Webhooks v1 verification: the reference vector, secret forms, rotation and the time window."""

from __future__ import annotations

import base64

import pytest

from config.errors import ConfigError
from handlers.webhook_signature import SignatureError, secret_key, sign, verify

# The example of the Standard Webhooks specification (svix' test vector).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIME = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def headers(signature: str, *, msg_id: str = SPEC_ID, stamp: int = SPEC_TIME) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(stamp), "webhook-signature": signature}


def test_the_specification_example_signs_and_verifies() -> None:
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIME, SPEC_BODY) == SPEC_SIGNATURE
    assert verify(SPEC_SECRET, headers(SPEC_SIGNATURE), SPEC_BODY, now=SPEC_TIME + 10) == SPEC_ID


@pytest.mark.parametrize("secret", ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_b2xkLXNlY3JldA", "b2xkLXNlY3JldA",
                                    "whsec_b2xkLXNlY3JldA=="])
def test_a_secret_without_prefix_or_padding_is_base64_as_the_official_libraries_read_it(secret: str) -> None:
    padded = secret.removeprefix("whsec_")
    assert secret_key(secret) == base64.b64decode(padded + "=" * (-len(padded) % 4))


@pytest.mark.parametrize("secret", ["plain-secret-with-dashes-and-more-than-32-chars", "whsec_", "", "whsec_Zqx9Q"])
def test_a_secret_that_is_not_base64_is_a_configuration_error_that_says_how_to_fix_it(secret: str) -> None:
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET") as info:
        secret_key(secret)
    assert (secret.removeprefix("whsec_") or "!") not in str(info.value)


def test_any_one_of_several_signatures_is_enough() -> None:
    old = sign("whsec_b2xkLXNlY3JldA==", SPEC_ID, SPEC_TIME, SPEC_BODY)
    both = f"v1a,ignored {old} {SPEC_SIGNATURE}"
    assert verify(SPEC_SECRET, headers(both), SPEC_BODY, now=SPEC_TIME)


@pytest.mark.parametrize("change", ["body", "id", "timestamp", "signature"])
def test_any_change_breaks_the_signature(change: str) -> None:
    hdrs = headers(SPEC_SIGNATURE)
    body = SPEC_BODY
    if change == "body":
        body = body.replace(b"2", b"3")
    elif change == "id":
        hdrs["webhook-id"] = "msg_other"
    elif change == "timestamp":
        hdrs["webhook-timestamp"] = str(SPEC_TIME + 1)
    else:
        hdrs["webhook-signature"] = "v1," + "A" * 44
    with pytest.raises(SignatureError):
        verify(SPEC_SECRET, hdrs, body, now=SPEC_TIME)


@pytest.mark.parametrize("skew, ok", [(-300, True), (300, True), (-301, False), (301, False)])
def test_the_timestamp_window_is_300_seconds(skew: int, ok: bool) -> None:
    stamp = SPEC_TIME + skew
    hdrs = headers(sign(SPEC_SECRET, SPEC_ID, stamp, SPEC_BODY), stamp=stamp)
    if ok:
        verify(SPEC_SECRET, hdrs, SPEC_BODY, now=SPEC_TIME)
    else:
        with pytest.raises(SignatureError, match="away from now"):
            verify(SPEC_SECRET, hdrs, SPEC_BODY, now=SPEC_TIME)


@pytest.mark.parametrize("bad", [{}, {"webhook-timestamp": "12.5"}, {"webhook-timestamp": "²³"},
                                 {"webhook-id": "a\x00b"}, {"webhook-signature": "v1,%%%"}])
def test_malformed_headers_are_signature_errors(bad: dict[str, str]) -> None:
    hdrs = {**headers(SPEC_SIGNATURE), **bad} if bad else {}
    with pytest.raises(SignatureError) as info:
        verify(SPEC_SECRET, hdrs, SPEC_BODY, now=SPEC_TIME)
    assert "MfKQ9r8" not in str(info.value)


def test_a_broken_whsec_secret_is_a_configuration_error_that_hides_it() -> None:
    with pytest.raises(ConfigError) as info:
        secret_key("whsec_not*base64")
    assert "not*base64" not in str(info.value)
