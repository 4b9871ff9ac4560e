"""What a run's calls cost, per stage, and the ceiling LLM_MAX_COST_PER_RUN puts on it.

Every completion's ``usage`` (tokens, cached tokens, ``cost``) is recorded against its stage.
Before a call, the spend so far plus an estimate of the call's prompt is held against the
ceiling: a call that would exceed it is not made (``LLM_BUDGET_EXCEEDED``), and the stages
already finished are kept. A resumed run starts from what its earlier attempts spent.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from config.errors import StageError
from pipeline.openrouter.responses import Usage


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
