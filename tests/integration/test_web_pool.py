"""The web process's store: a small shared pool, and one-statement run creation under contention."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from config.errors import Conflict
from persistence.postgres import PostgresStore
from persistence.postgres.connection import APPLICATION_NAME
from persistence.records import RunRequest

REQUEST = RunRequest("r1", "decathlon", "u1", "https://a.public.blob.vercel-storage.com/x.pdf")


def our_connections(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND application_name = %s", (APPLICATION_NAME,)).fetchone()
    return int(row[0]) if row else 0


def test_sixteen_threads_share_the_pool_and_exactly_one_creates_the_run(database_url):
    store = PostgresStore(database_url, pool_size=4)
    try:
        with ThreadPoolExecutor(16) as threads:
            created = list(threads.map(lambda _: store.create_run(REQUEST), range(64)))
        assert created.count(True) == 1 and created.count(False) == 63
        assert 1 <= our_connections(database_url) <= 4  # never one per thread
        with pytest.raises(Conflict):
            store.create_run(RunRequest("r1", "decathlon", "someone-else", REQUEST.document_url))
    finally:
        store.close()
    deadline = time.monotonic() + 30  # a backend leaves pg_stat_activity a moment after its client: a hang guard
    while our_connections(database_url):
        assert time.monotonic() < deadline, "close() left pooled connections open"
        time.sleep(0.05)
