"""``python -m tests.forkwatch REPORT``: the dispatcher, with every fork's live threads written to REPORT.

An ``os.register_at_fork(before=...)`` hook registered first runs last among the before-hooks
(they run in reverse order), so it sees the threads that are really alive when fork() happens,
after every hook the runner itself registered.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path


def main(argv: list[str]) -> int:
    """Record the live threads at each fork, then run the dispatcher."""
    report = Path(argv[0])

    def before_fork() -> None:
        names = [t.name for t in threading.enumerate()]
        with open(report, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"pid": os.getpid(), "threads": names}) + "\n")

    os.register_at_fork(before=before_fork)
    from handlers.dispatcher import main as dispatcher_main

    return dispatcher_main([])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
