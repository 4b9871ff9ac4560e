"""The web benchmark's floor: the least a Flask app on our gunicorn settings can do per webhook.

One endpoint, ``POST /run``: read the JSON body, do ONE ``INSERT`` through a connection taken
from a small per-process pool, answer 202. No signature check, no validation, no logging, no
dispatcher. bench/webhook.py serves it with gunicorn on the same settings as ours (gthread,
2 workers, 8 threads) and reports our figures as multiples of its figures.

The pool is a ``queue.Queue`` of psycopg connections (``ConnectionQueue``), one per gunicorn
thread, opened lazily in each worker after the fork and kept open: no health checks, no
resizing, no reconnects. psycopg_pool is not installed; this is the simplest honest stand-in.

Environment: ``FLOOR_DATABASE_URL`` (the database holding the ``bench_floor`` table,
created by bench/webhook.py), ``FLOOR_POOL_SIZE`` (default 8, gunicorn's thread count).
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

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS bench_floor (
    run_id text PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
)
"""
INSERT = "INSERT INTO bench_floor (run_id) VALUES (%(run_id)s) ON CONFLICT (run_id) DO NOTHING"


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
        run_id = str(request.get_json(force=True)["run_id"])
        with pool.connection() as conn:
            conn.execute(INSERT, {"run_id": run_id})
        return {"run_id": run_id, "status": "QUEUED"}, 202

    return app
