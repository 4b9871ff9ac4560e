ALTER TABLE "PipelineRun"
    DROP COLUMN IF EXISTS "cachedStages",
    DROP COLUMN IF EXISTS usage,
    DROP COLUMN IF EXISTS "costUsd",
    DROP COLUMN IF EXISTS "cachedTokens",
    DROP COLUMN IF EXISTS "completionTokens",
    DROP COLUMN IF EXISTS "promptTokens",
    DROP COLUMN IF EXISTS "llmCalls",
    DROP COLUMN IF EXISTS model,
    DROP COLUMN IF EXISTS engine;
DROP TABLE IF EXISTS "StageCache";
