-- One row per run: what was asked, where it stands, and the bookkeeping that fences attempts.
-- Quoted camelCase identifiers: the Vercel frontend reads this table through Prisma.
CREATE TABLE "PipelineRun" (
    id                text        NOT NULL,
    "userId"          text        NOT NULL,
    "companyId"       text        NOT NULL,
    "documentUrl"     text        NOT NULL,
    status            text        NOT NULL,
    "currentStage"    integer,
    "errorMessage"    text,
    "errorCode"       text,
    "errorStage"      integer,
    "createdAt"       timestamptz NOT NULL DEFAULT now(),
    "updatedAt"       timestamptz NOT NULL DEFAULT now(),
    "completedAt"     timestamptz,
    attempt           integer     NOT NULL DEFAULT 0,
    "writeSeq"        bigint      NOT NULL DEFAULT 0,
    "leaseOwner"      text,
    "leaseExpiresAt"  timestamptz,
    "stageTimings"    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT "PipelineRun_pkey" PRIMARY KEY (id),
    CONSTRAINT "PipelineRun_status_check"
        CHECK (status IN ('QUEUED', 'PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED'))
);

-- The reaper looks for PROCESSING runs whose lease has lapsed.
CREATE INDEX "PipelineRun_status_leaseExpiresAt_idx" ON "PipelineRun" (status, "leaseExpiresAt");
