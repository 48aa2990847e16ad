"""The viewer page at 1280 x 720 in headless Chromium with the browser's default autoplay policy, served by
``chatanyone serve`` with our default VRM avatar (tests/js/viewer_camera_check.mjs):

* a page-wide "click to enable sound" overlay while the browser blocks audio, gone after one click, after
  which the audio plays;
* the status line is never cut off: it wraps inside its box, nothing overflows, all of it inside the window;
* the "face" camera preset (the default: head and shoulders) shows the head large enough to read the lips,
  the "upper body" preset a smaller head with room for the gestures.

Screenshots are kept in ``tests/artifacts/viewer/camera_*.png`` (git-ignored).
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.bridge.test_viewer import ARTIFACTS, CHROMIUM, JS, ServeProcess, make_clip

WIDTH, HEIGHT = 1280, 720


pytestmark = pytest.mark.slow   # one headless Chromium session for the module (~20 s)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    if shutil.which("node") is None or not (JS / "node_modules" / "playwright-core").is_dir():
        pytest.skip("node / playwright-core missing: run `npm ci --prefix tests/js`")
    clip_path = make_clip(tmp_path_factory.mktemp("camera"))
    server = ServeProcess(str(clip_path), "--port", "0", "--ws-port", "0")
    try:
        out = subprocess.run(["node", str(JS / "viewer_camera_check.mjs"), "--url", server.url, "--out", str(ARTIFACTS),
                              "--width", str(WIDTH), "--height", str(HEIGHT), "--chromium", CHROMIUM,
                              "--timeout-s", "150"], capture_output=True, text=True, timeout=300)
    finally:
        server.stop()
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    print(json.dumps({k: r[k] for k in ("blocked", "unblocked", "face", "body")}, indent=1))
    return r


def test_sound_overlay_asks_for_the_click_and_goes_away(report):
    blocked = report["blocked"]
    assert "blocked" in blocked["audio"]
    o = blocked["overlay"]
    assert o["visible"] and "enable sound" in o["text"].lower()
    assert o["box"]["width"] >= 0.9 * WIDTH and o["box"]["height"] >= 0.9 * HEIGHT     # page-wide: any click
    assert report["unblocked"] == {"audio": "playing", "overlayVisible": False}
    assert report["consoleErrors"] == []


def test_status_line_is_not_cut_off(report):
    for preset in ("face", "body"):
        s = report[preset]["status"]
        assert s["scrollWidth"] <= s["clientWidth"] + 1 and s["scrollHeight"] <= s["clientHeight"] + 1, s
        box = s["box"]
        assert box["x"] >= 0 and box["x"] + box["width"] <= WIDTH and box["y"] >= 0, s
        for part in ("stream 30 fps", "frames", "dropped", "audio playing", "avatar avatar.vrm", "52 ARKit"):
            assert part in s["text"], (part, s["text"])


def test_face_preset_shows_a_readable_face_and_body_preset_the_gestures(report):
    face, body = report["face"], report["body"]
    assert face["preset"] == "face" and body["preset"] == "body"
    fh, bh = face["head"], body["head"]
    # head and shoulders: the head (chin to crown, ~0.23 m) takes at least 30 % of the window's height, so the
    # mouth (~5 cm) spans more than 40 px; all of it on screen
    assert fh["height"] >= 0.30 * HEIGHT, fh
    assert fh["y"] >= 0 and fh["y"] + fh["height"] <= HEIGHT and fh["x"] >= 0 and fh["x"] + fh["width"] <= WIDTH
    assert 1.5 * bh["height"] <= fh["height"], (fh, bh)          # upper body: a wider view
    assert bh["y"] >= 0
