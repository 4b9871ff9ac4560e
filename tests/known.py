"""``known(state)``: a test's assertion that a read found the run, typed (RunState, not Optional)."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def known(value: T | None) -> T:
    """``value``, asserting that it is there."""
    assert value is not None, "expected a value, found None"
    return value
