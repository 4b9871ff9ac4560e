"""``python -m tests.crashrun TARGET -- CLI ARGS``: the pipeline CLI, SIGKILLed between the two writes of one step.

In DUAL_WRITE every write has two sides: the record (database or spool) and the file mirror.
TARGET names a write (``stage:N`` or ``complete``); the process SIGKILLs itself at the moment the
*second* side of that write is about to start, whichever side the store writes first. That is
the crash window of issue 8, defect 1: one side has the write, the other never will from this
process.

TARGET ``callback`` is the same window in FILE_ONLY with CALLBACK_URL: a run's end has two
sides there too, its terminal run.json and its callback in the file outbox.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from persistence.commands import Command, CompleteRun, SaveStage
from persistence.files import FileStore
from persistence.outbox.files import FileOutbox
from persistence.records import RunStatus
from persistence.resilient import ResilientStore

TERMINAL = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


def _key(command: Command) -> str | None:
    match command:
        case SaveStage(result=result):
            return f"stage:{result.stage}"
        case CompleteRun():
            return "complete"
    return None


def install_callback() -> None:
    """Patch run.json's terminal write and the outbox enqueue: entering the second one kills."""
    seen: set[str] = set()

    def enter(side: str) -> None:
        if seen - {side}:
            os.kill(os.getpid(), signal.SIGKILL)
        seen.add(side)

    write, enqueue = FileStore._write, FileOutbox.enqueue

    def terminal_write(self: Any, folder: Any, doc: dict[str, Any], status: Any = None) -> None:
        if status in TERMINAL:
            enter("run.json")
        write(self, folder, doc, status)

    def outbox_enqueue(self: Any, delivery: Any) -> bool:
        enter("outbox")
        return enqueue(self, delivery)

    FileStore._write = terminal_write  # type: ignore[method-assign]
    FileOutbox.enqueue = outbox_enqueue  # type: ignore[method-assign]


def install(target: str) -> None:
    """Patch both sides so that entering the second side of ``target`` kills this process."""
    if target == "callback":
        install_callback()
        return
    seen: set[str] = set()

    def guard(side: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(self: Any, command: Command, *args: Any, **kwargs: Any) -> Any:
            if _key(command) == target:
                other = "files" if side == "record" else "record"
                if other in seen:
                    os.kill(os.getpid(), signal.SIGKILL)
                result = original(self, command, *args, **kwargs)
                seen.add(side)
                return result
            return original(self, command, *args, **kwargs)

        return wrapped

    FileStore.apply = guard("files", FileStore.apply)  # type: ignore[method-assign]
    ResilientStore._record = guard("record", ResilientStore._record)  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    """Install the crash point, then hand the rest of the arguments to the pipeline CLI."""
    target, sep, rest = argv[0], argv[1], argv[2:]
    if sep != "--":
        raise SystemExit("usage: python -m tests.crashrun stage:N|complete|callback -- "
                         "run DOCUMENT --brand B --run-id R")
    install(target)
    from pipeline.cli import main as cli_main

    return cli_main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
