"""The RunPruner capability."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

FINISHED = ("COMPLETED", "FAILED", "CANCELLED")


class RunPruner(Protocol):
    """Deletes finished runs that ended before a cut-off."""

    name: str

    def prune(self, cutoff: datetime, *, dry_run: bool = False) -> list[str]:
        """Ids of the finished runs that ended before ``cutoff``, deleted unless ``dry_run``."""

    def close(self) -> None:
        """Release connections."""
