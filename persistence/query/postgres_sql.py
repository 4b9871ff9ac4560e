"""The SQL of PostgresRunQuery, one named constant per statement, bound with %(name)s.

Optional filters are ``(%(x)s IS NULL OR column = %(x)s)``: one plan, no string building.
``to_jsonb(r) -> 'usage'`` reads LLM usage where a migration added it, and NULL before.
"""

from __future__ import annotations

RUN_COLUMNS = """
r.id, r.status, r."companyId", r."userId", r."documentUrl", r.attempt, r."stageTimings",
r."errorStage", r."errorCode", r."errorMessage", r."createdAt", r."updatedAt", r."completedAt",
to_jsonb(r) -> 'usage', r."lastInterruption"
"""

LIST_RUNS = "SELECT " + RUN_COLUMNS + """
FROM "PipelineRun" AS r
WHERE (%(status)s::text IS NULL OR r.status = %(status)s::text)
  AND (%(company_id)s::text IS NULL OR r."companyId" = %(company_id)s::text)
  AND (%(user_id)s::text IS NULL OR r."userId" = %(user_id)s::text)
  AND (%(created_after)s::timestamptz IS NULL OR r."createdAt" >= %(created_after)s::timestamptz)
  AND (%(created_before)s::timestamptz IS NULL OR r."createdAt" < %(created_before)s::timestamptz)
  AND (%(after_at)s::timestamptz IS NULL
       OR (r."createdAt", r.id) < (%(after_at)s::timestamptz, %(after_id)s::text))
ORDER BY r."createdAt" DESC, r.id DESC
LIMIT %(limit)s
"""

SHOW_RUN = "SELECT " + RUN_COLUMNS + """
FROM "PipelineRun" AS r
WHERE r.id = %(run_id)s
"""

STAGE_TIMINGS = """
SELECT "stageNumber", "startedAt", "completedAt", "durationMs"
FROM "StageOutput" WHERE "runId" = %(run_id)s ORDER BY "stageNumber"
"""

READ_REPORT = """
SELECT "fullReportMarkdown" FROM "PipelineRun" WHERE id = %(run_id)s AND status = 'COMPLETED'
"""

READ_STAGE = """
SELECT output FROM "StageOutput" WHERE "runId" = %(run_id)s AND "stageNumber" = %(stage)s
"""

COUNT_BY_STATUS = """
SELECT status, count(*), sum(attempt), min("createdAt") FILTER (WHERE status = 'QUEUED')
FROM "PipelineRun" GROUP BY status
"""

# Cumulative counts per bucket bound (seconds), per stage; then each stage's count and sum.
STAGE_BUCKETS = """
SELECT o."stageNumber", b.bound, count(*) FILTER (WHERE o."durationMs" <= b.bound * 1000)
FROM "StageOutput" AS o CROSS JOIN unnest(%(bounds)s::float8[]) AS b(bound)
WHERE o."durationMs" IS NOT NULL
GROUP BY o."stageNumber", b.bound
"""

STAGE_TOTALS = """
SELECT "stageNumber", count(*), coalesce(sum("durationMs"), 0) / 1000.0
FROM "StageOutput" WHERE "durationMs" IS NOT NULL
GROUP BY "stageNumber"
"""

USAGE_TOTALS = """
SELECT coalesce(u -> 'total', u) FROM (
    SELECT to_jsonb(r) -> 'usage' AS u FROM "PipelineRun" AS r
) AS runs WHERE u IS NOT NULL AND jsonb_typeof(u) = 'object'
"""
