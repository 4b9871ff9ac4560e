"""The shapes of the five stage outputs (contract §8), checked exactly, with precise messages.

Every engine's output passes through :func:`validate_stage_output` before it is stored, so an
LLM's reply is held to the same contract as the offline engine. Problems name the JSON path:
``stage 5: opportunities[2].actionability must hold exactly 3 items, got 2``. Keys beyond the
contract are allowed (engines may carry extra context forward); missing or mistyped ones are not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from config.errors import StageError
from pipeline.vocabulary import INNOVATION_TYPES, MECHANISM_TYPES

_MAX_LISTED = 10  # problems spelled out in one message; the rest are counted
_DEFINED_IN = {"signal": 2, "insight": 3}  # the stage whose output defines each kind of id


class StageOutputInvalid(StageError):
    """A stage output breaks contract §8; ``problems`` lists every violation found."""

    code = "STAGE_OUTPUT_INVALID"

    def __init__(self, stage: int, problems: list[str]) -> None:
        self.problems = tuple(problems)
        shown = "; ".join(problems[:_MAX_LISTED])
        more = f"; and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
        super().__init__(stage, f"stage {stage}: {shown}{more}", code="STAGE_OUTPUT_INVALID")


def _kind(value: object) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


class _Checker:
    """Collects problems while walking one output."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, problem: str) -> None:
        """Record one problem at ``path``."""
        self.problems.append(f"{path} {problem}")

    def obj(self, value: object, path: str) -> Mapping[str, Any] | None:
        """``value`` as an object, or None after recording why not."""
        if isinstance(value, Mapping):
            return value
        self.fail(path, f"must be an object, got {_kind(value)}")
        return None

    def text(self, parent: Mapping[str, Any], key: str, path: str) -> str | None:
        """A required non-empty string field."""
        where = f"{path}.{key}" if path else key
        if key not in parent:
            self.fail(where, "is missing")
            return None
        value = parent[key]
        if not isinstance(value, str):
            self.fail(where, f"must be a string, got {_kind(value)}")
            return None
        if not value.strip():
            self.fail(where, "must not be empty")
            return None
        return value

    def text_or_number(self, parent: Mapping[str, Any], key: str, path: str) -> None:
        """A required field that may be a label ("high: ...") or a score."""
        where = f"{path}.{key}"
        value = parent.get(key)
        if key not in parent:
            self.fail(where, "is missing")
        elif isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.fail(where, f"must be a string or a number, got {_kind(value)}")
        elif isinstance(value, str) and not value.strip():
            self.fail(where, "must not be empty")

    def array(self, parent: Mapping[str, Any], key: str, path: str, *, low: int, high: int | None) -> list | None:
        """A required array whose length lies in [low, high] (high None: no upper bound)."""
        where = f"{path}.{key}" if path else key
        if key not in parent:
            self.fail(where, "is missing")
            return None
        value = parent[key]
        if not isinstance(value, list):
            self.fail(where, f"must be an array, got {_kind(value)}")
            return None
        n = len(value)
        if n < low or (high is not None and n > high):
            bound = f"exactly {low}" if high == low else f"{low}-{high}" if high is not None else f"at least {low}"
            plural = "" if bound.endswith(" 1") else "s"
            self.fail(where, f"must hold {bound} item{plural}, got {n}")
        return list(value)

    def strings(self, items: list, path: str) -> list[str]:
        """Every item must be a non-empty string; returns the good ones."""
        good = []
        for i, item in enumerate(items):
            if not isinstance(item, str):
                self.fail(f"{path}[{i}]", f"must be a string, got {_kind(item)}")
            elif not item.strip():
                self.fail(f"{path}[{i}]", "must not be empty")
            else:
                good.append(item)
        return good

    def ids(self, items: list[Mapping[str, Any]], base: str) -> list[str]:
        """Each item's ``id``: a required, unique non-empty string."""
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            value = self.text(item, "id", f"{base}[{i}]")
            if value is None:
                continue
            if value in seen:
                self.fail(f"{base}[{i}].id", f"{value!r} repeats {base}[{seen[value]}].id")
            else:
                seen[value] = i
        return list(seen)

    def refs(self, item: Mapping[str, Any], key: str, path: str, known: list[str] | None, what: str) -> None:
        """A non-empty array of ids, each (when ``known`` is given) naming an existing item."""
        values = self.array(item, key, path, low=1, high=None)
        for j, ref in enumerate(values or []):
            where = f"{path}.{key}[{j}]"
            if not isinstance(ref, str):
                self.fail(where, f"must be a string, got {_kind(ref)}")
            elif not ref.strip():
                self.fail(where, "must not be empty")
            elif known is not None and ref not in known:
                listed = ", ".join(known) if known else "none"
                self.fail(where, f"refers to unknown {what} {ref!r} (stage {_DEFINED_IN[what]} has {listed})")

    def json_values(self, value: object, path: str, depth: int = 0) -> None:
        """Everything must survive a JSON round trip unchanged: no tuples, sets, NaN or odd keys."""
        if depth > 32:
            self.fail(path or "output", "is nested too deeply")
        elif isinstance(value, Mapping):
            for key, inner in value.items():
                if not isinstance(key, str):
                    self.fail(path or "output", f"has a non-string key {key!r}")
                    continue
                self.json_values(inner, f"{path}.{key}" if path else key, depth + 1)
        elif isinstance(value, list):
            for i, inner in enumerate(value):
                self.json_values(inner, f"{path}[{i}]", depth + 1)
        elif isinstance(value, float) and not math.isfinite(value):
            self.fail(path, f"must be a finite number, got {value!r}")
        elif value is not None and not isinstance(value, (str, int, float, bool)):
            self.fail(path, f"is a {type(value).__name__}, not a JSON value")


def _stage1(c: _Checker, out: Mapping[str, Any], previous: Mapping[str, Any] | None) -> None:
    """Summary, core mechanism and 1-3 inspirations with evidence quotes."""
    c.text(out, "summary", "")
    c.text(out, "core_mechanism", "")
    for i, item in enumerate(c.array(out, "inspirations", "", low=1, high=3) or []):
        path = f"inspirations[{i}]"
        insp = c.obj(item, path)
        if insp is None:
            continue
        c.text(insp, "title", path)
        c.text(insp, "description", path)
        mechanism = c.text(insp, "mechanism_type", path)
        if mechanism is not None and mechanism not in MECHANISM_TYPES:
            c.fail(f"{path}.mechanism_type", f"must be one of {', '.join(MECHANISM_TYPES)}, got {mechanism!r}")
        evidence = c.array(insp, "evidence", path, low=1, high=None)
        if evidence is not None:
            c.strings(evidence, f"{path}.evidence")


def _items(c: _Checker, out: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    """The objects of a required non-empty array, each checked to be an object."""
    good = []
    for i, item in enumerate(c.array(out, key, "", low=1, high=None) or []):
        checked = c.obj(item, f"{key}[{i}]")
        if checked is not None:
            good.append(checked)
    return good


def _known(previous: Mapping[str, Any] | None, key: str) -> list[str] | None:
    """The ids defined by the previous stage's output, or None when it was not given."""
    if previous is None:
        return None
    items = previous.get(key) if isinstance(previous, Mapping) else None
    if not isinstance(items, list):
        return []
    return [str(item["id"]) for item in items if isinstance(item, Mapping) and "id" in item]


def _stage2(c: _Checker, out: Mapping[str, Any], previous: Mapping[str, Any] | None) -> None:
    """Signals, each tied to an inspiration."""
    signals = _items(c, out, "signals")
    c.ids(signals, "signals")
    for i, signal in enumerate(signals):
        path = f"signals[{i}]"
        c.text(signal, "category", path)
        c.text(signal, "description", path)
        c.text_or_number(signal, "relevance", path)
        c.text_or_number(signal, "inspiration", path)


def _insights(c: _Checker, out: Mapping[str, Any], previous: Mapping[str, Any] | None,
              score_key: str, refs_key: str, what: str) -> None:
    """Insights with a title, description, a score or label, and ids cited from the previous stage."""
    insights = _items(c, out, "insights")
    c.ids(insights, "insights")
    known = _known(previous, f"{what}s")
    for i, insight in enumerate(insights):
        path = f"insights[{i}]"
        c.text(insight, "title", path)
        c.text(insight, "description", path)
        c.text_or_number(insight, score_key, path)
        c.refs(insight, refs_key, path, known, what)


def _stage3(c: _Checker, out: Mapping[str, Any], previous: Mapping[str, Any] | None) -> None:
    """Brand-neutral insights citing stage 2 signals."""
    _insights(c, out, previous, "transferability", "signal_ids", "signal")


def _stage4(c: _Checker, out: Mapping[str, Any], previous: Mapping[str, Any] | None) -> None:
    """The brand id and brand insights citing stage 3 insights."""
    c.text(out, "brand_id", "")
    _insights(c, out, previous, "brand_fit", "insight_ids", "insight")


def _stage5(c: _Checker, out: Mapping[str, Any], previous: Mapping[str, Any] | None) -> None:
    """Exactly five opportunities numbered 1-5 covering the five innovation types."""
    items = c.array(out, "opportunities", "", low=5, high=5) or []
    kinds = []
    for i, item in enumerate(items):
        path = f"opportunities[{i}]"
        card = c.obj(item, path)
        if card is None:
            continue
        number = card.get("number")
        if "number" not in card:
            c.fail(f"{path}.number", "is missing")
        elif isinstance(number, bool) or not isinstance(number, int):
            c.fail(f"{path}.number", f"must be an integer, got {_kind(number)}")
        elif number != i + 1:
            c.fail(f"{path}.number", f"must be {i + 1} (cards are numbered 1-5 in order), got {number}")
        c.text(card, "title", path)
        c.text(card, "description", path)
        kind = c.text(card, "innovation_type", path)
        if kind is not None:
            if kind in INNOVATION_TYPES:
                kinds.append(kind)
            else:
                c.fail(f"{path}.innovation_type", f"must be one of {', '.join(INNOVATION_TYPES)}, got {kind!r}")
        for key, size in (("actionability", 3), ("follow_up_prompts", 2)):
            values = c.array(card, key, path, low=size, high=size)
            if values is not None:
                c.strings(values, f"{path}.{key}")
    if len(items) == 5 and len(kinds) == 5:
        missing = [k for k in INNOVATION_TYPES if k not in kinds]
        if missing:
            c.fail("opportunities", f"must cover every innovation type; missing {', '.join(missing)} "
                                    f"(got {', '.join(kinds)})")


_CHECKS = {1: _stage1, 2: _stage2, 3: _stage3, 4: _stage4, 5: _stage5}


def validate_stage_output(stage: int, output: object, previous: Mapping[str, Any] | None = None) -> None:
    """Raise StageOutputInvalid (a StageError, code STAGE_OUTPUT_INVALID) unless ``output`` fits §8.

    ``previous`` is the previous stage's output; when given, ids that stage 3 and 4 cite
    (``signal_ids``, ``insight_ids``) must exist in it.
    """
    if stage not in _CHECKS:
        raise ValueError(f"there is no stage {stage!r}: stages are 1-5")
    c = _Checker()
    out = c.obj(output, "output")
    if out is not None:
        _CHECKS[stage](c, out, previous)
        if not c.problems:  # shape first; then what a JSON round trip would silently change
            c.json_values(out, "")
    if c.problems:
        raise StageOutputInvalid(stage, c.problems)
