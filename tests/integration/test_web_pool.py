"""The web process's store: a small shared pool, and one-statement run creation under contention."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from config.errors import Conflict, StoreUnavailable
from persistence.postgres import DbTimeouts, PostgresStore
from persistence.postgres.connection import APPLICATION_NAME
from persistence.records import RunRequest
from tests.pgfixtures import backends, wait_for_backends

REQUEST = RunRequest("r1", "decathlon", "u1", "https://a.public.blob.vercel-storage.com/x.pdf")


def test_sixteen_threads_share_the_pool_and_exactly_one_creates_the_run(database_url):
    store = PostgresStore(database_url, pool_size=4)
    try:
        with ThreadPoolExecutor(16) as threads:
            created = list(threads.map(lambda _: store.create_run(REQUEST), range(64)))
        assert created.count(True) == 1 and created.count(False) == 63
        assert 1 <= backends(database_url, APPLICATION_NAME) <= 4  # never one per thread
        with pytest.raises(Conflict):
            store.create_run(RunRequest("r1", "decathlon", "someone-else", REQUEST.document_url))
    finally:
        store.close()
    wait_for_backends(database_url, APPLICATION_NAME, at_most=0)


def test_a_pooled_call_past_its_deadline_is_cut_and_the_pool_recovers(database_url):
    store = PostgresStore(database_url, DbTimeouts(lock_s=30, statement_s=30, deadline_s=0.5), pool_size=2)
    try:
        store.create_run(REQUEST)
        with psycopg.connect(database_url) as blocker:
            blocker.execute('SELECT 1 FROM "PipelineRun" WHERE id = %s FOR UPDATE', ("r1",))
            with pytest.raises(StoreUnavailable, match="deadline"):
                store.start_attempt("r1", 1)
        store.start_attempt("r1", 1)  # the cut connection was discarded, not handed out again
        for _ in range(4):  # every pooled connection still answers
            assert store.create_run(REQUEST) is False
    finally:
        store.close()
