"""From a model's reply to a checked value: parse, hold to the request's schema, at most one repair.

A strict provider already holds the reply to the schema; this is the check that does not trust
it (a route may still break it). A reply that is not a JSON object, breaks the reply model or
cites an id the request did not allow gets one follow-up message stating exactly what was wrong.
If the second reply is wrong too, the stage fails with that problem's code, and the message
keeps up to 500 characters of the model's final answer, so the failure can be read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

from config.errors import StageError
from config.log import get_logger
from pipeline.openrouter import prompts
from pipeline.openrouter.responses import Completion
from pipeline.openrouter.schemas import reply_problems
from pipeline.openrouter.transport import ChatClient, Message

log = get_logger(__name__)

# Problems the model can fix when told about them; any other StageError is final at once.
REPAIRABLE = frozenset({"LLM_BAD_RESPONSE", "STAGE_OUTPUT_INVALID"})
ANSWER_KEPT_CHARS = 500
# Some models wrap JSON in a markdown fence even when a schema is given.
_FENCE = re.compile(r"\A```[a-zA-Z]*\s*\n(?P<body>.*)\n\s*```\Z", re.DOTALL)

T = TypeVar("T")
Check = Callable[[dict[str, Any]], T]


def parse_object(stage: int, completion: Completion) -> dict[str, Any]:
    """The reply's content as a JSON object, or StageError LLM_BAD_RESPONSE saying why not."""
    if completion.refusal:
        raise StageError(stage, f"stage {stage}: the model refused: {completion.refusal[:ANSWER_KEPT_CHARS]}",
                         code="LLM_REFUSED")
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


def _attempt(stage: int, completion: Completion, reply: type[BaseModel], schema: Mapping[str, Any],
             check: Check[T]) -> T:
    value = parse_object(stage, completion)
    problems = reply_problems(reply, value, schema)
    if problems:
        raise StageError(stage, f"stage {stage}: the reply breaks the request's schema: {'; '.join(problems)}",
                         code="STAGE_OUTPUT_INVALID")
    return check(value)


def converse(client: ChatClient, stage: int, messages: Sequence[Message], *, name: str, reply: type[BaseModel],
             schema: Mapping[str, Any], check: Check[T], temperature: float) -> T:
    """Ask; check the reply against ``reply``/``schema`` then ``check``; on a fixable problem ask once more."""
    completion = client.complete(stage, messages, schema_name=name, schema=schema, temperature=temperature)
    try:
        return _attempt(stage, completion, reply, schema, check)
    except StageError as exc:
        if exc.code not in REPAIRABLE:
            raise
        first = exc
    log.warning("llm_repair", stage=stage, schema=name, code=first.code, problem=first.message[:1000])
    follow_up = [*messages, {"role": "assistant", "content": completion.content or ""}, prompts.repair(first.message)]
    completion = client.complete(stage, follow_up, schema_name=name, schema=schema, temperature=temperature)
    try:
        return _attempt(stage, completion, reply, schema, check)
    except StageError as exc:
        if exc.code not in REPAIRABLE:
            raise
        answer = (completion.content or "").strip()[:ANSWER_KEPT_CHARS]
        raise StageError(stage, f"{exc.message} (still wrong after one repair round-trip with {client.model}; "
                                f"first problem: {first.code}; the model's final answer began: {answer!r})",
                         code=exc.code) from exc
