DROP TABLE "PipelineRun";
