"""Structured logging: one JSON object per line on stdout, readable lines on a terminal.

Railway's log search parses a JSON line by its ``message`` and ``level`` keys and marks every
stderr line as an error, so production logs go to stdout as JSON. Standard-library loggers
(gunicorn, werkzeug, urllib3) are routed through the same processors so every line has one shape.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import structlog
import structlog.tracebacks

# The JSON renderer of the chain, shared with info_line so both serialise values alike.
_JSON_RENDERER = structlog.processors.JSONRenderer(sort_keys=False)
# The handler configure_logging installed when it writes JSON to one stream (info_line's shortcut).
_json_handler: logging.StreamHandler[TextIO] | None = None

_SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    structlog.processors.StackInfoRenderer(),
]


def configure_logging(
    level: str = "INFO", *, json: bool | None = None, stream: TextIO | None = None, copy_to: Path | None = None
) -> None:
    """Send structlog and standard logging to ``stream`` (stdout) as JSON, or as console lines on a tty.

    ``copy_to`` also appends every JSON line to a file: a run subprocess keeps one so that, if
    it dies, the dispatcher can quote its last lines in the run's error.
    """
    global _json_handler
    stream = stream or sys.stdout
    if json is None:
        json = not stream.isatty()
    renderer: Any
    if json:
        renderer = _JSON_RENDERER
        # Locals stay out of tracebacks: they can hold secrets and connection strings.
        tracebacks = structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        )
        final = [tracebacks, structlog.processors.EventRenamer("message"), renderer]
    else:
        final = [structlog.dev.ConsoleRenderer(colors=False)]

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED_PROCESSORS,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    _json_handler = handler if json else None
    if copy_to is not None:
        copy_log_to(copy_to)
    root.setLevel(level)
    # No line names its caller's file, thread or process: skip looking them up for every record
    # (the logging HOWTO's "Optimization" section). The web worker writes a line per request.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    # Quiet libraries that narrate every connection at INFO.
    for noisy in ("urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))

    structlog.configure(
        processors=[*_SHARED_PROCESSORS, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def info_line(name: str, event: str, **fields: Any) -> None:
    """``get_logger(name).info(event, **fields)``, at a third of the cost when logging allows it.

    For a line written per request (gunicorn's access line): the structlog → logging → formatter
    chain spends most of its time on objects the line never shows. While logging is as
    configure_logging left it (JSON on one stream, nothing in between that filters or adds a
    handler), the line is built here, keys in the chain's order (fields, bound context, logger,
    level, timestamp, message), rendered by the chain's own renderer and written under the
    handler's lock. Otherwise the chain writes it. tests/unit/test_log.py checks the two lines
    are the same.
    """
    handler = _json_handler
    logger = logging.getLogger(name)
    if handler is None or not logger.isEnabledFor(logging.INFO) or not _reaches_only(logger, handler):
        get_logger(name).info(event, **fields)
        return
    for key, value in structlog.contextvars.get_contextvars().items():
        fields.setdefault(key, value)
    fields.update(logger=name, level="info",
                  timestamp=datetime.now(tz=UTC).isoformat().replace("+00:00", "Z"), message=event)
    line = str(_JSON_RENDERER(None, "info", fields)) + handler.terminator  # json.dumps: always str
    try:
        _LINES.write(handler, line)
    except RecursionError:  # as logging.StreamHandler.emit does
        raise
    except Exception:  # noqa: BLE001 - logging's own policy: report on stderr, never fail the caller
        handler.handleError(logging.makeLogRecord({"name": name, "msg": event, "levelname": "INFO"}))


class _GroupWriter:
    """Lines from many threads, each written by the thread already writing, if there is one.

    A web worker writes an access line per request from eight threads; each used to wait for the
    handler's lock and make its own write call. Here a line that arrives while another thread
    writes is appended to what that thread writes next, before it returns: no timer and no
    thread of its own, so a line is never left waiting without a writer committed to it, and
    lines keep their order.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: list[str] = []
        self._writing = False

    def write(self, handler: logging.StreamHandler[TextIO], line: str) -> None:
        """Write ``line`` to ``handler``'s stream now, or hand it to the thread writing already."""
        with self._lock:
            self._lines.append(line)
            if self._writing:
                return
            self._writing = True
        try:
            while True:
                with self._lock:
                    lines, self._lines = self._lines, []
                    if not lines:
                        self._writing = False
                        return
                handler.acquire()  # lines of the logging chain take the same lock
                try:
                    handler.stream.write("".join(lines))
                    handler.flush()
                finally:
                    handler.release()
        except BaseException:
            # The failed lines are reported by the caller (logging's policy); lines queued since
            # go out with the next line.
            with self._lock:
                self._writing = False
            raise


    def reset(self) -> None:
        """Forget the writing thread and its queue: in a forked child, that thread does not exist."""
        self._lock = threading.Lock()
        self._lines = []
        self._writing = False


_LINES = _GroupWriter()
# As logging does for its handlers' locks: a fork while another thread held ours would leave the
# child's lines waiting on a writer that was never copied.
os.register_at_fork(after_in_child=_LINES.reset)


def _reaches_only(logger: logging.Logger, handler: logging.Handler) -> bool:
    """True when a record from ``logger`` would reach ``handler`` and nothing else, unfiltered."""
    node: logging.Logger | None = logger
    root = logging.getLogger()
    while node is not None and node is not root:
        if node.handlers or node.filters or not node.propagate:
            return False
        node = node.parent
    return root.handlers == [handler] and not root.filters and not handler.filters and \
        handler.level <= logging.INFO


def copy_log_to(path: Path) -> None:
    """Also append every log line, as JSON, to ``path`` (a run process's own log, see configure_logging)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    copy = logging.FileHandler(path, encoding="utf-8")
    copy.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_SHARED_PROCESSORS,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.EventRenamer("message"),
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    logging.getLogger().addHandler(copy)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structured logger named after its module."""
    return structlog.get_logger(name)


def bind_run(run_id: str, **values: Any) -> None:
    """Bind ``run_id`` (and more) to every log line this process or thread writes from now on."""
    structlog.contextvars.bind_contextvars(run_id=run_id, **values)


def clear_run() -> None:
    """Forget the values bound by bind_run."""
    structlog.contextvars.clear_contextvars()
