"""What the model must write, per call: pydantic reply models turned into strict JSON Schemas.

The reply models reuse the stored outputs' field types (``pipeline.stage_schema``), so the
schema sent with a request and the check of the stored output come from one definition. A
request's schema is made strict the way OpenRouter's structured outputs want it: every object
``additionalProperties: false`` with every property required, ``$ref`` inlined, and enums for
what the call allows: passage ids shown, signal and insight ids that exist, the run's
``brand_id``, mechanism and innovation types. The model writes no ids of its own: the code
numbers signals ``S1``..., insights ``I1``..., ``B1``... and inserts evidence text by passage id.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.stage_schema import InnovationType, MechanismType, Text
from pipeline.vocabulary import INNOVATION_TYPES

# Placeholders a field declares for the ids a request allows (filled by strict_schema).
PASSAGES, INSPIRATIONS, SIGNALS, INSIGHTS, BRAND = "passages", "inspirations", "signals", "insights", "brand"
_SLOT = "x-ids"
MAX_ENUM = 250  # beyond this many integer ids a schema states their range (providers cap enum sizes)


def _ids(slot: str, *, low: int, high: int) -> Any:
    return Field(min_length=low, max_length=high, json_schema_extra={_SLOT: slot})


class _Reply(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class InspirationReply(_Reply):
    title: Text = Field(description="a short name for the innovation")
    description: Text = Field(description="2-3 sentences: what was done and why it works")
    mechanism_type: MechanismType
    passage_ids: Annotated[list[int], _ids(PASSAGES, low=1, high=4)] = Field(
        description="ids of the passages that show it (the [P..] numbers)")


class Stage1Reply(_Reply):
    language: Text = Field(description="the language you write in, as an English name, e.g. English, French")
    summary: Text = Field(description="2-4 sentences: what the document is about and why it matters")
    core_mechanism: Text = Field(description="one sentence: the main way these innovations create value")
    inspirations: Annotated[list[InspirationReply], Field(min_length=1, max_length=3)]


class SectionReply(_Reply):
    summary: Text = Field(description="2-3 sentences: what this section says")
    inspirations: Annotated[list[InspirationReply], Field(min_length=0, max_length=3)]


class SignalReply(_Reply):
    category: Text = Field(description="e.g. Consumer behaviour, Technology, Regulation, Economics")
    description: Text = Field(description="1-2 sentences: the signal and what it shows, with the report's figure")
    relevance: Text = Field(description="high, medium or low, a colon, then why")
    inspiration: str = Field(json_schema_extra={_SLOT: INSPIRATIONS})
    passage_ids: Annotated[list[int], _ids(PASSAGES, low=0, high=3)]


class Stage2Reply(_Reply):
    signals: Annotated[list[SignalReply], Field(min_length=1, max_length=9)]


class InsightReply(_Reply):
    title: Text = Field(description="the principle, in under 12 words")
    description: Text = Field(description="2-3 sentences: the principle, the source case, where else it applies")
    transferability: Text = Field(description="high, medium or low, a colon, then why it carries across industries")
    signal_ids: Annotated[list[str], _ids(SIGNALS, low=1, high=6)]


class Stage3Reply(_Reply):
    insights: Annotated[list[InsightReply], Field(min_length=2, max_length=5)]


class BrandInsightReply(_Reply):
    title: Text = Field(description="how the brand could apply the insight, in under 15 words")
    description: Text = Field(description="2-3 sentences naming the product line, customers and priority served")
    brand_fit: Text = Field(description="high, medium or low, a colon, then why it fits or strains the brand")
    insight_ids: Annotated[list[str], _ids(INSIGHTS, low=1, high=5)]


class Stage4Reply(_Reply):
    brand_id: str = Field(json_schema_extra={_SLOT: BRAND})
    insights: Annotated[list[BrandInsightReply], Field(min_length=1, max_length=10)]


class CardReply(_Reply):
    title: Text = Field(description="a concrete product or service idea, in under 12 words")
    description: Text = Field(description="3-4 sentences: the idea, who it is for, the brand insight it builds on")
    product_line: Text = Field(description="the brand's product line it extends or starts")
    channel: Text = Field(description="where it is sold or delivered")
    price_point: Text = Field(description="the price, with its currency, and how it compares")
    why_now: Text = Field(description="a figure from the report's evidence that says why now")
    passage_ids: Annotated[list[int], _ids(PASSAGES, low=1, high=3)]
    actionability: Annotated[list[Text], Field(min_length=3, max_length=3)]
    follow_up_prompts: Annotated[list[Text], Field(min_length=2, max_length=2)]


class CardsReply(_Reply):
    """One card per innovation type, by construction: the type is the key."""

    better_for_you: CardReply = Field(alias="Better-For-You")
    premium: CardReply = Field(alias="Premium")
    convenience: CardReply = Field(alias="Convenience")
    format: CardReply = Field(alias="Format")
    occasion: CardReply = Field(alias="Occasion")


class Stage5Reply(_Reply):
    cards: CardsReply


assert [f.alias for f in CardsReply.model_fields.values()] == list(INNOVATION_TYPES)
_ = InnovationType  # the stored cards' type; the reply's keys above are the same five names

STAGE_REPLIES: Mapping[str, type[_Reply]] = {
    "stage1": Stage1Reply, "stage1_section": SectionReply, "stage2": Stage2Reply, "stage3": Stage3Reply,
    "stage4": Stage4Reply, "stage5": Stage5Reply,
}


# ---- strict JSON Schema -----------------------------------------------------------------------

def _inline(node: Any, defs: Mapping[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline(copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]]), defs)
        return {k: _inline(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def _strict(node: Any, ids: Mapping[str, Sequence[Any]]) -> Any:
    if isinstance(node, list):
        return [_strict(v, ids) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: ({name: _strict(sub, ids) for name, sub in v.items()} if k == "properties" else _strict(v, ids))
            for k, v in node.items() if k not in ("title", "default")}  # a property may be named "title"
    slot = node.pop(_SLOT, None)
    if slot is not None:
        values = list(ids.get(slot, ()))
        target = node["items"] if node.get("type") == "array" else node
        if len(values) > MAX_ENUM and all(isinstance(v, int) for v in values):
            target["minimum"], target["maximum"] = min(values), max(values)  # a section's ids are contiguous
        elif values:
            target["enum"] = values
        elif node.get("type") == "array":  # nothing citable: the only valid answer is an empty list
            node["minItems"], node["maxItems"] = 0, 0
    if node.get("type") == "object" and "properties" in node:
        node["additionalProperties"] = False
        node["required"] = list(node["properties"])
    return node


def strict_schema(reply: type[BaseModel], ids: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """``reply``'s JSON Schema, strict (all required, no extra keys) with ``ids`` as enums."""
    raw = reply.model_json_schema(by_alias=True, mode="validation")
    return dict(_strict(_inline(raw, raw.get("$defs", {})), ids))


def response_format(name: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """OpenRouter's ``response_format`` for strict structured outputs."""
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": dict(schema)}}


# ---- checking a reply -------------------------------------------------------------------------

def _where(path: str, key: str | int) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else key)


def enum_problems(value: Any, schema: Mapping[str, Any], path: str = "") -> list[str]:
    """Values outside the schema's enums (the shape itself is pydantic's to check)."""
    if "enum" in schema and value not in schema["enum"]:
        allowed = schema["enum"]
        shown = ", ".join(map(str, allowed[:12])) + (", …" if len(allowed) > 12 else "")
        return [f"{path} must be one of {shown}; got {value!r}"]
    if isinstance(value, dict) and "properties" in schema:
        return [p for k, v in value.items() if k in schema["properties"]
                for p in enum_problems(v, schema["properties"][k], _where(path, k))]
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [p for i, v in enumerate(value) for p in enum_problems(v, schema["items"], _where(path, i))]
    return []


def reply_problems(reply: type[BaseModel], value: Any, schema: Mapping[str, Any]) -> list[str]:
    """Every way ``value`` breaks the reply model or the request's enums; empty when it is right."""
    try:
        reply.model_validate(value)
    except ValidationError as exc:
        return [f"{'.'.join(str(p) for p in e['loc']) or 'reply'}: {e['msg']}" for e in exc.errors()][:20]
    return enum_problems(value, schema)
