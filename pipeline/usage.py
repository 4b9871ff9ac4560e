"""What LLM calls cost: one call's ``usage`` as a value, and a run's meter with its ceiling.

Every completion's ``usage`` (tokens, cached tokens, ``cost`` in USD) is recorded against its
stage. Before a call, the spend so far plus an estimate of the call's prompt is held against
LLM_MAX_COST_PER_RUN: a call that would exceed it is not made (``LLM_BUDGET_EXCEEDED``), and the
stages already finished are kept. Engine-neutral, so the runner imports it without the LLM stack.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from config.errors import StageError


@dataclass(frozen=True)
class Usage:
    """What calls cost, from OpenRouter's ``usage`` (cost in USD credits); adds up with ``+``."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.calls + other.calls, self.prompt_tokens + other.prompt_tokens,
                     self.completion_tokens + other.completion_tokens, self.cached_tokens + other.cached_tokens,
                     round(self.cost_usd + other.cost_usd, 10))

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of run.json and the status API."""
        return {"calls": self.calls, "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "cached_tokens": self.cached_tokens, "cost_usd": round(self.cost_usd, 8)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        """The inverse of :meth:`as_dict` (missing keys are zero)."""
        return cls(int(data.get("calls", 0)), int(data.get("prompt_tokens", 0)),
                   int(data.get("completion_tokens", 0)), int(data.get("cached_tokens", 0)),
                   float(data.get("cost_usd", 0.0)))

    @classmethod
    def of_call(cls, usage: Mapping[str, Any]) -> Usage:
        """One completion's usage block: tokens, ``prompt_tokens_details.cached_tokens`` and ``cost``."""
        details = usage.get("prompt_tokens_details")
        cached = details.get("cached_tokens") if isinstance(details, Mapping) else None
        cost = usage.get("cost")
        return cls(1, _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens")), _count(cached),
                   float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else 0.0)


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class RunMeter:
    """Per-stage usage of one run; thread-safe (a long document's sections are asked in parallel)."""

    def __init__(self, ceiling_usd: float | None = None, *, spent_before: Usage | None = None) -> None:
        self.ceiling_usd = ceiling_usd
        self.before = spent_before or Usage()
        self._stages: dict[int, Usage] = {}
        self._lock = threading.Lock()

    def check(self, stage: int, estimate_usd: float) -> None:
        """Raise LLM_BUDGET_EXCEEDED when the call about to be made would pass the ceiling."""
        if self.ceiling_usd is None:
            return
        spent = self.total().cost_usd
        if spent + estimate_usd > self.ceiling_usd:
            raise StageError(
                stage, f"stage {stage}: this run has cost ${spent:.4f} and its next call (about ${estimate_usd:.4f}) "
                       f"would pass LLM_MAX_COST_PER_RUN=${self.ceiling_usd:g}; the finished stages are kept: raise "
                       "the ceiling (or unset it) and retry the run, or choose a cheaper LLM_MODEL",
                code="LLM_BUDGET_EXCEEDED")

    def record(self, stage: int, usage: Usage) -> None:
        """Add one call's usage to ``stage``."""
        with self._lock:
            self._stages[stage] = self._stages.get(stage, Usage()) + usage

    def stage(self, stage: int) -> Usage:
        """What ``stage`` cost in this attempt."""
        with self._lock:
            return self._stages.get(stage, Usage())

    def stages(self) -> Mapping[int, Usage]:
        """Usage by stage, this attempt."""
        with self._lock:
            return dict(self._stages)

    def total(self) -> Usage:
        """Earlier attempts plus this one."""
        with self._lock:
            total = self.before
            for usage in self._stages.values():
                total = total + usage
            return total
