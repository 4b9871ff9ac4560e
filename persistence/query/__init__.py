"""Reads for operators and the frontend: list runs, show one, read its results, count them.

    ports.py     the RunQuery Protocol and its records (RunFilter, RunSummary, RunPage, RunStats)
    files.py     FileRunQuery over OUTPUT_DIR/<run_id>/ (contract §7)
    postgres.py  PostgresRunQuery over the tables of contract §6, through a psycopg_pool pool
    dual.py      DualRunQuery: the database first, the files when it cannot answer (DUAL_WRITE)
    factory.py   build_query(settings): the reader for the mode

Kept apart from the write side (RunStore) on purpose: reads never go through the breaker or
the spool, and the write path can change without touching them.
"""
