"""The SQL of operator commands (cancel, retry) and of the callback outbox fill, bound with %(name)s.

Sequence steps continue those of ``sql``: a cancel moves the run to a new attempt, so every
later write of a process still running the old one is refused by the fence (and its status
writes by "writeSeq"); a retry outranks the failure it undoes.
"""

from __future__ import annotations

SEQ_CANCEL = 103
SEQ_RETRY = 104

# In SET, every column reads the row as it was: "attempt" is the old attempt throughout.
CANCEL_RUN = """
UPDATE "PipelineRun"
SET status = 'CANCELLED',
    attempt = GREATEST(attempt, %(attempt)s) + 1,
    "errorStage" = %(stage)s, "errorCode" = 'CANCELLED', "errorMessage" = %(message)s,
    "completedAt" = now(),
    "leaseOwner" = NULL, "leaseExpiresAt" = NULL,
    "writeSeq" = (GREATEST(attempt, %(attempt)s) + 1) * 1000 + 103,
    "updatedAt" = now()
WHERE id = %(run_id)s AND status IN ('QUEUED', 'PROCESSING')
RETURNING attempt
"""

RETRY_RUN = """
UPDATE "PipelineRun"
SET status = 'QUEUED',
    "errorStage" = NULL, "errorCode" = NULL, "errorMessage" = NULL,
    "completedAt" = NULL,
    "leaseOwner" = NULL, "leaseExpiresAt" = NULL,
    "writeSeq" = GREATEST("writeSeq", attempt * 1000 + 104),
    "updatedAt" = now()
WHERE id = %(run_id)s AND status = 'FAILED' AND attempt = %(attempt)s
RETURNING id
"""

# The completion callback of a run that now stands COMPLETED, FAILED or CANCELLED, inserted in
# the same transaction as the write that ended it. Its id names the run, the outcome and the
# attempt, so repeating the write (a replay, a retried transaction) inserts nothing new.
# json_build_object keeps the key order; the text stored is the exact body that is signed.
ENQUEUE_CALLBACK = """
INSERT INTO "CallbackOutbox" ("webhookId", "runId", outcome, payload)
SELECT 'msg_' || r.id || '_' || lower(r.status) || '_' || r.attempt, r.id, r.status,
       json_build_object(
           'type', 'run.' || lower(r.status),
           'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
           'data', json_build_object(
               'run_id', r.id, 'status', r.status, 'company_id', r."companyId", 'user_id', r."userId",
               'error', CASE WHEN r."errorCode" IS NULL AND r."errorMessage" IS NULL THEN NULL
                             ELSE json_build_object('stage', r."errorStage", 'code', r."errorCode",
                                                    'message', r."errorMessage") END,
               'usage', to_jsonb(r) -> 'usage'))::text
FROM "PipelineRun" AS r
WHERE r.id = %(run_id)s AND r.status IN ('COMPLETED', 'FAILED', 'CANCELLED')
ON CONFLICT ("webhookId") DO NOTHING
"""
