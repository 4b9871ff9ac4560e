-- Completion callbacks waiting to be delivered (CALLBACK_URL): one row per run outcome, keyed by
-- the webhook-id the receiver deduplicates on. Delivered and abandoned rows stay as the record
-- that the outcome was handled, so it is never sent again.
CREATE TABLE "CallbackOutbox" (
    "webhookId"       text        NOT NULL,
    "runId"           text        NOT NULL,
    outcome           text        NOT NULL,
    payload           text        NOT NULL,
    attempts          integer     NOT NULL DEFAULT 0,
    "nextAttemptAt"   timestamptz NOT NULL DEFAULT now(),
    "leaseOwner"      text,
    "leaseExpiresAt"  timestamptz,
    "lastError"       text,
    "deliveredAt"     timestamptz,
    "deadAt"          timestamptz,
    "createdAt"       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT "CallbackOutbox_pkey" PRIMARY KEY ("webhookId"),
    CONSTRAINT "CallbackOutbox_runId_fkey"
        FOREIGN KEY ("runId") REFERENCES "PipelineRun" (id) ON DELETE CASCADE,
    CONSTRAINT "CallbackOutbox_outcome_check" CHECK (outcome IN ('COMPLETED', 'FAILED', 'CANCELLED'))
);

-- The deliverer looks for rows still to send, soonest first.
CREATE INDEX "CallbackOutbox_due_idx" ON "CallbackOutbox" ("nextAttemptAt")
    WHERE "deliveredAt" IS NULL AND "deadAt" IS NULL;
CREATE INDEX "CallbackOutbox_runId_idx" ON "CallbackOutbox" ("runId");
