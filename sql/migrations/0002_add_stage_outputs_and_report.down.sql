ALTER TABLE "PipelineRun"
    DROP COLUMN "stage1Output",
    DROP COLUMN "stage2Output",
    DROP COLUMN "stage3Output",
    DROP COLUMN "stage4Output",
    DROP COLUMN "fullReportMarkdown";
