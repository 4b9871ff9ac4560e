"""The stage cache port: stages 1-3 depend only on the document, so their LLM outputs are reused.

A key is the SHA-256 of (document SHA-256, the engine's cache scope: model, fallbacks, prompt
version and language, the stage, and the SHA-256 of the stage's inputs). Keying each stage on
its inputs keeps a chain consistent: a cached stage 2 is reused only after the very stage 1 it
was computed from. A second brand on the same report pays for stages 4 and 5 only.
Adapters (``persistence.stage_cache_files``, ``persistence.stage_cache_postgres``) implement
:class:`StageCache`; a cache that fails is logged and bypassed, never fails a run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from config.log import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class CachedStage:
    """A stored stage output and what it cost when it was computed."""

    stage: int
    output: Mapping[str, Any]
    usage: Mapping[str, Any] = field(default_factory=dict)
    model: str = ""


class StageCache(Protocol):
    """Where cached stage outputs are kept (a table, files, or both)."""

    def get(self, key: str) -> CachedStage | None:
        """The entry for ``key``, or None."""

    def put(self, key: str, entry: CachedStage) -> None:
        """Keep ``entry`` under ``key`` (the first entry for a key wins; repeating is harmless)."""


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def cache_key(document_sha256: str, scope: str, stage: int, inputs: Mapping[int, Mapping[str, Any]]) -> str:
    """The key of ``stage`` for this document, engine scope and exact inputs."""
    return _digest({"document": document_sha256, "scope": scope, "stage": stage,
                    "inputs": {str(n): _digest(out) for n, out in sorted(inputs.items())}})


class NoCache:
    """A cache that holds nothing (``--no-cache``, LLM_STAGE_CACHE=false, or the offline engine)."""

    def get(self, key: str) -> CachedStage | None:
        """Always a miss."""
        return None

    def put(self, key: str, entry: CachedStage) -> None:
        """Keep nothing."""


class TieredCache:
    """DUAL_WRITE: read the first tier that answers, write both; one tier failing never stops the other."""

    def __init__(self, *tiers: StageCache) -> None:
        self.tiers = tiers

    def get(self, key: str) -> CachedStage | None:
        """The first tier's entry; a failing tier is logged and skipped."""
        for tier in self.tiers:
            try:
                entry = tier.get(key)
            except Exception as exc:  # a cache is an optimisation: the next tier may still answer
                log.warning("stage_cache_tier_failed", tier=type(tier).__name__, operation="get",
                            error=f"{type(exc).__name__}: {exc}")
                continue
            if entry is not None:
                return entry
        return None

    def put(self, key: str, entry: CachedStage) -> None:
        """Write every tier; failures are logged."""
        for tier in self.tiers:
            try:
                tier.put(key, entry)
            except Exception as exc:
                log.warning("stage_cache_tier_failed", tier=type(tier).__name__, operation="put",
                            error=f"{type(exc).__name__}: {exc}")
