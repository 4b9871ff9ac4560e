"""The document, loaded in a thread while the run reads and writes its records.

Fetching waits on the blob server and reading the run's records waits on PostgreSQL (a new
connection in a run process) or on the disk: done one after the other they add up before stage
1; done side by side the run waits only for the slower. The thread runs in a copy of the
caller's context, so its log lines carry the run's id, and an error it meets is raised again
where the run asks for the document, exactly as if it had been loaded there.

The thread forks nothing (PDF text is extracted in a ``subprocess``, fork+exec), and it is a
daemon: a run that stops before asking for its document does not wait for a slow server.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Prefetch(Generic[T]):
    """``load(source)`` started now in a thread; ``result()`` waits for it and returns or raises."""

    def __init__(self, load: Callable[[str], T], source: str) -> None:
        self._load = load
        self._source = source
        self._value: T | None = None
        self._error: BaseException | None = None
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._run,), name="document-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._load(self._source)
        except BaseException as exc:  # handed to the caller by result(), never lost in the thread
            self._error = exc

    def result(self) -> T:
        """The loaded value, once the thread has finished; its exception if it failed."""
        self._thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        assert self._value is not None, "a load that returned nothing"
        return self._value
