"""From a model's reply to a stage output: parse, check, and at most one repair round-trip.

A reply that is not a JSON object, breaks the stage's shape, or quotes the document wrongly gets
one follow-up message stating exactly what was wrong. The second reply must be right; if it is
not, its problem is raised as a StageError with that problem's code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from config.errors import StageError
from config.log import get_logger
from pipeline.openrouter import prompts
from pipeline.openrouter.responses import Completion
from pipeline.openrouter.transport import ChatClient, Message

log = get_logger(__name__)

# Problems the model can fix when told about them; any other StageError is final at once.
REPAIRABLE = frozenset({"LLM_BAD_RESPONSE", "STAGE_OUTPUT_INVALID", "LLM_EVIDENCE_NOT_IN_DOCUMENT"})
# Some models wrap JSON in a markdown fence even when asked for a bare JSON object.
_FENCE = re.compile(r"\A```[a-zA-Z]*\s*\n(?P<body>.*)\n\s*```\Z", re.DOTALL)

Check = Callable[[dict[str, Any]], dict[str, Any]]


def parse_object(stage: int, completion: Completion) -> dict[str, Any]:
    """The reply's content as a JSON object, or StageError LLM_BAD_RESPONSE saying why not."""
    if completion.content is None or not completion.content.strip():
        raise StageError(stage, f"stage {stage}: the model's reply has no text content", code="LLM_BAD_RESPONSE")
    text = completion.content.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group("body")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        cut = " (it was cut off at the token limit)" if completion.finish_reason == "length" else ""
        raise StageError(stage, f"stage {stage}: the model's reply is not JSON{cut}: {exc.msg} at line "
                                f"{exc.lineno}, column {exc.colno}", code="LLM_BAD_RESPONSE") from exc
    if not isinstance(value, dict):
        raise StageError(stage, f"stage {stage}: the model's reply is JSON but not an object "
                                f"(got {type(value).__name__})", code="LLM_BAD_RESPONSE")
    return value


def _attempt(stage: int, completion: Completion, check: Check) -> dict[str, Any]:
    return check(parse_object(stage, completion))


def converse(client: ChatClient, stage: int, messages: Sequence[Message], check: Check) -> dict[str, Any]:
    """Ask, check the reply with ``check``; on a repairable problem ask once more saying what was wrong."""
    completion = client.complete(stage, messages)
    try:
        return _attempt(stage, completion, check)
    except StageError as exc:
        if exc.code not in REPAIRABLE:
            raise
        first = exc
    log.warning("llm_repair", stage=stage, code=first.code, problem=first.message[:1000])
    follow_up = [*messages, {"role": "assistant", "content": completion.content or ""},
                 prompts.repair(first.code, first.message)]
    completion = client.complete(stage, follow_up)
    try:
        return _attempt(stage, completion, check)
    except StageError as exc:
        if exc.code not in REPAIRABLE:
            raise
        raise StageError(stage, f"{exc.message} (still wrong after one repair round-trip with {client.model}; "
                                f"first problem: {first.code})", code=exc.code) from exc
