DROP INDEX IF EXISTS "PipelineRun_status_createdAt_idx";
ALTER TABLE "PipelineRun" DROP COLUMN IF EXISTS "lastInterruption";
