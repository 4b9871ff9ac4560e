"""EXPECTED_COLUMNS never goes stale: it equals what the migrations produce and covers the code's SQL."""

from __future__ import annotations

import re

from persistence.postgres import sql as postgres_sql
from persistence.schema_expectations import EXPECTED_COLUMNS, compare_columns
from tests.conftest import REPO

TABLE = re.compile(r'CREATE TABLE public\.("?)(?P<name>\w+)\1 \((?P<body>.*?)\n\);', re.S)
COLUMN = re.compile(r'\s*("?)(?P<name>\w+)\1\s')


def schema_sql_columns() -> dict[str, set[str]]:
    """Columns per table in sql/schema.sql (the schema every migration applied from scratch produces)."""
    tables: dict[str, set[str]] = {}
    for match in TABLE.finditer((REPO / "sql" / "schema.sql").read_text()):
        columns = set()
        for line in match["body"].splitlines():
            if not line.strip() or line.strip().startswith("CONSTRAINT"):
                continue
            column = COLUMN.match(line)
            assert column, f"unparsed line in schema.sql: {line!r}"
            columns.add(column["name"])
        tables[match["name"]] = columns
    return tables


def test_expected_columns_equal_the_schema_the_migrations_produce():
    assert {table: set(columns) for table, columns in EXPECTED_COLUMNS.items()} == schema_sql_columns()


def test_every_quoted_column_the_store_sql_names_is_expected():
    constants = vars(postgres_sql).items()
    sql_text = "\n".join(value for name, value in constants if name.isupper() and isinstance(value, str))
    named = set(re.findall(r'"(\w+)"', sql_text))
    known = set().union(*EXPECTED_COLUMNS.values()) | set(EXPECTED_COLUMNS)
    assert len(named) > 10, "the SQL constants of persistence/postgres_sql.py were not found"
    assert named <= known, f"columns the code uses but EXPECTED_COLUMNS lacks: {sorted(named - known)}"


def test_compare_columns_reports_missing_and_extra_by_table():
    live = {table: set(columns) for table, columns in EXPECTED_COLUMNS.items()}
    live["PipelineRun"] = (live["PipelineRun"] - {"stage1Output"}) | {"clerkId"}
    del live["OpportunityCard"]
    missing, extra = compare_columns(live)
    assert missing == {"PipelineRun": ["stage1Output"], "OpportunityCard": sorted(EXPECTED_COLUMNS["OpportunityCard"])}
    assert extra == {"PipelineRun": ["clerkId"]}
