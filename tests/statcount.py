"""Count the ``os.stat`` calls a block makes: each is a system call, a turn of the GIL in a web worker."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest


@contextmanager
def stats_looked_at(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Path]]:
    """Within the block, every path ``os.stat`` is called on is appended to the list it yields."""
    looked: list[Path] = []
    real_stat = os.stat

    def counting_stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        looked.append(Path(path))
        return real_stat(path, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(os, "stat", counting_stat)
        yield looked
