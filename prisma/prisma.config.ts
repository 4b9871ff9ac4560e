// Prisma configuration for a frontend that shares the runner's PostgreSQL (copy this file to the
// frontend's root, next to its package.json, and prisma/schema.prisma beside it).
//
// Every table in prisma/schema.prisma is created and changed only by the runner's SQL migrations
// (sql/migrations/, applied by the runner's pre-deploy command). Declaring them external makes
// `prisma migrate` leave them alone: it generates no migration for them and never drops or
// resets them. External tables are a Preview feature of Prisma ORM 7 (checked against
// @prisma/config 7.10.1 in tests/integration/test_prisma_schema.py).
import { readFileSync } from "node:fs";

import { defineConfig, env } from "prisma/config";

export default defineConfig({
  schema: "prisma/schema.prisma",
  experimental: { externalTables: true },
  tables: {
    external: [
      "public.PipelineRun",
      "public.StageOutput",
      "public.OpportunityCard",
      "public.StageCache",
      "public.CallbackOutbox",
      "public.runner_schema_migrations",
    ],
  },
  migrations: {
    // The shadow database Prisma diffs against needs the external tables to exist: the runner's
    // sql/schema.sql (copied into the frontend) creates them exactly as production has them.
    initShadowDb: readFileSync("prisma/runner-schema.sql", "utf8"),
  },
  datasource: { url: env("DATABASE_URL") },
});
