"""A run's LLM bookkeeping: the stage cache, the meter and its ceiling, and the usage on record.

The runner asks this module, for an engine that is a ``CostedEngine``: is this stage in the
cache (stages 1-3), keep it there, and what has the run cost so far. Usage is a whole snapshot
over every attempt (``RunUsage``): a resumed run adds to what its earlier attempts spent, and
the ceiling (LLM_MAX_COST_PER_RUN) counts them too. A failing cache is a miss, never a failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from config.log import get_logger
from persistence.records import STAGE_NAMES, RunUsage
from pipeline.document import Document
from pipeline.engine import CostedEngine, Engine
from pipeline.stage_cache import CachedStage, StageCache, cache_key
from pipeline.stages import STAGE_INPUTS
from pipeline.usage import RunMeter, Usage

log = get_logger(__name__)

CACHEABLE_STAGES = (1, 2, 3)  # they read the document only; 4 and 5 read the brand


@dataclass
class LlmRun:
    """One attempt's LLM state: what earlier attempts spent, this attempt's meter, the cache hits."""

    engine: CostedEngine
    cache: StageCache
    meter: RunMeter
    earlier: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)
    earlier_hits: tuple[int, ...] = ()
    hits: list[int] = field(default_factory=list)

    @classmethod
    def begin(cls, engine: Engine, cache: StageCache, ceiling_usd: float | None,
              recorded: RunUsage | None) -> LlmRun | None:
        """The attempt's bookkeeping (None for an engine without calls); meters the engine from now on."""
        if not isinstance(engine, CostedEngine):
            return None
        same = recorded is not None and recorded.engine == engine.name and recorded.stages is not None
        earlier = dict(recorded.stages or {}) if same and recorded else {}
        spent = Usage()
        for usage in earlier.values():
            spent = spent + Usage.from_dict(usage)
        meter = RunMeter(ceiling_usd, spent_before=spent)
        engine.begin_run(meter)
        return cls(engine, cache, meter, earlier, recorded.cached_stages if same and recorded else ())

    def snapshot(self) -> RunUsage:
        """Every attempt's usage so far, per stage, with the stages reused from the cache."""
        stages = {n: Usage.from_dict(u) for n, u in self.earlier.items()}
        for n, usage in self.meter.stages().items():
            stages[n] = stages.get(n, Usage()) + usage
        hits = tuple(sorted({*self.earlier_hits, *self.hits}))
        return RunUsage(self.engine.name, self.engine.model, {n: u.as_dict() for n, u in stages.items()}, hits)

    def outcome(self) -> dict[str, Any]:
        """RunOutcome's fields: this attempt's usage per stage and its cache hits."""
        return {"usage": dict(self.meter.stages()), "cache_hits": tuple(self.hits)}

    def _key(self, stage: int, document: Document, outputs: Mapping[int, Mapping[str, Any]]) -> str:
        inputs = {n: outputs[n] for n in STAGE_INPUTS[stage]}
        return cache_key(document.sha256, self.engine.cache_scope, stage, inputs)

    def from_cache(self, stage: int, document: Document,
                   outputs: Mapping[int, Mapping[str, Any]]) -> Mapping[str, Any] | None:
        """Stage ``stage``'s output from the stage cache, or None (a miss, or a cache that failed)."""
        if stage not in CACHEABLE_STAGES:
            return None
        try:
            entry = self.cache.get(self._key(stage, document, outputs))
        except Exception as exc:  # a cache is an optimisation: any failure of it is a miss
            log.warning("stage_cache_failed", stage=stage, operation="get", error=f"{type(exc).__name__}: {exc}")
            return None
        if entry is None:
            return None
        self.hits.append(stage)
        log.info("stage_cache_hit", stage=stage, stage_name=STAGE_NAMES[stage], model=entry.model,
                 saved_cost_usd=entry.usage.get("cost_usd"))
        return entry.output

    def to_cache(self, stage: int, document: Document, outputs: Mapping[int, Mapping[str, Any]]) -> None:
        """Keep a freshly computed stage 1-3 output for the next run on this document."""
        if stage not in CACHEABLE_STAGES:
            return
        entry = CachedStage(stage, outputs[stage], self.meter.stage(stage).as_dict(), self.engine.model)
        try:
            self.cache.put(self._key(stage, document, outputs), entry)
        except Exception as exc:  # a cache that cannot be written costs calls next time, never this run
            log.warning("stage_cache_failed", stage=stage, operation="put", error=f"{type(exc).__name__}: {exc}")


def written_by(engine: Engine, llm: LlmRun | None) -> RunUsage:
    """What run.json and the run row say wrote the run (and, with an LLM, what it cost so far)."""
    if llm is not None:
        return llm.snapshot()
    return RunUsage(engine.name, None, None)
