"""``python -m handlers.dispatcher`` takes the host lock before it imports the run's stack.

Launchers decide whether a dispatcher is alive by that lock, and a second would-be dispatcher
must find it taken at once; every module the dispatcher's own module imports is paid before the
lock. The run's stack (fetcher, input gate, PDF text, database driver, the spare's rehearsal) is
imported afterwards, in Dispatcher.__init__, and must not creep back to module level.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO

RUN_STACK = ("pipeline.fetch", "pipeline.rehearsal", "pipeline.bootstrap", "pipeline.gate", "pipeline.runner",
             "pypdfium2", "psycopg", "urllib3", "yaml")


def test_importing_the_dispatcher_module_loads_none_of_the_run_stack() -> None:
    probe = f"import json, sys, handlers.dispatcher; print(json.dumps([m for m in {RUN_STACK!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, check=True, capture_output=True, text=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
