"""Stage outputs are held to contract §8, and every violation is named by its JSON path."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from config.errors import StageError
from pipeline.stage_schema import INNOVATION_TYPES, MECHANISM_TYPES, StageOutputInvalid, validate_stage_output


def _card(number: int, kind: str) -> dict:
    return {"number": number, "title": f"{kind} idea", "innovation_type": kind, "description": "Why it matters.",
            "actionability": ["Prototype it.", "Test it.", "Pilot it."],
            "follow_up_prompts": ["Who buys it?", "What does it cost?"]}


VALID: dict[int, dict[str, Any]] = {
    1: {"summary": "A report on refills.", "core_mechanism": "Changed model",
        "inspirations": [{"title": "Refill stations", "description": "Shoppers refill.",
                          "mechanism_type": "CHANGED_MODEL", "evidence": ["Refill stations grew 35%."]}]},
    2: {"signals": [{"id": "S1", "category": "Sustainability", "description": "Less plastic.",
                     "relevance": "high", "inspiration": "Refill stations"},
                    {"id": "S2", "category": "Market growth", "description": "Sales up.",
                     "relevance": 0.4, "inspiration": "Refill stations"}]},
    3: {"insights": [{"id": "I1", "title": "Sell refills", "description": "Anywhere.",
                      "transferability": "high", "signal_ids": ["S1", "S2"]}]},
    4: {"brand_id": "acme-foods",
        "insights": [{"id": "B1", "title": "Acme refills", "description": "Sauces in refills.",
                      "brand_fit": 0.8, "insight_ids": ["I1"]}]},
    5: {"opportunities": [_card(n, kind) for n, kind in enumerate(INNOVATION_TYPES, start=1)]},
}


def _broken(stage: int, change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    output = copy.deepcopy(VALID[stage])
    change(output)
    return output


def _accepts(stage: int, output: object, previous: Mapping[str, Any] | None = None) -> bool:
    """True once ``validate_stage_output`` returns; a problem it finds propagates as its StageError."""
    validate_stage_output(stage, output, previous)
    return True


@pytest.mark.parametrize("stage", sorted(VALID))
def test_contract_shaped_outputs_pass(stage):
    assert _accepts(stage, VALID[stage], VALID.get(stage - 1))  # no problem raised


@pytest.mark.parametrize("stage", sorted(VALID))
def test_extra_keys_are_allowed(stage):
    assert _accepts(stage, {**VALID[stage], "engine_notes": ["carried forward"]})


CASES = [
    (1, lambda o: o.pop("summary"), "stage 1: summary is missing"),
    (1, lambda o: o.update(summary="  "), "stage 1: summary must not be empty"),
    (1, lambda o: o.update(core_mechanism=3), "stage 1: core_mechanism must be a string, got number"),
    (1, lambda o: o.update(inspirations=[]), "stage 1: inspirations must hold 1-3 items, got 0"),
    (1, lambda o: o.update(inspirations=o["inspirations"] * 4), "stage 1: inspirations must hold 1-3 items, got 4"),
    (1, lambda o: o["inspirations"][0].update(mechanism_type="DISRUPTED"),
     "stage 1: inspirations[0].mechanism_type must be one of " + ", ".join(MECHANISM_TYPES) + ", got 'DISRUPTED'"),
    (1, lambda o: o["inspirations"][0].update(evidence=[]),
     "stage 1: inspirations[0].evidence must hold at least 1 item, got 0"),
    (1, lambda o: o["inspirations"][0].update(evidence=["quote", 7]),
     "stage 1: inspirations[0].evidence[1] must be a string, got number"),
    (1, lambda o: o["inspirations"][0].update(evidence=("a quote",)),
     "stage 1: inspirations[0].evidence must be an array, got tuple"),
    (1, lambda o: o["inspirations"].__setitem__(0, "just a title"),
     "stage 1: inspirations[0] must be an object, got string"),
    (2, lambda o: o.update(signals=[]), "stage 2: signals must hold at least 1 item, got 0"),
    (2, lambda o: o["signals"][1].update(id="S1"), "stage 2: signals[1].id 'S1' repeats signals[0].id"),
    (2, lambda o: o["signals"][0].update(relevance=True),
     "stage 2: signals[0].relevance must be a string or a number, got boolean"),
    (2, lambda o: o["signals"][0].pop("inspiration"), "stage 2: signals[0].inspiration is missing"),
    (2, lambda o: o["signals"][0].update(strength=float("nan")),
     "stage 2: signals[0].strength must be a finite number, got nan"),
    (2, lambda o: o["signals"][0].update(tags={"a"}), "stage 2: signals[0].tags is a set, not a JSON value"),
    (3, lambda o: o["insights"][0].update(signal_ids=[]),
     "stage 3: insights[0].signal_ids must hold at least 1 item, got 0"),
    (3, lambda o: o["insights"][0].update(signal_ids=["S1", "S9"]),
     "stage 3: insights[0].signal_ids[1] refers to unknown signal 'S9' (stage 2 has S1, S2)"),
    (4, lambda o: o.pop("brand_id"), "stage 4: brand_id is missing"),
    (4, lambda o: o["insights"][0].update(insight_ids=["I7"]),
     "stage 4: insights[0].insight_ids[0] refers to unknown insight 'I7' (stage 3 has I1)"),
    (4, lambda o: o["insights"][0].pop("brand_fit"), "stage 4: insights[0].brand_fit is missing"),
    (5, lambda o: o["opportunities"][2]["actionability"].pop(),
     "stage 5: opportunities[2].actionability must hold exactly 3 items, got 2"),
    (5, lambda o: o["opportunities"][0]["follow_up_prompts"].append("A third?"),
     "stage 5: opportunities[0].follow_up_prompts must hold exactly 2 items, got 3"),
    (5, lambda o: o["opportunities"].pop(), "stage 5: opportunities must hold exactly 5 items, got 4"),
    (5, lambda o: o["opportunities"][1].update(number=3),
     "stage 5: opportunities[1].number must be 2 (cards are numbered 1-5 in order), got 3"),
    (5, lambda o: o["opportunities"][1].update(number="2"),
     "stage 5: opportunities[1].number must be an integer, got string"),
    (5, lambda o: o["opportunities"][3].update(innovation_type="Premium"),
     "stage 5: opportunities must cover every innovation type; missing Format "
     "(got Better-For-You, Premium, Convenience, Premium, Occasion)"),
    (5, lambda o: o["opportunities"][0].update(innovation_type="better for you"),
     "stage 5: opportunities[0].innovation_type must be one of Better-For-You, Premium, Convenience, Format, "
     "Occasion, got 'better for you'"),
]


@pytest.mark.parametrize(("stage", "change", "message"), CASES, ids=[c[2] for c in CASES])
def test_violations_are_named_by_path_and_problem(stage, change, message):
    with pytest.raises(StageError) as caught:
        validate_stage_output(stage, _broken(stage, change), VALID.get(stage - 1))
    assert str(caught.value) == message
    assert caught.value.code == "STAGE_OUTPUT_INVALID"
    assert caught.value.stage == stage


@pytest.mark.parametrize("stage", sorted(VALID))
def test_an_output_that_is_not_an_object_is_refused(stage):
    with pytest.raises(StageError, match=rf"^stage {stage}: output must be an object, got array$"):
        validate_stage_output(stage, [VALID[stage]])


def test_every_problem_is_listed_in_one_message():
    def break_twice(output):
        output["opportunities"][0]["actionability"] = []
        output["opportunities"][4].pop("title")

    with pytest.raises(StageOutputInvalid) as caught:
        validate_stage_output(5, _broken(5, break_twice))
    assert caught.value.problems == (
        "opportunities[0].actionability must hold exactly 3 items, got 0",
        "opportunities[4].title is missing",
    )
    assert str(caught.value) == "stage 5: " + "; ".join(caught.value.problems)


def test_long_problem_lists_are_cut_with_a_count():
    output = {"signals": [{"id": f"S{i}"} for i in range(5)]}
    with pytest.raises(StageOutputInvalid) as caught:
        validate_stage_output(2, output)
    assert len(caught.value.problems) == 20
    assert str(caught.value).endswith("; and 10 more")


@pytest.mark.parametrize(("stage", "key"), [(3, "signal_ids"), (4, "insight_ids")])
def test_ids_are_only_cross_checked_when_the_previous_output_is_given(stage, key):
    output = copy.deepcopy(VALID[stage])
    output["insights"][0][key] = ["X404"]
    validate_stage_output(stage, output)
    with pytest.raises(StageError, match="refers to unknown"):
        validate_stage_output(stage, output, VALID[stage - 1])


def test_an_unknown_stage_number_is_a_programming_error():
    with pytest.raises(ValueError, match="no stage 6"):
        validate_stage_output(6, {})
