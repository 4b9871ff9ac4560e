-- The LLM engine's stage cache: stages 1-3 depend only on the document (and model, prompt
-- version, language), so a second brand on the same report reuses them. "key" is the SHA-256
-- of all of that plus the stage's inputs (pipeline/stage_cache.py); the first entry wins.
CREATE TABLE "StageCache" (
    key text PRIMARY KEY CHECK (key ~ '^[0-9a-f]{64}$'),
    stage smallint NOT NULL CHECK (stage BETWEEN 1 AND 3),
    model text NOT NULL,
    output jsonb NOT NULL,
    usage jsonb NOT NULL DEFAULT '{}'::jsonb,
    "createdAt" timestamp(3) with time zone NOT NULL DEFAULT now()
);

-- What a run's LLM calls cost, on the run row: totals to query and sum, the per-stage detail,
-- which engine and model wrote it, and which stages came from the cache. NULL without an LLM.
ALTER TABLE "PipelineRun"
    ADD COLUMN engine text,
    ADD COLUMN model text,
    ADD COLUMN "llmCalls" integer,
    ADD COLUMN "promptTokens" integer,
    ADD COLUMN "completionTokens" integer,
    ADD COLUMN "cachedTokens" integer,
    ADD COLUMN "costUsd" numeric(14, 8),
    ADD COLUMN usage jsonb,
    ADD COLUMN "cachedStages" smallint[];
