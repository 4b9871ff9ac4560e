"""Prepared statements against a table that grew after they were prepared (a real PostgreSQL)."""

from __future__ import annotations

import psycopg

from persistence.postgres import DbTimeouts
from persistence.postgres import sql as q
from persistence.records import RunRequest

URL = "https://a.public.blob.vercel-storage.com/{}.pdf"


def request(run_id: str) -> RunRequest:
    return RunRequest(run_id, "decathlon", "u1", URL.format(run_id))


def plan_of_prepared(conn: psycopg.Connection, marker: str, arguments: str) -> str:
    name = conn.execute("SELECT name FROM pg_prepared_statements WHERE statement LIKE %s",
                        (f"%{marker}%",)).fetchone()
    assert name is not None, f"no prepared statement holds {marker!r}"
    return "\n".join(row[0] for row in conn.execute(f"EXPLAIN EXECUTE {name[0]}({arguments})"))


def test_prepared_statements_are_planned_for_the_table_as_it_is_now(database_url):
    # Statements prepared while "PipelineRun" was small, then the table grows without new
    # statistics (a new deployment, or a server with autovacuum off like this one): a cached
    # generic plan would go on scanning the whole table for every repeated webhook.
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute('VACUUM ANALYZE "PipelineRun"')
    timeouts = DbTimeouts(prepare=True)
    with psycopg.connect(database_url, autocommit=True, **timeouts.connect_kwargs()) as conn:
        params = request("r0").as_dict()
        for _ in range(8):  # past the five custom plans after which PostgreSQL may cache a generic one
            conn.execute(q.CREATE_RUN_ONCE, params, prepare=True).fetchall()
            conn.execute(q.CREATE_RUNS_ONCE, {"run_ids": ["r0", "r1"], "user_ids": ["u1", "u1"],
                                              "company_ids": ["decathlon"] * 2,
                                              "document_urls": [URL.format("r0"), URL.format("r1")]},
                         prepare=True).fetchall()
        conn.execute('INSERT INTO "PipelineRun" (id, "userId", "companyId", "documentUrl", status) '
                     "SELECT 'g' || n, 'u', 'decathlon', 'https://x/' || n, 'QUEUED' FROM generate_series(1, 20000) n")
        one = plan_of_prepared(conn, "WITH inserted AS", "'r0', 'u1', 'decathlon', 'x'")
        many = plan_of_prepared(conn, "unnest", "ARRAY['r0','r9'], ARRAY['u1','u1'], ARRAY['d','d'], ARRAY['x','y']")
    assert "Seq Scan" not in one and "Index" in one, one
    assert "Seq Scan" not in many and "Index" in many, many
