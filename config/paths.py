"""Safe names and paths: a run id or brand id can never reach outside its folder."""

from __future__ import annotations

import re
from pathlib import Path

from config.errors import InvalidInput

RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
BRAND_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is 1-64 of ``[A-Za-z0-9_-]``, else raise InvalidInput."""
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
        raise InvalidInput(
            f"run id {run_id!r} is not valid: use 1-64 characters from A-Z, a-z, 0-9, '_' and '-'",
            code="INVALID_RUN_ID",
        )
    return run_id


def check_brand_id(brand_id: str) -> str:
    """Return ``brand_id`` if it is a lowercase slug like ``mccormick-usa``, else raise InvalidInput."""
    if not isinstance(brand_id, str) or not BRAND_ID_PATTERN.fullmatch(brand_id):
        raise InvalidInput(
            f"brand id {brand_id!r} is not valid: use lowercase letters, digits and '-' "
            "(for example 'mccormick-usa')",
            code="INVALID_BRAND_ID",
        )
    return brand_id


def inside(root: Path, *parts: str) -> Path:
    """Join ``parts`` under ``root`` and refuse any result that resolves outside ``root``."""
    base = root.resolve()
    candidate = base.joinpath(*parts).resolve()
    if candidate != base and base not in candidate.parents:
        raise InvalidInput(f"path {'/'.join(parts)!r} escapes {base}", code="PATH_ESCAPE")
    return candidate
