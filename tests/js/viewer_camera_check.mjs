// The viewer's page layout in headless Chromium at a given window size: camera presets, status line, sound overlay.
//
// Usage: node tests/js/viewer_camera_check.mjs --url http://127.0.0.1:PORT/ --out DIR
//            [--width 1280] [--height 720] [--chromium /usr/bin/chromium] [--timeout-s 90]
//
// Chromium runs with its default autoplay policy (sound needs a click), as a user's browser would. The script
// waits until the avatar is loaded and frames are applied, then reports, as one JSON object on stdout:
//   blocked: {audio, overlay: {visible, text, box}} before any click (DIR/camera_blocked.png);
//   face / body: {preset, head (the head's screen box), status: {box, scrollWidth, clientWidth,
//                 scrollHeight, clientHeight, text}} with each camera preset (DIR/camera_face.png, camera_body.png);
//   unblocked: {audio, overlayVisible} after one click on the overlay;
//   viewport, consoleErrors.
// Exit code 0 when it got that far, 2 on usage errors, 1 otherwise (message on stderr).
import { mkdtemp, rm, mkdir } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const url = arg("url");
const outDir = arg("out");
const width = Number(arg("width", "1280"));
const height = Number(arg("height", "720"));
const timeoutMs = 1000 * Number(arg("timeout-s", "90"));
const executablePath = arg("chromium", "/usr/bin/chromium");
if (!url || !outDir) {
  console.error("usage: node viewer_camera_check.mjs --url URL --out DIR [--width W] [--height H]");
  process.exit(2);
}
// As viewer_check.mjs, but without --autoplay-policy: the page must ask for the click itself.
const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--disable-default-apps", "--disable-extensions", "--metrics-recording-only", "--no-default-browser-check",
  "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
];

const userDataDir = await mkdtemp(path.join(os.tmpdir(), "chatanyone-chromium-"));
let context;
try {
  await mkdir(outDir, { recursive: true });
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath, headless: true, args: ARGS, viewport: { width, height }, timeout: 60000,
  });
  const page = context.pages()[0] || (await context.newPage());
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  await page.goto(url, { waitUntil: "load", timeout: 30000 });
  await page.waitForFunction(() => {
    const s = window.chatanyoneViewer;
    return s && s.framesApplied > 5 && /bones/.test(s.avatarInfo) && window.chatanyoneViewerProbe.head()
      && /blocked/.test(s.audio);
  }, null, { timeout: timeoutMs, polling: 100 });
  await page.waitForTimeout(400); // one status refresh (every 250 ms)

  const overlay = () => page.evaluate(() => {
    const el = document.getElementById("sound");
    const r = el.getBoundingClientRect();
    return { visible: !el.hidden && r.width > 0 && r.height > 0, text: el.textContent.trim(),
      box: { x: r.x, y: r.y, width: r.width, height: r.height } };
  });
  const report = { viewport: { width, height }, consoleErrors };
  report.blocked = { audio: await page.evaluate(() => window.chatanyoneViewer.audio), overlay: await overlay() };
  await page.screenshot({ path: path.join(outDir, "camera_blocked.png") });

  // One click anywhere on the overlay enables the sound.
  await page.mouse.click(width / 2, height / 2);
  await page.waitForFunction(() => window.chatanyoneViewer.audio === "playing", null, { timeout: 20000 });
  report.unblocked = { audio: await page.evaluate(() => window.chatanyoneViewer.audio),
    overlayVisible: (await overlay()).visible };

  const layout = () => page.evaluate(() => {
    const el = document.getElementById("status");
    const r = el.getBoundingClientRect();
    return { preset: window.chatanyoneViewerProbe.camera(), head: window.chatanyoneViewerProbe.head(),
      status: { box: { x: r.x, y: r.y, width: r.width, height: r.height }, text: el.textContent,
        scrollWidth: el.scrollWidth, clientWidth: el.clientWidth,
        scrollHeight: el.scrollHeight, clientHeight: el.clientHeight } };
  });
  for (const preset of ["face", "body"]) {
    await page.click(`[data-camera="${preset}"]`);
    await page.waitForTimeout(600);
    report[preset] = await layout();
    await page.screenshot({ path: path.join(outDir, `camera_${preset}.png`) });
  }
  process.stdout.write(JSON.stringify(report) + "\n");
} catch (e) {
  console.error(`viewer_camera_check failed: ${e && e.stack ? e.stack : e}`);
  process.exitCode = 1;
} finally {
  if (context) await context.close();
  await rm(userDataDir, { recursive: true, force: true });
}
