// Validate one glTF/GLB file with the Khronos glTF-Validator and print its JSON report to stdout.
// Usage: node tests/js/validate.mjs path/to/file.glb
// Exit code: 0 when the report was printed (inspect report.issues.numErrors), 2 on usage/IO errors.
import { readFile } from "node:fs/promises";
import validator from "gltf-validator";

const path = process.argv[2];
if (!path) {
  console.error("usage: node validate.mjs FILE.glb");
  process.exit(2);
}
try {
  const bytes = new Uint8Array(await readFile(path));
  const report = await validator.validateBytes(bytes, {
    uri: path,
    maxIssues: 0,
    externalResourceFunction: () => Promise.reject(new Error("external resources are not allowed")),
  });
  process.stdout.write(JSON.stringify(report, null, 2) + "\n");
} catch (err) {
  console.error(`validation failed: ${err && err.message ? err.message : err}`);
  process.exit(2);
}
