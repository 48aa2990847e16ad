// Bundle the viewer into dist/ (committed, shipped as package data: users need no npm and no CDN).
//
//   npm ci --prefix bridge/viewer && node bridge/viewer/build.mjs [--outdir DIR]
//
// dist/index.html         the page (copied from index.html)
// dist/viewer.js          main.js + three + @pixiv/three-vrm + @msgpack/msgpack, one minified ES module
// dist/THIRD_PARTY_LICENSES.txt   name, version, licence and licence text of every npm package in the bundle
//                                 (found from esbuild's metafile, so the list cannot go stale)
import { mkdir, readFile, writeFile, copyFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const outIndex = args.indexOf("--outdir");
const outdir = outIndex >= 0 ? path.resolve(args[outIndex + 1]) : path.join(here, "dist");

const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: ["main.js"],
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: true,
  legalComments: "eof",
  charset: "utf8",
  metafile: true,
  write: false,
  outfile: path.join(outdir, "viewer.js"),
  logLevel: "warning",
});

// Packages that made it into the bundle: node_modules/<name> or node_modules/@scope/<name>.
const packages = new Set();
for (const input of Object.keys(result.metafile.inputs)) {
  const m = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
  if (m) packages.add(m[1]);
}
if (packages.size === 0) throw new Error("no npm package in the bundle: run npm ci in bridge/viewer first");

const LICENCE_FILES = ["LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE", "license", "license.md"];
const sections = [];
for (const name of [...packages].sort()) {
  const dir = path.join(here, "node_modules", name);
  const pkg = JSON.parse(await readFile(path.join(dir, "package.json"), "utf8"));
  const file = LICENCE_FILES.map((f) => path.join(dir, f)).find((f) => existsSync(f));
  if (!file) throw new Error(`${name} has no licence file: cannot ship it`);
  const text = (await readFile(file, "utf8")).trim();
  sections.push(`${"=".repeat(78)}\n${pkg.name} ${pkg.version} (${pkg.license})\n${"=".repeat(78)}\n\n${text}\n`);
}
const licences = "Third-party software bundled in viewer.js\n\n"
  + "The ChatAnyone viewer (bridge/viewer/main.js) is part of chatanyone-bridge (Apache-2.0). viewer.js also\n"
  + "contains the following npm packages, under the licences reproduced below.\n\n" + sections.join("\n");

await mkdir(outdir, { recursive: true });
for (const f of result.outputFiles) await writeFile(f.path, f.contents);
await copyFile(path.join(here, "index.html"), path.join(outdir, "index.html"));
await writeFile(path.join(outdir, "THIRD_PARTY_LICENSES.txt"), licences);
const size = result.outputFiles.reduce((n, f) => n + f.contents.byteLength, 0);
console.log(`wrote ${outdir} (viewer.js ${(size / 1e6).toFixed(2)} MB; ${packages.size} packages: ${[...packages].sort().join(", ")})`);
