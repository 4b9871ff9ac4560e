"""Structured logging: one JSON object per line on stdout, readable lines on a terminal.

Railway's log search parses a JSON line by its ``message`` and ``level`` keys and marks every
stderr line as an error, so production logs go to stdout as JSON. Standard-library loggers
(gunicorn, werkzeug, urllib3) are routed through the same processors so every line has one shape.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, TextIO

import structlog
import structlog.tracebacks

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
    stream = stream or sys.stdout
    if json is None:
        json = not stream.isatty()
    renderer: Any
    if json:
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
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
