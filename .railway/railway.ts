// The Innovation Pipeline Runner on Railway: every service, setting and variable, in one file.
//
// Format: Railway Infrastructure as Code (`railway config plan` / `railway config apply`), as
// documented in railwayapp/docs content/docs/infrastructure-as-code.md and
// infrastructure-as-code/reference.md (docs commit c2a634f, 2026-08-21), typed by the SDK package
// `railway` 3.11.0 (`railway/iac`; needs Railway CLI >= 5.42.1). Deploy settings the DSL has no
// shorthand for (builder, draining, cron schedule, restart policy) use the SDK's `deploy` and
// `build` objects (its DeployConfig and BuildConfig types). CI type-checks this file with that
// exact package and evaluates it (tests/integration/test_railway_iac.py, .railway/check.ts).
//
// Railway stops reading railway.json / railway.toml on 2026-12-01: this repository has neither.
//
// Secrets are not in this file: each is an environment's shared variable (Project Settings ->
// Shared Variables, or `railway variables`), referenced here as ctx.shared.NAME (compiles to
// ${{shared.NAME}}), so the three services always agree and `plan` never prints a secret.
//
// The image's ENTRYPOINT (docker/entrypoint.sh) gives the volume to the app user and drops root.
// On Railway a custom start command REPLACES the image's ENTRYPOINT, so every command set here
// starts with it; the web service sets none and runs the image's ENTRYPOINT + CMD.
import { defineRailway, postgres, project, service, volume } from "railway/iac";

const ENTRYPOINT = "/app/docker/entrypoint.sh";
const DRAINING_SECONDS = 60; // SIGTERM -> SIGKILL; runs stop after their current stage within it

const dockerfile = { builder: "DOCKERFILE", dockerfilePath: "Dockerfile" } as const;

export default defineRailway((ctx) => {
  const db = postgres("Postgres");

  // Deployment shape (docs/runbook.md, 1.3): one web replica WITH a volume accepts webhooks, and
  // journals them there during a database outage (202, replayed later); worker replicas WITHOUT
  // a volume claim and run. To run several web replicas instead, drop the web's volumeMounts and
  // raise its replicas: its OUTPUT_DIR is then ephemeral and webhooks during an outage answer 503
  // with Retry-After (the sender retries) instead of 202.
  // The volume holds run files, the spool and host state (OUTPUT_DIR defaults to
  // $RAILWAY_VOLUME_MOUNT_PATH/outputs). A volume attaches to one service instance.
  const data = volume("runner-data", { sizeMB: 5120 });

  // What every service reads (config/settings.py parses each once; docs/runbook.md section 2).
  const common = {
    DATABASE_URL: db.env.DATABASE_URL, // the private-network URL
    ENABLE_DATABASE_WRITES: "true",
    ENABLE_FILE_FALLBACK: "true", // DUAL_WRITE; set "false" for DATABASE_ONLY after a green week
    WEBHOOK_SECRET: ctx.shared.WEBHOOK_SECRET, // whsec_<base64>, the frontend signs with it
    API_TOKEN: ctx.shared.API_TOKEN, // bearer token of the status API
    BLOB_READ_WRITE_TOKEN: ctx.shared.BLOB_READ_WRITE_TOKEN, // private Vercel Blob documents
    OPENROUTER_API_KEY: ctx.shared.OPENROUTER_API_KEY, // unset shared variable: offline engine
    PIPELINE_ENGINE: "auto",
    LLM_MODEL: "google/gemini-2.5-flash", // config/settings.py DEFAULT_LLM_MODEL
    MAX_CONCURRENT_RUNS: "2",
    RUN_LEASE_SECONDS: "60",
    MAX_RUN_ATTEMPTS: "3",
    LOG_LEVEL: "INFO",
    // Runs execute on the worker service; the web service only records and answers.
    RUN_DISPATCH: "workers",
  };

  const web = service("web", {
    build: dockerfile,
    // No start command: the image's ENTRYPOINT + CMD (gunicorn as PID 1, as the app user).
    preDeploy: `${ENTRYPOINT} python -m persistence.migrate up`, // no volume there; may fail the deploy
    healthcheck: "/health", // called only while a deploy goes live; 200 when healthy or degraded
    healthcheckTimeout: 120,
    replicas: 1, // a service with a volume cannot be replicated
    deploy: { drainingSeconds: DRAINING_SECONDS, restartPolicyType: "ON_FAILURE", restartPolicyMaxRetries: 10 },
    volumeMounts: { "/data": data },
    env: {
      ...common,
      PORT: "8000", // fixed, so the cron service can reach http://<private domain>:8000
      WEB_CONCURRENCY: "2",
    },
  });

  const cron = service("cron", {
    build: dockerfile,
    // Must exit: Railway skips a tick while the previous execution still runs.
    start: `${ENTRYPOINT} sh -c 'exec python -m handlers.cron all --url "http://$WEB_PRIVATE_DOMAIN:8000"'`,
    deploy: { cronSchedule: "*/5 * * * *", restartPolicyType: "NEVER" }, // a failed check is the alarm
    env: {
      ...common,
      WEB_PRIVATE_DOMAIN: web.env.RAILWAY_PRIVATE_DOMAIN,
    },
  });

  const worker = service("worker", {
    build: dockerfile,
    // Claims QUEUED runs from PostgreSQL (SKIP LOCKED, leases, fencing) and runs each in a child;
    // MAX_CONCURRENT_RUNS per replica. No volume: its disk is a cache (spool during an outage),
    // and a run lost with its container resumes on another replica from what PostgreSQL holds.
    start: `${ENTRYPOINT} python -m handlers.dispatcher`,
    replicas: 2,
    deploy: { drainingSeconds: DRAINING_SECONDS, restartPolicyType: "ALWAYS" },
    env: {
      ...common,
      ENABLE_FILE_FALLBACK: "false", // DATABASE_ONLY: a file mirror on a disk that vanishes would be a lie
    },
  });

  return project("innovation-pipeline-runner", {
    resources: [db, data, web, cron, worker],
  });
});
