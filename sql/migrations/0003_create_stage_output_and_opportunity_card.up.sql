-- One row per finished stage of a run, and one per opportunity card of its report.
CREATE TABLE "StageOutput" (
    id             bigint      GENERATED ALWAYS AS IDENTITY,
    "runId"        text        NOT NULL,
    "stageNumber"  integer     NOT NULL,
    output         jsonb       NOT NULL,
    attempt        integer     NOT NULL,
    "startedAt"    timestamptz,
    "completedAt"  timestamptz,
    "durationMs"   integer,
    "createdAt"    timestamptz NOT NULL DEFAULT now(),
    "updatedAt"    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT "StageOutput_pkey" PRIMARY KEY (id),
    CONSTRAINT "StageOutput_runId_fkey"
        FOREIGN KEY ("runId") REFERENCES "PipelineRun" (id) ON DELETE CASCADE,
    CONSTRAINT "StageOutput_stageNumber_check" CHECK ("stageNumber" BETWEEN 1 AND 5),
    CONSTRAINT "StageOutput_runId_stageNumber_key" UNIQUE ("runId", "stageNumber")
);

CREATE TABLE "OpportunityCard" (
    id           bigint      GENERATED ALWAYS AS IDENTITY,
    "runId"      text        NOT NULL,
    number       integer     NOT NULL,
    title        text        NOT NULL,
    content      text        NOT NULL,
    attempt      integer     NOT NULL,
    "createdAt"  timestamptz NOT NULL DEFAULT now(),
    "updatedAt"  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT "OpportunityCard_pkey" PRIMARY KEY (id),
    CONSTRAINT "OpportunityCard_runId_fkey"
        FOREIGN KEY ("runId") REFERENCES "PipelineRun" (id) ON DELETE CASCADE,
    CONSTRAINT "OpportunityCard_number_check" CHECK (number BETWEEN 1 AND 5),
    CONSTRAINT "OpportunityCard_runId_number_key" UNIQUE ("runId", number)
);
