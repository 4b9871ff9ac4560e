"""The POST /run body: raw bytes → a validated, frozen ``RunRequest``, or one 400 naming each bad field.

Unknown fields are ignored (the sender may add some); every shape problem, from invalid UTF-8 to a
list where an object belongs, is an ``InvalidPayload`` (HTTP 400), never a server error.
The blob URL is checked by the same rules the fetcher uses, but not resolved: DNS waits for the run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from config.errors import InvalidInput
from config.paths import RUN_ID_PATTERN
from config.settings import Settings
from persistence.records import RunRequest
from pipeline.brands import is_brand_id, list_brand_ids
from pipeline.fetch import check_blob_url

MAX_USER_ID_CHARS = 128


class InvalidPayload(InvalidInput):
    """The body is not a valid run request; ``fields`` maps each bad field to what is wrong."""

    code = "INVALID_PAYLOAD"

    def __init__(self, fields: Mapping[str, str]) -> None:
        super().__init__("invalid payload")
        self.fields = dict(fields)


def decode_body(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or InvalidPayload saying why it is not one."""
    try:
        value = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidPayload({"body": "must be UTF-8 encoded JSON"}) from exc
    except RecursionError as exc:  # absurdly deep nesting, still well under 64 KiB
        raise InvalidPayload({"body": "JSON is nested too deeply"}) from exc
    except ValueError as exc:  # json.JSONDecodeError, and ints over Python's digit limit
        raise InvalidPayload({"body": f"is not valid JSON ({exc})"[:200]}) from exc
    if not isinstance(value, dict):
        raise InvalidPayload({"body": "must be a JSON object with run_id, blob_url, company_id and user_id"})
    return value


def _run_id(value: object, settings: Settings) -> str:
    if not isinstance(value, str) or not RUN_ID_PATTERN.fullmatch(value):
        raise ValueError("must be 1-64 characters from A-Z, a-z, 0-9, '_' and '-'")
    return value


def _company_id(value: object, settings: Settings) -> str:
    if not isinstance(value, str) or not is_brand_id(settings.brands_dir, value):
        brands = list_brand_ids(settings.brands_dir)
        raise ValueError(f"must be one of the brand ids: {', '.join(brands) or '(none installed)'}")
    return value


def _user_id(value: object, settings: Settings) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_USER_ID_CHARS or not value.isprintable():
        raise ValueError(f"must be 1-{MAX_USER_ID_CHARS} printable characters")
    return value


def _blob_url(value: object, settings: Settings) -> str:
    try:
        return check_blob_url(settings, value).url
    except InvalidInput as exc:
        raise ValueError(exc.message) from exc


FIELDS = {"run_id": _run_id, "blob_url": _blob_url, "company_id": _company_id, "user_id": _user_id}


def parse_run_request(settings: Settings, body: bytes) -> RunRequest:
    """Validate the webhook body into a RunRequest; InvalidPayload lists every bad field at once."""
    data = decode_body(body)
    values: dict[str, str] = {}
    problems: dict[str, str] = {}
    for name, check in FIELDS.items():
        if name not in data:
            problems[name] = "is required"
            continue
        try:
            values[name] = check(data[name], settings)
        except ValueError as exc:
            problems[name] = str(exc)
    if problems:
        raise InvalidPayload(problems)
    return RunRequest(run_id=values["run_id"], company_id=values["company_id"],
                      user_id=values["user_id"], document_url=values["blob_url"])
