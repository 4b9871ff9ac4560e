-- Why a run last went back to QUEUED (its process died, or a redeploy drained it), so the
-- status API and operators can see that a run was resumed and why.
ALTER TABLE "PipelineRun" ADD COLUMN "lastInterruption" text;

-- Dispatchers claim the oldest QUEUED runs first.
CREATE INDEX "PipelineRun_status_createdAt_idx" ON "PipelineRun" (status, "createdAt");
