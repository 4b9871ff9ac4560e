DROP TABLE "OpportunityCard";
DROP TABLE "StageOutput";
