// Load our exports in three.js inside headless Chromium and report what three.js made of them.
//
// Usage: node tests/js/threejs_check.mjs SPEC.json
//   SPEC = {"glb": "a.glb", "vrm": "avatar.vrm", "vrma": "a.vrma", "out": "DIR",
//           "glbTimes": [0.0, 3.0], "vrmTimes": [0.0, 3.0], "chromium": "/usr/bin/chromium"}
// Bundles threejs_page.mjs with esbuild, serves it and the files from a local HTTP server (127.0.0.1, a free
// port), opens it in Chromium (playwright-core, a fresh profile, WebGL through SwiftShader), then per time:
// poses the avatar, renders and saves OUT/glb_<i>.png / OUT/vrm_<i>.png (the canvas). Prints one JSON object
// on stdout: {"webgl", "glb": {load info, "frames": [...]}, "vrm": {...}, "console": [...]}.
// Exit code 0 when the report was printed; 2 on any failure (message on stderr).
import { readFile, mkdtemp, rm, mkdir } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { chromium } from "playwright-core";

const HERE = dirname(fileURLToPath(import.meta.url));
const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  // WebGL without a GPU: ANGLE on SwiftShader (software). Chromium >= 139 wants the opt-in flag.
  "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
];
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".glb": "model/gltf-binary",
  ".vrm": "model/gltf-binary", ".vrma": "model/gltf-binary" };

async function main() {
  const spec = JSON.parse(await readFile(process.argv[2], "utf8"));
  await mkdir(spec.out, { recursive: true });
  const work = await mkdtemp(join(tmpdir(), "threejs-check-"));
  let browser = null;
  let server = null;
  try {
    await build({
      entryPoints: [join(HERE, "threejs_page.mjs")], bundle: true, format: "esm", target: "es2020",
      outfile: join(work, "threejs_page.bundle.js"), logLevel: "error", absWorkingDir: HERE,
    });
    const routes = {
      "/": [join(HERE, "threejs_check.html"), ".html"],
      "/threejs_page.bundle.js": [join(work, "threejs_page.bundle.js"), ".js"],
    };
    for (const key of ["glb", "vrm", "vrma"]) if (spec[key]) routes[`/files/${key}`] = [spec[key], `.${key}`];
    server = createServer(async (req, res) => {
      const route = routes[new URL(req.url, "http://x").pathname];
      if (!route) { res.writeHead(404).end(); return; }
      try {
        const body = await readFile(route[0]);
        res.writeHead(200, { "Content-Type": TYPES[route[1]], "Cache-Control": "no-store" }).end(body);
      } catch (e) { res.writeHead(500).end(String(e)); }
    });
    await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
    const url = `http://127.0.0.1:${server.address().port}/`;

    browser = await chromium.launchPersistentContext(join(work, "profile"), {
      executablePath: spec.chromium || "/usr/bin/chromium", headless: true, args: CHROMIUM_ARGS,
      viewport: { width: 480, height: 480 }, deviceScaleFactor: 1,
    });
    const page = browser.pages()[0] || await browser.newPage();
    const consoleLines = [];
    const errors = [];
    page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(url);
    await page.waitForFunction(() => window.checkReady === true, null, { timeout: 60000 });
    const report = { webgl: await page.evaluate(() => window.check.webgl()), console: consoleLines };
    const canvas = page.locator("#view");
    for (const [key, load, show] of [["glb", "loadGLB", "showGLB"], ["vrm", "loadVRM", "showVRM"]]) {
      if (!spec[key]) continue;
      const args = key === "glb" ? ["/files/glb"] : ["/files/vrm", "/files/vrma"];
      const info = await page.evaluate(([fn, a]) => window.check[fn](...a), [load, args]);
      info.frames = [];
      for (const [i, t] of (spec[`${key}Times`] || []).entries()) {
        const frame = await page.evaluate(([fn, s]) => window.check[fn](s), [show, t]);
        frame.time = t;
        frame.screenshot = join(spec.out, `${key}_${i}.png`);
        await canvas.screenshot({ path: frame.screenshot });
        info.frames.push(frame);
      }
      if (spec[`${key}Sweep`]) { // every listed time, no screenshot: the largest morph influence and where
        info.sweep = await page.evaluate(([fn, ts]) => {
          let max = -Infinity, at = null;
          for (const t of ts) window.check[fn](t).morphs.forEach((w, i) => { if (w > max) { max = w; at = [t, i]; } });
          return { max, at, count: ts.length };
        }, [show, spec[`${key}Sweep`]]);
      }
      report[key] = info;
    }
    if (errors.length) throw new Error(`page errors: ${errors.join(" | ")}`);
    process.stdout.write(JSON.stringify(report) + "\n");
  } finally {
    if (browser) await browser.close();
    if (server) server.close();
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`threejs_check failed: ${e && e.stack ? e.stack : e}`);
  process.exit(2);
});
