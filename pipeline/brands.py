"""Brand profiles: ``DATA_DIR/brand-profiles/<brand_id>.yaml`` loaded into frozen values.

A profile is checked completely before use, and every problem in a file is reported in one
``InvalidInput`` (code ``BRAND_PROFILE_INVALID``) so an operator fixes the file in one pass.
"""

from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from config.errors import InvalidInput, NotFound
from config.paths import check_brand_id, inside

TEXT_FIELDS = ("brand_name", "country", "industry", "positioning")
# List field -> the fewest items it may hold (CONTRACT section 9).
LIST_FIELDS = {
    "product_portfolio": 3,
    "target_customers": 2,
    "recent_innovations": 3,
    "strategic_priorities": 3,
    "brand_values": 3,
}
POSITIONING_CHARS = (50, 500)


@dataclass(frozen=True)
class BrandProfile:
    """One validated brand profile; list fields are tuples so the value stays immutable."""

    brand_id: str
    brand_name: str
    country: str
    industry: str
    positioning: str
    product_portfolio: tuple[str, ...]
    target_customers: tuple[str, ...]
    recent_innovations: tuple[str, ...]
    strategic_priorities: tuple[str, ...]
    brand_values: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        """The profile as JSON-ready data (tuples become lists)."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in asdict(self).items()}


def list_brand_ids(brands_dir: Path) -> list[str]:
    """Sorted ids of the profiles in ``brands_dir`` (the stems of its ``*.yaml`` files)."""
    try:
        # One stat per call instead of a glob: every webhook checks its company_id here. A file
        # added, removed or renamed changes the folder's mtime, which lists the folder again.
        version = brands_dir.stat().st_mtime_ns
    except (FileNotFoundError, NotADirectoryError):
        return []
    return list(_brand_ids(brands_dir, version))


BRAND_RECHECK_S = 1.0  # how old a listing may be when it says yes (is_brand_id)
_recent: dict[Path, tuple[float, frozenset[str]]] = {}  # brands_dir -> (listed at, ids)


def is_brand_id(brands_dir: Path, brand_id: str) -> bool:
    """Whether ``brand_id`` has a profile in ``brands_dir``; a yes may be up to a second old.

    The webhook's check, for every webhook. A known id is taken from this process's last
    listing while it is under BRAND_RECHECK_S old (no system call: each one is a turn of the GIL
    among the web worker's threads); an unknown id is looked up afresh before it is refused,
    so a profile added a moment ago is found at once. A profile removed within the second is
    still accepted; its run then fails with UNKNOWN_BRAND, as for a profile removed after the
    webhook.
    """
    listed = _recent.get(brands_dir)
    if listed is not None and brand_id in listed[1] and time.monotonic() - listed[0] < BRAND_RECHECK_S:
        return True
    checked_at = time.monotonic()
    ids = list_brand_ids(brands_dir)
    _recent[brands_dir] = (checked_at, frozenset(ids))
    return brand_id in ids


@functools.lru_cache(maxsize=8)
def _brand_ids(brands_dir: Path, mtime_ns: int) -> tuple[str, ...]:
    return tuple(sorted(path.stem for path in brands_dir.glob("*.yaml") if path.is_file()))


def load_brand(brands_dir: Path, brand_id: str) -> BrandProfile:
    """Load and validate one profile; an unknown id raises NotFound listing the valid ids."""
    check_brand_id(brand_id)  # before touching the disk: refuses '../x' and other non-slugs
    path = inside(brands_dir, f"{brand_id}.yaml")
    if not path.is_file():
        raise NotFound(
            f"unknown brand {brand_id!r}: valid brand ids are {_describe_ids(brands_dir)}",
            code="UNKNOWN_BRAND",
        )
    return _load_cached(path, path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _load_cached(path: Path, mtime_ns: int) -> BrandProfile:
    """Parse a profile once per version of its file: a run process forked from the dispatcher
    inherits profiles already parsed, and an edited file (new mtime) is read again."""
    return validate_profile(path, _read_yaml(path))


def load_all_brands(brands_dir: Path) -> list[BrandProfile]:
    """Load and validate every profile in ``brands_dir``, reporting all bad files at once."""
    profiles, failures = [], []
    for brand_id in list_brand_ids(brands_dir):
        path = brands_dir / f"{brand_id}.yaml"
        try:
            profiles.append(_load_cached(path, path.stat().st_mtime_ns))
        except InvalidInput as exc:
            failures.append(exc)  # keep going: the operator wants every broken file named
    if failures:
        message = "\n".join(failure.message for failure in failures)
        raise InvalidInput(message, code="BRAND_PROFILE_INVALID") from failures[0]
    return profiles


def validate_profile(path: Path, raw: object) -> BrandProfile:
    """Check parsed YAML ``raw`` from ``path`` against CONTRACT section 9 and build the profile."""
    problems: list[str] = []
    try:
        brand_id = check_brand_id(path.stem)
    except InvalidInput as exc:
        brand_id = path.stem
        problems.append(f"file name: {exc.message}")
    if not isinstance(raw, dict):
        problems.append(f"top level: wrong type: expected a mapping of fields, got "
                        f"{_type_name(raw)}")
        raise _invalid(path, problems)

    values: dict[str, object] = {}
    for field in TEXT_FIELDS:
        values[field] = _check_text(field, raw, problems)
    for field, fewest in LIST_FIELDS.items():
        values[field] = _check_list(field, fewest, raw, problems)
    if problems:
        raise _invalid(path, problems)
    return BrandProfile(brand_id=brand_id, **values)  # type: ignore[arg-type]


def _check_text(field: str, raw: dict, problems: list[str]) -> str:
    """Validate one text field, appending any problem; return the stripped text."""
    if field not in raw or raw[field] is None:
        problems.append(f"{field}: missing (expected text)")
        return ""
    value = raw[field]
    if not isinstance(value, str):
        problems.append(f"{field}: wrong type: expected text, got {_type_name(value)}")
        return ""
    value = value.strip()
    if not value:
        problems.append(f"{field}: empty string")
    elif field == "positioning":
        low, high = POSITIONING_CHARS
        if len(value) < low:
            problems.append(f"{field}: too short: {len(value)} characters, needs {low}-{high}")
        elif len(value) > high:
            problems.append(f"{field}: too long: {len(value)} characters, needs {low}-{high}")
    return value


def _check_list(field: str, fewest: int, raw: dict, problems: list[str]) -> tuple[str, ...]:
    """Validate one list-of-text field, appending any problem; return its stripped items."""
    if field not in raw or raw[field] is None:
        problems.append(f"{field}: missing (expected a list of at least {fewest} items)")
        return ()
    value = raw[field]
    if not isinstance(value, list):
        problems.append(f"{field}: wrong type: expected a list of text, got {_type_name(value)}")
        return ()
    if len(value) < fewest:
        problems.append(f"{field}: too few items: {len(value)}, needs at least {fewest}")
    items = []
    for number, item in enumerate(value, start=1):
        if not isinstance(item, str):
            problems.append(f"{field}: item {number}: wrong type: expected text, got "
                            f"{_type_name(item)}")
        elif not item.strip():
            problems.append(f"{field}: item {number}: empty string")
        else:
            items.append(item.strip())
    return tuple(items)


def _read_yaml(path: Path) -> object:
    """Parse ``path`` as YAML; unreadable or malformed files become InvalidInput."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            f"brand profile {path} cannot be read: {exc}; fix the file's permissions or save "
            "it as UTF-8",
            code="BRAND_PROFILE_INVALID",
        ) from exc
    try:
        return yaml.safe_load(text)  # safe_load: a profile must never construct objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidInput(f"brand profile {path} is not valid YAML{where}: {problem}",
                           code="BRAND_PROFILE_INVALID") from exc


def _invalid(path: Path, problems: list[str]) -> InvalidInput:
    """One error naming the file and listing every problem found in it."""
    lines = "\n".join(f"  - {problem}" for problem in problems)
    return InvalidInput(f"brand profile {path} is invalid ({len(problems)} problem(s)):\n{lines}",
                        code="BRAND_PROFILE_INVALID")


def _describe_ids(brands_dir: Path) -> str:
    """The valid ids as a readable list, or why there are none."""
    ids = list_brand_ids(brands_dir)
    return ", ".join(ids) if ids else f"(none: no *.yaml profiles in {brands_dir})"


def _type_name(value: object) -> str:
    """A YAML-flavoured name for the type of ``value``, for error messages."""
    names = {dict: "a mapping", list: "a list", str: "text", bool: "a boolean",
             int: "a number", float: "a number", type(None): "nothing"}
    return names.get(type(value), type(value).__name__)
