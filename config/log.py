"""Structured logging: one JSON object per line on stdout, readable lines on a terminal.

Railway's log search parses a JSON line by its ``message`` and ``level`` keys and marks every
stderr line as an error, so production logs go to stdout as JSON. Standard-library loggers
(gunicorn, werkzeug, urllib3) are routed through the same processors so every line has one shape.
"""

from __future__ import annotations

import logging
import sys
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
    handler.acquire()
    try:
        handler.stream.write(line)
        handler.flush()
    except RecursionError:  # as logging.StreamHandler.emit does
        raise
    except Exception:  # noqa: BLE001 - logging's own policy: report on stderr, never fail the caller
        handler.handleError(logging.makeLogRecord({"name": name, "msg": event, "levelname": "INFO"}))
    finally:
        handler.release()


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
