"""The columns the runner's code reads and writes, per table: declared here once.

``python -m handlers.cron migrations`` compares the live database with this (a missing column is
a failure caught before a run hits "column does not exist"; an extra column, e.g. one the
frontend added, is fine). tests/unit/test_schema_expectations.py proves it equals what
``sql/migrations`` produce (``sql/schema.sql``) and covers every quoted column the SQL of
``persistence/postgres_sql.py`` names, so adding a migration without updating it fails CI.
"""

from __future__ import annotations

from collections.abc import Mapping

PIPELINE_RUN = "PipelineRun"
STAGE_OUTPUT = "StageOutput"
OPPORTUNITY_CARD = "OpportunityCard"
CALLBACK_OUTBOX = "CallbackOutbox"
STAGE_CACHE = "StageCache"
MIGRATIONS_TABLE = "runner_schema_migrations"

EXPECTED_COLUMNS: Mapping[str, frozenset[str]] = {
    PIPELINE_RUN: frozenset({
        "id", "userId", "companyId", "documentUrl", "status", "currentStage",
        "errorMessage", "errorCode", "errorStage", "createdAt", "updatedAt", "completedAt",
        "attempt", "writeSeq", "leaseOwner", "leaseExpiresAt", "stageTimings",
        "stage1Output", "stage2Output", "stage3Output", "stage4Output", "fullReportMarkdown",
        "lastInterruption",
        "engine", "model", "llmCalls", "promptTokens", "completionTokens", "cachedTokens", "costUsd", "usage",
        "cachedStages",
    }),
    STAGE_OUTPUT: frozenset({
        "id", "runId", "stageNumber", "output", "attempt", "startedAt", "completedAt",
        "durationMs", "createdAt", "updatedAt",
    }),
    OPPORTUNITY_CARD: frozenset({
        "id", "runId", "number", "title", "content", "attempt", "createdAt", "updatedAt",
    }),
    CALLBACK_OUTBOX: frozenset({
        "webhookId", "runId", "outcome", "payload", "attempts", "nextAttemptAt", "leaseOwner",
        "leaseExpiresAt", "lastError", "deliveredAt", "deadAt", "createdAt",
    }),
    STAGE_CACHE: frozenset({"key", "stage", "model", "output", "usage", "createdAt"}),
    MIGRATIONS_TABLE: frozenset({"version", "name", "checksum", "applied_at", "duration_ms"}),
}

# The status API's lookup must use this index: EXPLAIN of SELECT_RUN is checked for it.
PIPELINE_RUN_PRIMARY_KEY = "PipelineRun_pkey"


def compare_columns(live: Mapping[str, set[str] | frozenset[str]]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(missing, extra) columns by table; a table absent from ``live`` has every column missing."""
    missing: dict[str, list[str]] = {}
    extra: dict[str, list[str]] = {}
    for table, expected in EXPECTED_COLUMNS.items():
        found = set(live.get(table, ()))
        if expected - found:
            missing[table] = sorted(expected - found)
        if found - expected:
            extra[table] = sorted(found - expected)
    return missing, extra
