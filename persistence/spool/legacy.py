"""Spool records written before typed commands existed: ``{"verb", "args"}`` bodies, still replayed.

Those records name a store verb and its keyword arguments as JSON. They map one to one onto the
commands (the verb name is the command's ``kind``), so a spool left on a volume by an older
release replays unchanged after an upgrade.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from persistence.commands import KINDS, Command, command_from_json


def legacy_command(verb: str, args: Mapping[str, Any]) -> Command:
    """The command an old ``verb`` + ``args`` record stands for; ValueError for an unknown verb."""
    if verb not in KINDS:
        raise ValueError(f"unknown store verb {verb!r} in an old spool record; known: {', '.join(KINDS)}")
    return command_from_json({"kind": verb, **args})
