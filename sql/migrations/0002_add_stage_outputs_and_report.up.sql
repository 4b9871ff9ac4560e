-- Stage 1-4 outputs and the final report on the run row, where the frontend reads them.
-- Stage 5 lives in "StageOutput" and "OpportunityCard".
ALTER TABLE "PipelineRun"
    ADD COLUMN "stage1Output"       jsonb,
    ADD COLUMN "stage2Output"       jsonb,
    ADD COLUMN "stage3Output"       jsonb,
    ADD COLUMN "stage4Output"       jsonb,
    ADD COLUMN "fullReportMarkdown" text;
