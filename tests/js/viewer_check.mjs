// Drive the ChatAnyone viewer in headless Chromium (playwright-core + Debian's chromium) and report as JSON.
//
// Usage: node tests/js/viewer_check.mjs --url http://127.0.0.1:PORT/ --out DIR
//            [--min-frames 20] [--timeout-s 90] [--chromium /usr/bin/chromium] [--pick AVATAR.glb]
//
// Loads the page, waits until the avatar is loaded and more than --min-frames stream frames were applied,
// takes two screenshots of the avatar's screen region 0.5 s apart (DIR/viewer_a.png, DIR/viewer_b.png,
// DIR/viewer_page.png) and compares them pixel by pixel (decoded by the browser in a blank page).
// With --pick, it then loads that file through the page's file picker, waits until frames are applied to
// it and reports {picked: {state, pose}} too (DIR/viewer_picked.png).
// Prints one JSON object on stdout: {state, pose, region, diff: {changed, meanAbs, pixels, avatarPixels},
// webgl, consoleErrors, foreignRequests, picked}. Exit code 0 when it got that far, 2 on usage errors, 1 otherwise (message on stderr).
import { mkdtemp, rm, writeFile, mkdir } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const url = arg("url");
const outDir = arg("out");
const minFrames = Number(arg("min-frames", "20"));
const timeoutMs = 1000 * Number(arg("timeout-s", "90"));
const executablePath = arg("chromium", "/usr/bin/chromium");
const pick = arg("pick");
if (!url || !outDir) {
  console.error("usage: node viewer_check.mjs --url URL --out DIR [--min-frames N] [--timeout-s S] [--chromium PATH]");
  process.exit(2);
}

// No background traffic, no first-run UI, no sync, no component updates; WebGL through ANGLE's SwiftShader
// (software; Chromium >= 137 wants --enable-unsafe-swiftshader for it), audio allowed without a click.
const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--disable-default-apps", "--disable-extensions", "--metrics-recording-only", "--no-default-browser-check",
  "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--autoplay-policy=no-user-gesture-required",
];
const BACKGROUND = [0x20, 0x24, 0x2b]; // the viewer's scene background

const userDataDir = await mkdtemp(path.join(os.tmpdir(), "chatanyone-chromium-"));
let context;
try {
  await mkdir(outDir, { recursive: true });
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath, headless: true, args: ARGS, viewport: { width: 960, height: 720 }, timeout: 60000,
  });
  const page = context.pages()[0] || (await context.newPage());
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));

  await page.goto(url, { waitUntil: "load", timeout: 30000 });
  try {
    await page.waitForFunction((n) => {
      const s = window.chatanyoneViewer;
      return s && s.framesApplied > n && /bones/.test(s.avatarInfo) && window.chatanyoneViewerProbe.region();
    }, minFrames, { timeout: timeoutMs, polling: 100 });
  } catch (e) {
    const state = await page.evaluate(() => window.chatanyoneViewer).catch(() => null);
    const status = await page.textContent("#status").catch(() => "");
    throw new Error(`viewer did not get going: ${e.message.split("\n")[0]}; status: ${status}; `
      + `state: ${JSON.stringify(state)}; console: ${JSON.stringify(consoleErrors)}`);
  }
  const webgl = await page.evaluate(() => {
    const gl = document.querySelector("canvas").getContext("webgl2");
    const ext = gl && gl.getExtension("WEBGL_debug_renderer_info");
    return gl ? (ext ? gl.getParameter(ext.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER)) : null;
  });
  const region = await page.evaluate(() => window.chatanyoneViewerProbe.region());
  const shotA = await page.screenshot({ clip: region });
  const t0 = Date.now();
  await page.waitForTimeout(500);
  const shotB = await page.screenshot({ clip: region });
  const gapMs = Date.now() - t0;
  const pose = await page.evaluate(() => window.chatanyoneViewerProbe.pose());
  const state = await page.evaluate(() => ({ ...window.chatanyoneViewer, header: undefined }));
  const status = await page.textContent("#status");
  const full = await page.screenshot();
  await writeFile(path.join(outDir, "viewer_a.png"), shotA);
  await writeFile(path.join(outDir, "viewer_b.png"), shotB);
  await writeFile(path.join(outDir, "viewer_page.png"), full);

  // Decode both PNGs in a blank page (no CSP) and compare them.
  const cmp = await context.newPage();
  const result = await cmp.evaluate(async ({ a, b, bg }) => {
    async function pixels(b64) {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const bmp = await createImageBitmap(new Blob([bytes], { type: "image/png" }));
      const c = new OffscreenCanvas(bmp.width, bmp.height);
      const g = c.getContext("2d");
      g.drawImage(bmp, 0, 0);
      return g.getImageData(0, 0, bmp.width, bmp.height);
    }
    const A = await pixels(a);
    const B = await pixels(b);
    if (A.width !== B.width || A.height !== B.height) return { error: "screenshots differ in size" };
    let changed = 0, sumAbs = 0, avatar = 0;
    const n = A.width * A.height;
    for (let i = 0; i < n; i++) {
      let d = 0, fromBg = 0;
      for (let k = 0; k < 3; k++) {
        const v = Math.abs(A.data[4 * i + k] - B.data[4 * i + k]);
        d = Math.max(d, v);
        sumAbs += v;
        fromBg = Math.max(fromBg, Math.abs(A.data[4 * i + k] - bg[k]));
      }
      if (d > 8) changed += 1;
      if (fromBg > 24) avatar += 1;
    }
    return { width: A.width, height: A.height, pixels: n, changed: changed / n, meanAbs: sumAbs / (3 * n),
             avatarPixels: avatar / n };
  }, { a: shotA.toString("base64"), b: shotB.toString("base64"), bg: BACKGROUND });
  await cmp.close();

  let picked = null;
  if (pick) {
    const before = await page.evaluate(() => window.chatanyoneViewer.framesApplied);
    await page.setInputFiles("#avatar-file", pick);
    const name = path.basename(pick);
    await page.waitForFunction(({ name, before }) => {
      const s = window.chatanyoneViewer;
      return s.avatar === name && /bones/.test(s.avatarInfo) && s.framesApplied > before + 5;
    }, { name, before }, { timeout: timeoutMs, polling: 100 });
    await page.screenshot({ path: path.join(outDir, "viewer_picked.png") });
    picked = await page.evaluate(() => ({ state: { ...window.chatanyoneViewer, header: undefined },
      pose: window.chatanyoneViewerProbe.pose() }));
  }

  const foreign = requests.filter((r) => !r.startsWith(new URL(url).origin) && !r.startsWith("blob:")
    && !r.startsWith("data:"));
  process.stdout.write(JSON.stringify({ state, status, pose, region, gapMs, diff: result, webgl,
    consoleErrors, requests: requests.length, foreignRequests: foreign, picked }, null, 2) + "\n");
} catch (e) {
  console.error(`viewer check failed: ${e && e.message ? e.message : e}`);
  process.exitCode = 1;
} finally {
  if (context) await context.close().catch(() => {});
  await rm(userDataDir, { recursive: true, force: true });
}
