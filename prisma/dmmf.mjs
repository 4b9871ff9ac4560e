// Validate a Prisma schema with Prisma's own schema engine compiled to WebAssembly (the one
// `prisma format` and `prisma validate` use; nothing to download) and print its DMMF as JSON.
// Usage: node prisma/dmmf.mjs prisma/schema.prisma   (exit 1 with Prisma's message when invalid)
import { readFileSync } from "node:fs";

import * as wasm from "@prisma/prisma-schema-wasm";

const path = process.argv[2] ?? new URL("./schema.prisma", import.meta.url).pathname;
const params = JSON.stringify({ prismaSchema: [["schema.prisma", readFileSync(path, "utf8")]], noColor: true });
try {
  wasm.validate(params);
} catch (error) {
  const detail = typeof error === "string" ? error : error?.message ?? String(error);
  process.stderr.write(`${path} is not a valid Prisma schema:\n${detail}\n`);
  process.exit(1);
}
process.stdout.write(wasm.get_dmmf(params));
