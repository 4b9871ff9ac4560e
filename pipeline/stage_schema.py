"""The five stage outputs (contract §8) as pydantic v2 models: one definition validates what is stored.

Every engine's output passes :func:`validate_stage_output` before it is stored, so an LLM's reply
and the offline engine's output are held to the same models. The LLM's request schemas
(``pipeline.openrouter.schemas``) are built from the same field types (:data:`Text`,
:data:`MechanismType`, :data:`InnovationType`...), so what the model is told and what is checked
cannot drift apart. Problems name the JSON path, every one of them in one message:
``stage 5: opportunities[2].actionability must hold exactly 3 items, got 2``.

Keys beyond the contract are allowed (engines carry context forward); the optional keys both
engines use are typed: ``cue``/``passage_ids`` on inspirations, ``evidence``/``passage_ids`` on
signals, and ``evidence``, ``passage_ids``, ``product_line``, ``channel``, ``price_point``,
``why_now`` on cards. Semantic checks stay here too: ids unique, cited ids exist, five cards
numbered 1-5 covering the five innovation types.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, ValidationError
from pydantic_core import PydanticCustomError

from config.errors import StageError
from pipeline.vocabulary import INNOVATION_TYPES, MECHANISM_TYPES

__all__ = ["INNOVATION_TYPES", "MECHANISM_TYPES", "STAGE_MODELS", "StageOutputInvalid", "validate_stage_output"]

_MAX_LISTED = 10  # problems spelled out in one message; the rest are counted
_DEFINED_IN = {"signal": 2, "insight": 3}  # the stage whose output defines each kind of id


def _kind(value: object) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "must not be empty")
    return value


def _label(value: object) -> str | float:
    """A label ("high: quantified") or a score; booleans are neither."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise PydanticCustomError("label_type", "must be a string or a number, got {kind}", {"kind": _kind(value)})
    if isinstance(value, str):
        return _not_blank(value)
    return value


def _one_of(choices: Sequence[str]) -> Any:
    def check(value: object) -> str:
        if not isinstance(value, str):
            raise PydanticCustomError("string_type", "must be a string, got {kind}", {"kind": _kind(value)})
        _not_blank(value)
        if value not in choices:
            raise PydanticCustomError("choice", "must be one of {listed}, got {got}",
                                      {"listed": ", ".join(choices), "got": repr(value)})
        return value
    return check


# ---- field types shared with the LLM request schemas ---------------------------------------------
Text = Annotated[str, AfterValidator(_not_blank)]
Label = Annotated[str | float, PlainValidator(_label, json_schema_input_type=str)]
# Literal[...] of the vocabulary: the JSON Schema gets the enum, the validator the contract's message.
_Mechanisms = Literal[MECHANISM_TYPES]  # type: ignore[valid-type]
_Innovations = Literal[INNOVATION_TYPES]  # type: ignore[valid-type]
MechanismType = Annotated[str, PlainValidator(_one_of(MECHANISM_TYPES), json_schema_input_type=_Mechanisms)]
InnovationType = Annotated[str, PlainValidator(_one_of(INNOVATION_TYPES), json_schema_input_type=_Innovations)]
PassageIds = list[Annotated[int, Field(ge=1)]]
Quotes = Annotated[list[Text], Field(min_length=1)]


class _Output(BaseModel):
    """Strict types (no "2" for 2, no tuple for a list); unknown keys are carried, not refused."""

    model_config = ConfigDict(strict=True, extra="allow")


class Inspiration(_Output):
    title: Text
    description: Text
    mechanism_type: MechanismType
    evidence: Quotes
    cue: Text | None = None
    passage_ids: PassageIds | None = None


class Stage1(_Output):
    summary: Text
    core_mechanism: Text
    inspirations: Annotated[list[Inspiration], Field(min_length=1, max_length=3)]
    language: Text | None = None  # the language the LLM engine writes in, carried to later stages


class Signal(_Output):
    id: Text
    category: Text
    description: Text
    relevance: Label
    inspiration: Label
    evidence: list[Text] | Text | None = None  # a string: the offline engine before issue 10's lists
    passage_ids: PassageIds | None = None


class Stage2(_Output):
    signals: Annotated[list[Signal], Field(min_length=1)]


class Insight(_Output):
    id: Text
    title: Text
    description: Text
    transferability: Label
    signal_ids: Annotated[list[Text], Field(min_length=1)]


class Stage3(_Output):
    insights: Annotated[list[Insight], Field(min_length=1)]


class BrandInsight(_Output):
    id: Text
    title: Text
    description: Text
    brand_fit: Label
    insight_ids: Annotated[list[Text], Field(min_length=1)]


class Stage4(_Output):
    brand_id: Text
    insights: Annotated[list[BrandInsight], Field(min_length=1)]


class Card(_Output):
    number: int
    title: Text
    innovation_type: InnovationType
    description: Text
    actionability: Annotated[list[Text], Field(min_length=3, max_length=3)]
    follow_up_prompts: Annotated[list[Text], Field(min_length=2, max_length=2)]
    evidence: list[Text] | None = None
    passage_ids: PassageIds | None = None
    product_line: Text | None = None
    channel: Text | None = None
    price_point: Text | None = None
    why_now: Text | None = None


class Stage5(_Output):
    opportunities: Annotated[list[Card], Field(min_length=5, max_length=5)]


STAGE_MODELS: Mapping[int, type[_Output]] = {1: Stage1, 2: Stage2, 3: Stage3, 4: Stage4, 5: Stage5}


class StageOutputInvalid(StageError):
    """A stage output breaks contract §8; ``problems`` lists every violation found."""

    code = "STAGE_OUTPUT_INVALID"

    def __init__(self, stage: int, problems: list[str]) -> None:
        self.problems = tuple(problems)
        shown = "; ".join(problems[:_MAX_LISTED])
        more = f"; and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
        super().__init__(stage, f"stage {stage}: {shown}{more}", code="STAGE_OUTPUT_INVALID")


# ---- pydantic's errors in the contract's words ----------------------------------------------------

def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-", "list[", "str", "int")):
            continue  # a union or validator branch, not a place in the document
        else:
            out += f".{part}" if out else str(part)
    return out


def _size(error: Mapping[str, Any], minimum: int | None, maximum: int | None) -> str:
    got = error["ctx"].get("actual_length", len(error["input"]) if isinstance(error["input"], list) else 0)
    if minimum is not None and maximum is not None:
        bound = f"exactly {minimum}" if minimum == maximum else f"{minimum}-{maximum}"
    elif minimum is not None:
        bound = f"at least {minimum}"
    else:
        bound = f"at most {maximum}"
    plural = "" if bound.endswith(" 1") else "s"
    return f"must hold {bound} item{plural}, got {got}"


_EXPECTED = {"string_type": "a string", "int_type": "an integer", "list_type": "an array", "dict_type": "an object",
             "model_type": "an object", "float_type": "a number", "bool_type": "a boolean"}


def _message(error: Mapping[str, Any], bounds: Mapping[str, tuple[int | None, int | None]]) -> str | None:
    kind, path = error["type"], _path(error["loc"])
    if kind == "missing":
        return f"{path} is missing"
    if kind in ("too_short", "too_long"):
        key = path.rsplit(".", 1)[-1].split("[")[0]
        low, high = bounds.get(key, (error["ctx"].get("min_length"), error["ctx"].get("max_length")))
        return f"{path} {_size(error, low, high)}"
    if kind in _EXPECTED:
        return f"{path} must be {_EXPECTED[kind]}, got {_kind(error['input'])}"
    if kind in ("greater_than_equal",):
        return f"{path} must be a passage id (1 or more), got {error['input']!r}"
    return f"{path} {error['msg']}"


# Array sizes as the contract states them (pydantic reports only the bound that was crossed).
_BOUNDS: Mapping[str, tuple[int | None, int | None]] = {
    "inspirations": (1, 3), "evidence": (1, None), "signals": (1, None), "insights": (1, None),
    "signal_ids": (1, None), "insight_ids": (1, None), "opportunities": (5, 5), "actionability": (3, 3),
    "follow_up_prompts": (2, 2),
}


def _shape_problems(stage: int, output: Mapping[str, Any]) -> list[str]:
    try:
        STAGE_MODELS[stage].model_validate(output)
    except ValidationError as exc:
        problems: list[str] = []
        for error in exc.errors():
            message = _message(error, _BOUNDS)
            if message and message not in problems:
                problems.append(message)
        return problems
    return []


def _json_problems(value: object, path: str, depth: int = 0) -> list[str]:
    """Everything must survive a JSON round trip unchanged: no tuples, sets, NaN or odd keys."""
    if depth > 32:
        return [f"{path or 'output'} is nested too deeply"]
    if isinstance(value, Mapping):
        problems = []
        for key, inner in value.items():
            if not isinstance(key, str):
                problems.append(f"{path or 'output'} has a non-string key {key!r}")
                continue
            problems += _json_problems(inner, f"{path}.{key}" if path else key, depth + 1)
        return problems
    if isinstance(value, list):
        return [p for i, inner in enumerate(value) for p in _json_problems(inner, f"{path}[{i}]", depth + 1)]
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{path} must be a finite number, got {value!r}"]
    if value is not None and not isinstance(value, (str, int, float, bool)):
        return [f"{path} is a {type(value).__name__}, not a JSON value"]
    return []


def _known(previous: Mapping[str, Any] | None, key: str) -> list[str] | None:
    if previous is None:
        return None
    items = previous.get(key)
    if not isinstance(items, list):
        return []
    return [str(item["id"]) for item in items if isinstance(item, Mapping) and "id" in item]


def _id_problems(items: list[Mapping[str, Any]], base: str) -> list[str]:
    seen: dict[str, int] = {}
    problems = []
    for i, item in enumerate(items):
        value = item["id"]
        if value in seen:
            problems.append(f"{base}[{i}].id {value!r} repeats {base}[{seen[value]}].id")
        else:
            seen[value] = i
    return problems


def _ref_problems(items: list[Mapping[str, Any]], key: str, known: list[str] | None, what: str) -> list[str]:
    if known is None:
        return []
    listed = ", ".join(known) if known else "none"
    return [f"insights[{i}].{key}[{j}] refers to unknown {what} {ref!r} (stage {_DEFINED_IN[what]} has {listed})"
            for i, item in enumerate(items) for j, ref in enumerate(item[key]) if ref not in known]


def _semantic_problems(stage: int, out: Mapping[str, Any], previous: Mapping[str, Any] | None) -> list[str]:
    if stage == 2:
        return _id_problems(out["signals"], "signals")
    if stage == 3:
        return _id_problems(out["insights"], "insights") + _ref_problems(
            out["insights"], "signal_ids", _known(previous, "signals"), "signal")
    if stage == 4:
        return _id_problems(out["insights"], "insights") + _ref_problems(
            out["insights"], "insight_ids", _known(previous, "insights"), "insight")
    if stage == 5:
        cards = out["opportunities"]
        problems = [f"opportunities[{i}].number must be {i + 1} (cards are numbered 1-5 in order), got {card['number']}"
                    for i, card in enumerate(cards) if card["number"] != i + 1]
        kinds = [card["innovation_type"] for card in cards]
        missing = [k for k in INNOVATION_TYPES if k not in kinds]
        if missing:
            problems.append(f"opportunities must cover every innovation type; missing {', '.join(missing)} "
                            f"(got {', '.join(kinds)})")
        return problems
    return []


def validate_stage_output(stage: int, output: object, previous: Mapping[str, Any] | None = None) -> None:
    """Raise StageOutputInvalid (a StageError, code STAGE_OUTPUT_INVALID) unless ``output`` fits §8.

    ``previous`` is the previous stage's output; when given, ids that stage 3 and 4 cite
    (``signal_ids``, ``insight_ids``) must exist in it.
    """
    if stage not in STAGE_MODELS:
        raise ValueError(f"there is no stage {stage!r}: stages are 1-5")
    if not isinstance(output, Mapping):
        raise StageOutputInvalid(stage, [f"output must be an object, got {_kind(output)}"])
    problems = _shape_problems(stage, output)
    if not problems:  # shape first; then what a JSON round trip would change, then meaning
        problems = _json_problems(output, "") or _semantic_problems(stage, output, previous)
    if problems:
        raise StageOutputInvalid(stage, problems)
