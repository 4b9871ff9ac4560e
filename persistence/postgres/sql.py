"""The SQL of PostgresStore, one named constant per statement, bound with %(name)s.

Fencing and ordering rules every write follows:
- a write carries its ``attempt``; the verb first locks the run row and refuses (Superseded)
  when "PipelineRun".attempt is newer;
- the run row's status, "currentStage" and error fields move only when the write's sequence
  number (``attempt * 1000 + step``) is at least the stored "writeSeq", so a replayed older
  write can never move a run backwards;
- stage rows, cards and output columns are upserts guarded by attempt only.
"""

from __future__ import annotations

# Steps of the write sequence within one attempt (see write_seq()).
SEQ_CREATE, SEQ_START, SEQ_COMPLETE, SEQ_FAIL = 0, 1, 100, 101
SEQ_PER_STAGE = 10
SEQ_PER_ATTEMPT = 1000


def write_seq(attempt: int, step: int) -> int:
    """The "writeSeq" a write carries: later writes of a run get larger numbers."""
    return attempt * SEQ_PER_ATTEMPT + step


INSERT_RUN = """
INSERT INTO "PipelineRun" (id, "userId", "companyId", "documentUrl", status, attempt, "writeSeq")
VALUES (%(run_id)s, %(user_id)s, %(company_id)s, %(document_url)s, 'QUEUED', 0, 0)
ON CONFLICT (id) DO NOTHING
RETURNING id
"""

# The webhook's write: one statement in autocommit, one round trip. A new run comes back as
# (true, …); an existing one as (false, its request) for the caller to compare. No row at all
# means a concurrent insert committed after this statement's snapshot: read the row again.
CREATE_RUN_ONCE = """
WITH inserted AS (
    INSERT INTO "PipelineRun" (id, "userId", "companyId", "documentUrl", status, attempt, "writeSeq")
    VALUES (%(run_id)s, %(user_id)s, %(company_id)s, %(document_url)s, 'QUEUED', 0, 0)
    ON CONFLICT (id) DO NOTHING
    RETURNING id
)
SELECT true AS created, NULL::text AS "userId", NULL::text AS "companyId", NULL::text AS "documentUrl"
FROM inserted
UNION ALL
SELECT false, "userId", "companyId", "documentUrl" FROM "PipelineRun"
WHERE id = %(run_id)s AND NOT EXISTS (SELECT 1 FROM inserted)
"""

# The same for a batch of new runs (persistence.postgres.group_commit), one row back per request
# in the order sent: "created", or the stored request of a run that was already there. Both
# NULL: a concurrent insert committed after this statement's snapshot; read that row again.
# The ids must be distinct (a second copy of an id in one INSERT would be neither).
CREATE_RUNS_ONCE = """
WITH request AS (
    SELECT * FROM unnest(%(run_ids)s::text[], %(user_ids)s::text[], %(company_ids)s::text[],
                         %(document_urls)s::text[]) WITH ORDINALITY
        AS r(id, "userId", "companyId", "documentUrl", position)
), inserted AS (
    INSERT INTO "PipelineRun" (id, "userId", "companyId", "documentUrl", status, attempt, "writeSeq")
    SELECT id, "userId", "companyId", "documentUrl", 'QUEUED', 0, 0 FROM request ORDER BY position
    ON CONFLICT (id) DO NOTHING
    RETURNING id
)
SELECT request.id, inserted.id IS NOT NULL AS created, stored."userId", stored."companyId", stored."documentUrl"
FROM request
LEFT JOIN inserted ON inserted.id = request.id
LEFT JOIN "PipelineRun" stored ON stored.id = request.id
ORDER BY request.position
"""

SELECT_REQUEST = """
SELECT "userId", "companyId", "documentUrl" FROM "PipelineRun" WHERE id = %(run_id)s
"""

LOCK_RUN = """
SELECT attempt FROM "PipelineRun" WHERE id = %(run_id)s FOR UPDATE
"""

START_ATTEMPT = """
UPDATE "PipelineRun"
SET status = 'PROCESSING',
    attempt = GREATEST(attempt, %(attempt)s),
    "errorStage" = NULL, "errorCode" = NULL, "errorMessage" = NULL,
    "writeSeq" = %(seq)s,
    "updatedAt" = now()
WHERE id = %(run_id)s AND "writeSeq" <= %(seq)s
"""

UPSERT_STAGE_OUTPUT = """
INSERT INTO "StageOutput" ("runId", "stageNumber", output, attempt, "startedAt", "completedAt", "durationMs")
VALUES (%(run_id)s, %(stage)s, %(output)s, %(attempt)s, %(started_at)s, %(completed_at)s, %(duration_ms)s)
ON CONFLICT ("runId", "stageNumber") DO UPDATE
SET output = EXCLUDED.output,
    attempt = EXCLUDED.attempt,
    "startedAt" = EXCLUDED."startedAt",
    "completedAt" = EXCLUDED."completedAt",
    "durationMs" = EXCLUDED."durationMs",
    "updatedAt" = now()
WHERE "StageOutput".attempt <= EXCLUDED.attempt
"""

# Stage 5 has no column: it lives in "StageOutput" and "OpportunityCard".
SAVE_STAGE_ON_RUN = """
UPDATE "PipelineRun"
SET "stage1Output" = CASE WHEN %(stage)s = 1 THEN %(output)s ELSE "stage1Output" END,
    "stage2Output" = CASE WHEN %(stage)s = 2 THEN %(output)s ELSE "stage2Output" END,
    "stage3Output" = CASE WHEN %(stage)s = 3 THEN %(output)s ELSE "stage3Output" END,
    "stage4Output" = CASE WHEN %(stage)s = 4 THEN %(output)s ELSE "stage4Output" END,
    "stageTimings" = "stageTimings" || jsonb_build_object(%(stage)s::text, %(timing)s::jsonb),
    "currentStage" = CASE WHEN "writeSeq" <= %(seq)s THEN %(stage)s ELSE "currentStage" END,
    "writeSeq" = GREATEST("writeSeq", %(seq)s),
    "updatedAt" = now()
WHERE id = %(run_id)s
"""

UPSERT_CARD = """
INSERT INTO "OpportunityCard" ("runId", number, title, content, attempt)
VALUES (%(run_id)s, %(number)s, %(title)s, %(content)s, %(attempt)s)
ON CONFLICT ("runId", number) DO UPDATE
SET title = EXCLUDED.title,
    content = EXCLUDED.content,
    attempt = EXCLUDED.attempt,
    "updatedAt" = now()
WHERE "OpportunityCard".attempt <= EXCLUDED.attempt
"""

# "completedAt" keeps its first value, as FileStore's completed_at does.
COMPLETE_RUN = """
UPDATE "PipelineRun"
SET "fullReportMarkdown" = %(markdown)s,
    status = CASE WHEN "writeSeq" <= %(seq)s THEN 'COMPLETED' ELSE status END,
    "completedAt" = CASE WHEN "writeSeq" <= %(seq)s THEN coalesce("completedAt", now()) ELSE "completedAt" END,
    "errorStage" = CASE WHEN "writeSeq" <= %(seq)s THEN NULL ELSE "errorStage" END,
    "errorCode" = CASE WHEN "writeSeq" <= %(seq)s THEN NULL ELSE "errorCode" END,
    "errorMessage" = CASE WHEN "writeSeq" <= %(seq)s THEN NULL ELSE "errorMessage" END,
    "writeSeq" = GREATEST("writeSeq", %(seq)s),
    "updatedAt" = now()
WHERE id = %(run_id)s
"""

FAIL_RUN = """
UPDATE "PipelineRun"
SET status = 'FAILED',
    "errorStage" = %(stage)s, "errorCode" = %(code)s, "errorMessage" = %(message)s,
    "completedAt" = now(),
    "writeSeq" = %(seq)s,
    "updatedAt" = now()
WHERE id = %(run_id)s AND "writeSeq" <= %(seq)s
"""

# A whole snapshot (idempotent) in one statement, fenced like SAVE_STAGE_ONE: it returns the
# run's attempt (none: unknown run), and updates only when that attempt is not newer than the
# writer's. A run's first write after its claim: one round trip, not BEGIN, lock, UPDATE, COMMIT.
RECORD_USAGE_ONE = """
WITH run AS (
    SELECT id, attempt FROM "PipelineRun" WHERE id = %(run_id)s FOR UPDATE
), usage_row AS (
    UPDATE "PipelineRun" AS r
    SET engine = %(engine)s, model = %(model)s,
        "llmCalls" = %(calls)s, "promptTokens" = %(prompt_tokens)s, "completionTokens" = %(completion_tokens)s,
        "cachedTokens" = %(cached_tokens)s, "costUsd" = %(cost_usd)s,
        usage = %(usage)s, "cachedStages" = %(cached_stages)s,
        "updatedAt" = now()
    FROM run WHERE r.id = run.id AND run.attempt <= %(attempt)s
    RETURNING 1
)
SELECT run.attempt FROM run
"""

SELECT_RUN = """
SELECT id, "userId", "companyId", "documentUrl", status, attempt, "currentStage", "stageTimings",
       "errorStage", "errorCode", "errorMessage", "createdAt", "updatedAt", "completedAt",
       "leaseOwner", "leaseExpiresAt", "lastInterruption", engine, model, usage, "cachedStages"
FROM "PipelineRun"
WHERE id = %(run_id)s
"""

SELECT_STAGE_OUTPUTS = """
SELECT "stageNumber", output FROM "StageOutput" WHERE "runId" = %(run_id)s ORDER BY "stageNumber"
"""

PING = "SELECT 1"

# -- the queue: claims, leases, requeues (persistence/postgres_queue.py) ----------------------

SEQ_CLAIM = SEQ_START  # a claim starts the attempt; the child's start_attempt repeats it harmlessly

# A claim the file mirror granted during an outage, replayed: the attempt and its lease.
RECORD_CLAIM = """
UPDATE "PipelineRun"
SET status = 'PROCESSING',
    attempt = GREATEST(attempt, %(attempt)s),
    "leaseOwner" = %(owner)s,
    "leaseExpiresAt" = %(expires)s,
    "errorStage" = NULL, "errorCode" = NULL, "errorMessage" = NULL,
    "writeSeq" = %(seq)s,
    "updatedAt" = now()
WHERE id = %(run_id)s AND "writeSeq" <= %(seq)s
"""
SEQ_REQUEUE = 102

_CLAIM_SET = """
SET status = 'PROCESSING',
    attempt = r.attempt + 1,
    "leaseOwner" = %(owner)s,
    "leaseExpiresAt" = now() + make_interval(secs => %(lease_s)s),
    "errorStage" = NULL, "errorCode" = NULL, "errorMessage" = NULL,
    "writeSeq" = (r.attempt + 1) * 1000 + 1,
    "updatedAt" = now()
"""

# The UPDATE locks the row, so of two concurrent claimants the second re-checks the WHERE
# after the first commits, finds PROCESSING with a live lease, and claims nothing.
CLAIM_ONE = """
UPDATE "PipelineRun" AS r
""" + _CLAIM_SET + """
WHERE r.id = %(run_id)s
  AND (r.status = 'QUEUED'
       OR (r.status = 'PROCESSING' AND r."leaseExpiresAt" IS NOT NULL AND r."leaseExpiresAt" <= now()))
RETURNING r.id, r.attempt, r."userId", r."companyId", r."documentUrl"
"""

# SKIP LOCKED: replicas claiming at once each take different rows instead of queueing up.
CLAIM_NEXT = """
WITH picked AS (
    SELECT id FROM "PipelineRun"
    WHERE status = 'QUEUED'
    ORDER BY "createdAt", id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE "PipelineRun" AS r
""" + _CLAIM_SET + """
FROM picked
WHERE r.id = picked.id
RETURNING r.id, r.attempt, r."userId", r."companyId", r."documentUrl"
"""

RENEW_LEASE = """
UPDATE "PipelineRun"
SET "leaseExpiresAt" = now() + make_interval(secs => %(lease_s)s)
WHERE id = %(run_id)s AND attempt = %(attempt)s AND "leaseOwner" = %(owner)s AND status = 'PROCESSING'
RETURNING id
"""

REQUEUE = """
UPDATE "PipelineRun"
SET status = 'QUEUED',
    "leaseOwner" = NULL,
    "leaseExpiresAt" = NULL,
    "lastInterruption" = %(reason)s,
    "writeSeq" = GREATEST("writeSeq", %(seq)s),
    "updatedAt" = now()
WHERE id = %(run_id)s AND attempt = %(attempt)s AND status = 'PROCESSING'
RETURNING id
"""

SELECT_LEASES = """
SELECT id, attempt, "leaseOwner", "leaseExpiresAt"
FROM "PipelineRun"
WHERE status = 'PROCESSING' AND "leaseOwner" IS NOT NULL
ORDER BY "leaseExpiresAt", id
"""

# -- mirror healing (DUAL_WRITE): what changed since, and everything about one run ------------

SELECT_REPORT = """
SELECT "fullReportMarkdown" FROM "PipelineRun" WHERE id = %(run_id)s
"""

SELECT_UPDATED_SINCE = """
SELECT id, "updatedAt" FROM "PipelineRun" WHERE "updatedAt" >= %(since)s ORDER BY "updatedAt", id
"""

# -- the hot write: one autocommit statement (fence, stage row, run row) ------------------------

# One round trip instead of five (BEGIN, row lock, upsert, run-row update, COMMIT). ``run`` locks
# the run row; the stage upsert and the run-row update happen only when the write's attempt is
# not older than the run's. The statement returns the run's attempt (no row: unknown run), which
# is how the caller tells a fenced-out write (Superseded) from a done one.
SAVE_STAGE_ONE = """
WITH run AS (
    SELECT id, attempt FROM "PipelineRun" WHERE id = %(run_id)s FOR UPDATE
), stage_row AS (
    INSERT INTO "StageOutput" ("runId", "stageNumber", output, attempt, "startedAt", "completedAt", "durationMs")
    SELECT run.id, %(stage)s, %(output)s, %(attempt)s, %(started_at)s, %(completed_at)s, %(duration_ms)s
    FROM run WHERE run.attempt <= %(attempt)s
    ON CONFLICT ("runId", "stageNumber") DO UPDATE
    SET output = EXCLUDED.output,
        attempt = EXCLUDED.attempt,
        "startedAt" = EXCLUDED."startedAt",
        "completedAt" = EXCLUDED."completedAt",
        "durationMs" = EXCLUDED."durationMs",
        "updatedAt" = now()
    WHERE "StageOutput".attempt <= EXCLUDED.attempt
    RETURNING 1
), run_row AS (
    UPDATE "PipelineRun" AS r
    SET "stage1Output" = CASE WHEN %(stage)s = 1 THEN %(output)s ELSE r."stage1Output" END,
        "stage2Output" = CASE WHEN %(stage)s = 2 THEN %(output)s ELSE r."stage2Output" END,
        "stage3Output" = CASE WHEN %(stage)s = 3 THEN %(output)s ELSE r."stage3Output" END,
        "stage4Output" = CASE WHEN %(stage)s = 4 THEN %(output)s ELSE r."stage4Output" END,
        "stageTimings" = r."stageTimings" || jsonb_build_object(%(stage)s::text, %(timing)s::jsonb),
        "currentStage" = CASE WHEN r."writeSeq" <= %(seq)s THEN %(stage)s ELSE r."currentStage" END,
        "writeSeq" = GREATEST(r."writeSeq", %(seq)s),
        "updatedAt" = now()
    FROM run WHERE r.id = run.id AND run.attempt <= %(attempt)s
    RETURNING 1
)
SELECT run.attempt FROM run
"""
