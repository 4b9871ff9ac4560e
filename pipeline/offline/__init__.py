"""The offline engine: deterministic, extractive, no network (see :class:`OfflineEngine`)."""

from pipeline.offline.engine import OfflineEngine

__all__ = ["OfflineEngine"]
