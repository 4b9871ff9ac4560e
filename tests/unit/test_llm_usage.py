"""Usage values: read from OpenRouter's usage block, summed, held to a ceiling, recorded as a command."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from config.errors import StageError
from persistence.commands import RecordUsage, command_from_json
from persistence.records import RunRequest, RunState, RunStatus, RunUsage
from persistence.spool.view import apply_to_state
from pipeline.usage import RunMeter, Usage


def test_a_usage_block_is_read_with_cost_and_cached_tokens():
    block = {"prompt_tokens": 194, "completion_tokens": 2, "total_tokens": 196, "cost": 0.95,
             "prompt_tokens_details": {"cached_tokens": 100}, "completion_tokens_details": {"reasoning_tokens": 0}}
    assert Usage.of_call(block) == Usage(1, 194, 2, 100, 0.95)
    assert Usage.of_call({"cost": True, "prompt_tokens": -3}) == Usage(1, 0, 0, 0, 0.0)  # nonsense is zero


def test_the_meter_sums_per_stage_and_refuses_a_call_past_the_ceiling():
    meter = RunMeter(0.10, spent_before=Usage(2, 10, 10, 0, 0.04))
    meter.record(1, Usage(1, 5, 5, 0, 0.03))
    meter.record(1, Usage(1, 5, 5, 0, 0.01))
    assert meter.stage(1) == Usage(2, 10, 10, 0, 0.04) and meter.total().cost_usd == pytest.approx(0.08)
    meter.check(2, 0.01)
    with pytest.raises(StageError) as caught:
        meter.check(2, 0.03)
    assert caught.value.code == "LLM_BUDGET_EXCEEDED" and caught.value.stage == 2


def test_run_usage_totals_round_trip_through_a_command_and_fold_into_the_state():
    usage = RunUsage("openrouter", "google/gemini-2.5-flash",
                     {1: Usage(1, 100, 20, 0, 0.001).as_dict(), 4: Usage(2, 50, 10, 5, 0.002).as_dict()}, (1,))
    assert usage.total() == {"calls": 3, "prompt_tokens": 150, "completion_tokens": 30, "cached_tokens": 5,
                             "cost_usd": 0.003}
    command = RecordUsage("r1", 2, usage)
    assert command_from_json(command.to_json()) == command
    at = datetime.now(UTC)
    state = RunState(RunRequest("r1", "acme", "u", "doc.md"), RunStatus.PROCESSING, 2, None, {}, None, at, at)
    assert apply_to_state(state, command, at).usage == usage
    offline = RunUsage("offline")
    assert offline.total() is None and offline.as_dict() == {"engine": "offline", "model": None, "usage": None,
                                                              "cache": None}
    assert RunUsage.from_dict(offline.as_dict()) == offline
