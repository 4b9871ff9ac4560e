// Evaluate .railway/railway.ts the way the Railway CLI does (defineRailway's program called with
// an environment context), check the resource graph with the SDK's own validateGraph, and print
// the resources as JSON for tests/integration/test_railway_iac.py.
// Usage (from .railway/): npx tsx check.ts [environment]   (exit 1 with the problems)
import { createRailwayContext, project, validateGraph } from "railway/iac";
import type { Edge, RailwayGraph, ResourceNode } from "railway/iac";

import program from "./railway.ts";

const environment = process.argv[2] ?? "production";
const definition = await program(createRailwayContext({ command: "plan", environment }), project);
const resources = (definition.resources ?? []).flat() as ResourceNode[];

const edges: Edge[] = [];
for (const resource of resources) {
  if (resource.type !== "service" && resource.type !== "database") continue;
  for (const [key, value] of Object.entries(resource.variables ?? {})) {
    if (value.type === "reference") edges.push({ from: resource.address, to: value.resource, type: "variable", key });
  }
  for (const attachment of Object.values(resource.volumeAttachments ?? {})) {
    edges.push({ from: resource.address, to: attachment.volume, type: "mount", key: attachment.mountPath });
  }
}
const graph: RailwayGraph = { version: 1, project: { name: definition.name }, environments: [{ name: environment }],
  resources, edges };
const problems = validateGraph(graph);
if (problems.length > 0) {
  process.stderr.write(`.railway/railway.ts: ${problems.join("; ")}\n`);
  process.exit(1);
}
process.stdout.write(JSON.stringify(graph));
