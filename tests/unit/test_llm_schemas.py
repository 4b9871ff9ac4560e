"""The request schemas: strict (all required, no extra keys), enums where the call allows ids, one source."""

from __future__ import annotations

import pytest

from pipeline.openrouter import schemas as s
from pipeline.stage_schema import validate_stage_output
from pipeline.vocabulary import INNOVATION_TYPES, MECHANISM_TYPES


def _objects(node):
    if isinstance(node, dict):
        if node.get("type") == "object":
            yield node
        for value in node.values():
            yield from _objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from _objects(value)


@pytest.mark.parametrize("name", sorted(s.STAGE_REPLIES))
def test_every_object_is_strict_and_nothing_is_referenced(name):
    schema = s.strict_schema(s.STAGE_REPLIES[name], {s.PASSAGES: [1, 2], s.SIGNALS: ["S1"], s.INSIGHTS: ["I1"],
                                                     s.BRAND: ["acme"], s.INSPIRATIONS: ["Refills"]})
    assert "$ref" not in str(schema) and "$defs" not in schema
    for obj in _objects(schema):
        assert obj["additionalProperties"] is False and obj["required"] == list(obj["properties"])


def test_enums_come_from_the_vocabulary_and_the_call():
    stage1 = s.strict_schema(s.Stage1Reply, {s.PASSAGES: [3, 4, 5]})
    item = stage1["properties"]["inspirations"]["items"]["properties"]
    assert item["mechanism_type"]["enum"] == list(MECHANISM_TYPES)
    assert item["passage_ids"]["items"]["enum"] == [3, 4, 5]
    stage5 = s.strict_schema(s.Stage5Reply, {s.PASSAGES: [7]})
    assert list(stage5["properties"]["cards"]["properties"]) == list(INNOVATION_TYPES)
    assert s.strict_schema(s.Stage4Reply, {s.BRAND: ["acme"]})["properties"]["brand_id"]["enum"] == ["acme"]


def test_many_passage_ids_become_a_range_and_none_an_empty_list():
    many = s.strict_schema(s.Stage1Reply, {s.PASSAGES: list(range(10, 10 + s.MAX_ENUM + 1))})
    items = many["properties"]["inspirations"]["items"]["properties"]["passage_ids"]["items"]
    assert (items["minimum"], items["maximum"]) == (10, 10 + s.MAX_ENUM) and "enum" not in items
    none = s.strict_schema(s.Stage5Reply, {})["properties"]["cards"]["properties"]["Premium"]
    assert (none["properties"]["passage_ids"]["minItems"], none["properties"]["passage_ids"]["maxItems"]) == (0, 0)


def test_a_reply_outside_the_enums_or_the_model_is_named():
    schema = s.strict_schema(s.Stage3Reply, {s.SIGNALS: ["S1", "S2"]})
    insight = {"title": "t", "description": "d", "transferability": "high: x", "signal_ids": ["S9"]}
    assert s.reply_problems(s.Stage3Reply, {"insights": [insight, insight]}, schema) == [
        "insights[0].signal_ids[0] must be one of S1, S2; got 'S9'",
        "insights[1].signal_ids[0] must be one of S1, S2; got 'S9'"]
    problems = s.reply_problems(s.Stage3Reply, {"insights": [{**insight, "extra": 1}]}, schema)
    assert any("extra" in p for p in problems) and any("insights" in p for p in problems)


def test_the_stored_models_accept_the_offline_engines_optional_keys():
    validate_stage_output(1, {"summary": "s", "core_mechanism": "c", "inspirations": [
        {"title": "t", "description": "d", "mechanism_type": "COMBINED", "evidence": ["q"], "cue": "c",
         "passage_ids": [1]}]})
    validate_stage_output(2, {"signals": [{"id": "S1", "category": "c", "description": "d", "relevance": "high",
                                           "inspiration": "t", "evidence": ["q"], "passage_ids": [2]}]})
    card = {"title": "t", "description": "d", "actionability": ["a", "b", "c"], "follow_up_prompts": ["x", "y"],
            "evidence": ["q"], "passage_ids": [1], "product_line": "p", "channel": "c", "price_point": "$3",
            "why_now": "35%"}
    validate_stage_output(5, {"opportunities": [{**card, "number": n, "innovation_type": kind}
                                                for n, kind in enumerate(INNOVATION_TYPES, start=1)]})
    with pytest.raises(Exception, match=r"opportunities\[0\].why_now must be a string, got number"):
        validate_stage_output(5, {"opportunities": [{**card, "number": n, "innovation_type": kind, "why_now": 35}
                                                    for n, kind in enumerate(INNOVATION_TYPES, start=1)]})
