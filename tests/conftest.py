"""Shared test setup: every test gets its own OUTPUT_DIR and never touches the repository's."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def output_dir(tmp_path: Path) -> Path:
    """A fresh, empty OUTPUT_DIR."""
    path = tmp_path / "outputs"
    path.mkdir()
    return path
