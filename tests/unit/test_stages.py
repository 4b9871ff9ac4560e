"""run_stage: the right engine call with the right earlier outputs, validated, errors wrapped."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from config.errors import InvalidInput, StageError
from pipeline.brands import BrandProfile
from pipeline.document import Document
from pipeline.offline import OfflineEngine
from pipeline.stage_schema import INNOVATION_TYPES, validate_stage_output
from pipeline.stages import STAGE_INPUTS, run_stage

BRAND = BrandProfile(
    brand_id="acme-foods", brand_name="Acme Foods", country="Canada", industry="Packaged food",
    positioning="A Canadian packaged food maker known for pantry staples, sauces and snacks.",
    product_portfolio=("pantry sauces", "spice blends", "snack bars"),
    target_customers=("busy parents", "students"),
    recent_innovations=("reduced-sodium sauces", "recyclable pouches", "recipe hub"),
    strategic_priorities=("reduce plastic packaging", "grow meal solutions", "premium spice blends"),
    brand_values=("honest ingredients", "value", "sustainability"),
)
DOCUMENT = Document(
    name="refills.txt", source="test", media_type="text/plain", original_chars=200,
    text=("Refill stations for cleaning products grew 35% in 2025 as shoppers cut plastic waste. "
          "Subscription coffee deliveries removed the friction of running out. "
          "Single-serve sachets of spice blends rose 22% while full jars were flat. "
          "Shoppers said refill stations made them feel less guilty about plastic."),
)
CANNED: dict[int, dict[str, Any]] = {
    1: {"summary": "Refills.", "core_mechanism": "Changed model",
        "inspirations": [{"title": "Refills", "description": "d", "mechanism_type": "CHANGED_MODEL",
                          "evidence": ["Refill stations for cleaning products grew 35% in 2025."]}]},
    2: {"signals": [{"id": "S1", "category": "c", "description": "d", "relevance": "high", "inspiration": "Refills"}]},
    3: {"insights": [{"id": "I1", "title": "t", "description": "d", "transferability": "high", "signal_ids": ["S1"]}]},
    4: {"brand_id": "acme-foods",
        "insights": [{"id": "B1", "title": "t", "description": "d", "brand_fit": "strong", "insight_ids": ["I1"]}]},
    5: {"opportunities": [{"number": n, "title": k, "innovation_type": k, "description": "d",
                           "actionability": ["a", "b", "c"], "follow_up_prompts": ["p", "q"]}
                          for n, k in enumerate(INNOVATION_TYPES, start=1)]},
}
METHODS = {1: "input_processing", 2: "signal_amplification", 3: "general_translation",
           4: "brand_contextualization", 5: "opportunity_generation"}


class FakeEngine:
    """Returns canned outputs (or raises) and records what each method was given."""

    name = "fake"

    def __init__(self, outputs=None, error: Exception | None = None):
        self.outputs = outputs or copy.deepcopy(CANNED)
        self.error = error
        self.calls: list[tuple[str, tuple]] = []

    def _answer(self, stage, *args):
        self.calls.append((METHODS[stage], args))
        if self.error is not None:
            raise self.error
        return self.outputs[stage]

    def input_processing(self, document):
        return self._answer(1, document)

    def signal_amplification(self, document, stage1):
        return self._answer(2, document, stage1)

    def general_translation(self, stage1, stage2):
        return self._answer(3, stage1, stage2)

    def brand_contextualization(self, stage3, brand):
        return self._answer(4, stage3, brand)

    def opportunity_generation(self, stage4, brand, document):
        return self._answer(5, stage4, brand, document)


EXPECTED_ARGS = {
    1: lambda prev: (DOCUMENT,),
    2: lambda prev: (DOCUMENT, prev[1]),
    3: lambda prev: (prev[1], prev[2]),
    4: lambda prev: (prev[3], BRAND),
    5: lambda prev: (prev[4], BRAND, DOCUMENT),
}


@pytest.mark.parametrize("stage", sorted(METHODS))
def test_each_stage_calls_its_engine_method_with_the_earlier_outputs_it_needs(stage):
    engine = FakeEngine()
    previous = {n: CANNED[n] for n in range(1, stage)}
    output = run_stage(stage, engine, document=DOCUMENT, brand=BRAND, previous=previous)
    assert output == CANNED[stage]
    assert engine.calls == [(METHODS[stage], EXPECTED_ARGS[stage](previous))]
    assert all(a is b for a, b in zip(engine.calls[0][1], EXPECTED_ARGS[stage](previous), strict=True))


MISSING = [(stage, needed) for stage, inputs in STAGE_INPUTS.items() for needed in inputs]


@pytest.mark.parametrize(("stage", "absent"), MISSING, ids=[f"stage{s}-without-{n}" for s, n in MISSING])
def test_a_missing_earlier_output_is_refused_before_the_engine_runs(stage, absent):
    engine = FakeEngine()
    previous = {n: CANNED[n] for n in range(1, stage) if n != absent}
    with pytest.raises(StageError) as caught:
        run_stage(stage, engine, document=DOCUMENT, brand=BRAND, previous=previous)
    assert caught.value.code == "STAGE_INPUT_MISSING"
    assert caught.value.stage == stage
    assert f"needs the output of stage {absent}" in str(caught.value)
    assert engine.calls == []


def test_an_invalid_engine_output_fails_the_stage_with_the_schema_message():
    outputs = copy.deepcopy(CANNED)
    outputs[5]["opportunities"][2]["actionability"].pop()
    with pytest.raises(StageError) as caught:
        run_stage(5, FakeEngine(outputs), document=DOCUMENT, brand=BRAND, previous=CANNED)
    assert caught.value.code == "STAGE_OUTPUT_INVALID"
    assert str(caught.value) == "stage 5: opportunities[2].actionability must hold exactly 3 items, got 2"


@pytest.mark.parametrize(("stage", "key", "message"), [
    (3, "signal_ids", "stage 3: insights[0].signal_ids[0] refers to unknown signal 'S404' (stage 2 has S1)"),
    (4, "insight_ids", "stage 4: insights[0].insight_ids[0] refers to unknown insight 'S404' (stage 3 has I1)"),
])
def test_ids_must_exist_in_the_previous_stage(stage, key, message):
    outputs = copy.deepcopy(CANNED)
    outputs[stage]["insights"][0][key] = ["S404"]
    with pytest.raises(StageError) as caught:
        run_stage(stage, FakeEngine(outputs), document=DOCUMENT, brand=BRAND, previous=CANNED)
    assert str(caught.value) == message


def test_stage4_must_name_the_runs_brand():
    outputs = copy.deepcopy(CANNED)
    outputs[4]["brand_id"] = "someone-else"
    with pytest.raises(StageError) as caught:
        run_stage(4, FakeEngine(outputs), document=DOCUMENT, brand=BRAND, previous=CANNED)
    assert caught.value.code == "STAGE_OUTPUT_INVALID"
    assert str(caught.value) == "stage 4: brand_id must be 'acme-foods' (the run's brand), got 'someone-else'"


def test_an_engine_crash_becomes_a_stage_error_that_keeps_its_cause():
    boom = KeyError("inspirations")
    with pytest.raises(StageError) as caught:
        run_stage(2, FakeEngine(error=boom), document=DOCUMENT, brand=BRAND, previous=CANNED)
    assert caught.value.code == "ENGINE_FAILED"
    assert caught.value.stage == 2
    assert str(caught.value) == "stage 2 (signal amplification): the fake engine failed: KeyError: 'inspirations'"
    assert caught.value.__cause__ is boom


@pytest.mark.parametrize("error", [StageError(3, "model refused", code="LLM_REFUSED"), InvalidInput("bad")])
def test_runner_errors_from_the_engine_pass_through_unchanged(error):
    with pytest.raises(type(error)) as caught:
        run_stage(3, FakeEngine(error=error), document=DOCUMENT, brand=BRAND, previous=CANNED)
    assert caught.value is error


@pytest.mark.parametrize("number", [0, 6, -1])
def test_there_are_only_five_stages(number):
    with pytest.raises(ValueError, match="stages are 1-5"):
        run_stage(number, FakeEngine(), document=DOCUMENT, brand=BRAND, previous=CANNED)


def test_the_offline_engine_runs_all_five_stages_in_sequence():
    previous: dict[int, dict] = {}
    for stage in sorted(METHODS):
        previous[stage] = run_stage(stage, OfflineEngine(), document=DOCUMENT, brand=BRAND, previous=previous)
        validate_stage_output(stage, previous[stage], previous.get(stage - 1))
        assert type(previous[stage]) is dict
    assert previous[4]["brand_id"] == "acme-foods"
    assert [c["innovation_type"] for c in previous[5]["opportunities"]] == list(INNOVATION_TYPES)
