"""The web benchmark's floor: the least a Flask app on our gunicorn settings can do per webhook.

One endpoint, ``POST /run``: read the JSON body, do ONE ``INSERT`` of the same row into the same
table as ours (``"PipelineRun"``, in a database migrated like ours, with its indexes), through
a connection taken from a small per-process pool, answer 202. No signature check, no
validation, no logging, no dispatcher, and no answer to a repeated run_id (it is ignored).
bench/webhook.py serves it with gunicorn on the same settings as ours (gthread, 2 workers,
8 threads) and reports our figures as multiples of its figures.

The pool is a ``queue.Queue`` of psycopg connections (``ConnectionQueue``), one per gunicorn
thread, opened lazily in each worker after the fork and kept open: no health checks, no
resizing, no reconnects. It is the simplest honest stand-in for a pool.

Environment: ``FLOOR_DATABASE_URL`` (a migrated database of its own, so the two apps' rows and
index pages never mix), ``FLOOR_POOL_SIZE`` (default 8, gunicorn's thread count).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from flask import Flask, request

READY_MARK = "floor_app_ready"
# The row persistence.postgres.sql.CREATE_RUN_ONCE inserts for a new run, without its RETURNING.
INSERT = """
INSERT INTO "PipelineRun" (id, "userId", "companyId", "documentUrl", status, attempt, "writeSeq")
VALUES (%(run_id)s, %(user_id)s, %(company_id)s, %(blob_url)s, 'QUEUED', 0, 0)
ON CONFLICT (id) DO NOTHING
"""


class ConnectionQueue:
    """A fixed number of autocommit psycopg connections in a ``queue.Queue``, opened on first use."""

    def __init__(self, url: str, size: int) -> None:
        self._url = url
        self._idle: queue.Queue[psycopg.Connection[Any]] = queue.Queue()
        self._opened = 0
        self._size = size
        self._lock = threading.Lock()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """Borrow a connection (opening one while fewer than ``size`` exist), then give it back."""
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            with self._lock:
                grow = self._opened < self._size
                self._opened += grow
            conn = psycopg.connect(self._url, autocommit=True) if grow else self._idle.get()
        try:
            yield conn
        finally:
            self._idle.put(conn)


def create_app() -> Flask:
    """The floor app; its pool belongs to the worker process that builds it (gunicorn: after the fork)."""
    pool = ConnectionQueue(os.environ["FLOOR_DATABASE_URL"], int(os.environ.get("FLOOR_POOL_SIZE", "8")))
    app = Flask(__name__)

    @app.post("/run")
    def post_run() -> tuple[dict[str, str], int]:
        body = request.get_json(force=True)
        row = {key: str(body[key]) for key in ("run_id", "user_id", "company_id", "blob_url")}
        with pool.connection() as conn:
            conn.execute(INSERT, row)
        return {"run_id": row["run_id"], "status": "QUEUED"}, 202

    print(READY_MARK, flush=True)  # bench/webhook.py waits for one per worker before loading the server
    return app
