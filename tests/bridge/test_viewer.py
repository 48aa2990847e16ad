"""The browser viewer (bridge/viewer) and ``chatanyone serve`` (bridge/serve.py).

* the committed bundle (``bridge/viewer/dist``) is present, loads nothing from a CDN, carries the licences,
  and is what ``build.mjs`` makes from the pinned npm packages;
* the HTTP routes serve exactly the viewer, config, avatar and audio (token-protected when asked);
* bad input to ``chatanyone serve`` is one line and exit code 2;
* headless Chromium (Debian ``chromium`` + ``playwright-core``) loads the page served by ``chatanyone serve``,
  receives frames, shows the clip's exact expression weights and bone rotations on the procedural VRM,
  plays the audio, and two screenshots 0.5 s apart differ in the avatar's region. The screenshots are kept
  in ``tests/artifacts/viewer/`` (gitignored).
"""
from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.spatial.transform import Rotation

from bridge import serve
from exporters import glb
from motion.clip import MotionClip
from motion.conventions import ARKIT_INDEX, ARKIT_NAMES, JOINT_INDEX, SMPLX_JOINT_NAMES, SMPLX_TO_VRM
from tests.conftest import REPO

VIEWER = REPO / "bridge" / "viewer"
DIST = VIEWER / "dist"
JS = REPO / "tests" / "js"
ARTIFACTS = REPO / "tests" / "artifacts" / "viewer"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CDN_HOSTS = ("unpkg.com", "jsdelivr", "cdnjs", "esm.sh", "skypack", "googleapis", "gstatic", "jspm", "cdn.")


def make_clip(tmp: Path, seconds: float = 3.0) -> Path:
    """A clip with large, known motion (jaw, blink, head yaw, arms) and a tone as its audio: ``clip.npz``."""
    fps = 30.0
    t = np.arange(int(seconds * fps)) / fps
    face = np.zeros((len(t), 52), np.float32)
    face[:, ARKIT_INDEX["jawOpen"]] = 0.5 + 0.5 * np.sin(2 * np.pi * 1.5 * t)
    face[:, ARKIT_INDEX["eyeBlinkLeft"]] = np.sin(2 * np.pi * 0.7 * t) > 0.8
    face[:, ARKIT_INDEX["mouthSmileRight"]] = 0.3 + 0.3 * np.cos(2 * np.pi * t)
    rot = np.zeros((len(t), 55, 4), np.float32)
    rot[..., 3] = 1
    rot[:, JOINT_INDEX["head"]] = Rotation.from_euler("y", 0.5 * np.sin(2 * np.pi * 0.8 * t)[:, None]).as_quat()
    arm = -1.1 + 0.4 * np.sin(2 * np.pi * t)
    rot[:, JOINT_INDEX["left_shoulder"]] = Rotation.from_euler("z", arm[:, None]).as_quat()
    rot[:, JOINT_INDEX["right_shoulder"]] = Rotation.from_euler("z", -arm[:, None]).as_quat()
    rot[:, JOINT_INDEX["spine3"]] = Rotation.from_euler("x", 0.1 * np.sin(2 * np.pi * 0.5 * t)[:, None]).as_quat()
    sr = 16000
    wav = tmp / "tone.wav"
    sf.write(wav, 0.2 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * sr)) / sr), sr)
    path = tmp / "clip.npz"
    MotionClip(fps, face, rot, None, {"audio_source": str(wav), "audio_offset_s": 0.0}).save(path)
    return path


# --------------------------------------------------------------------------------------------------
# The committed bundle
# --------------------------------------------------------------------------------------------------
def test_dist_is_present_self_contained_and_licensed():
    for name in ("index.html", "viewer.js", "THIRD_PARTY_LICENSES.txt"):
        assert (DIST / name).is_file(), f"{name} missing: run node bridge/viewer/build.mjs"
    html = (DIST / "index.html").read_text()
    # Every script/link/img the page loads is relative (served by `chatanyone serve`), and the CSP forbids others.
    for ref in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert not re.match(r"(?:https?:)?//", ref), ref
    assert "script-src 'self'" in html and "default-src 'self'" in html
    js = (DIST / "viewer.js").read_text()
    urls = set(re.findall(r"https?://[^\s\"'`)]+", js))
    assert not [u for u in urls if any(h in u for h in CDN_HOSTS)], urls
    # No dynamic import or script injection from a URL.
    assert not re.search(r"import\(\s*[\"'`]https?:", js)
    assert '<script type="module" src="viewer.js">' in html
    lic = (DIST / "THIRD_PARTY_LICENSES.txt").read_text()
    for pkg, text in (("three", "Permission is hereby granted"), ("@pixiv/three-vrm", "Permission is hereby granted"),
                      ("@msgpack/msgpack", "Permission to use, copy, modify, and/or distribute")):
        section = re.search(rf"^{re.escape(pkg)} \S+ \((MIT|ISC)\)\n=+\n(.*?)(?:\n=====|\Z)", lic, re.M | re.S)
        assert section, f"no licence section for {pkg}"
        assert text in section.group(2)
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "viewer/dist/*" in data.get("bridge", [])


def test_dist_is_what_build_mjs_makes(tmp_path):
    """The committed bundle is reproducible from main.js, index.html and the pinned packages."""
    if not (VIEWER / "node_modules" / "esbuild").is_dir():
        pytest.skip("viewer build tools not installed: run `npm ci --prefix bridge/viewer`")
    lock = json.loads((VIEWER / "package-lock.json").read_text())["packages"]
    pinned = json.loads((VIEWER / "package.json").read_text())["dependencies"]
    for name, version in pinned.items():
        assert lock[f"node_modules/{name}"]["version"] == version
    out = subprocess.run(["node", str(VIEWER / "build.mjs"), "--outdir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for name in ("index.html", "viewer.js", "THIRD_PARTY_LICENSES.txt"):
        assert (tmp_path / name).read_bytes() == (DIST / name).read_bytes(), \
            f"dist/{name} is stale: run node bridge/viewer/build.mjs"


# --------------------------------------------------------------------------------------------------
# HTTP routes and bad input
# --------------------------------------------------------------------------------------------------
def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


@pytest.mark.parametrize("token", [None, "s3cret"])
def test_http_routes(tmp_path, token):
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(1600, np.float32), 16000)
    config = serve.page_config(8765, True, 0.25)
    http = serve.ViewerHTTPServer(serve.SiteContent(b"glTF-avatar", wav, config, token), "127.0.0.1", 0).start()
    try:
        base = http.url
        q = f"?token={token}" if token else ""
        assert _get(base) == (200, "text/html; charset=utf-8", (DIST / "index.html").read_bytes())
        status, ctype, body = _get(base + "viewer.js")
        assert (status, ctype, body) == (200, "text/javascript; charset=utf-8", (DIST / "viewer.js").read_bytes())
        assert _get(base + "avatar.vrm") == (200, "model/gltf-binary", b"glTF-avatar")
        status, _, body = _get(base + "config.json" + q)
        got = json.loads(body)
        assert status == 200 and got["audio_offset_s"] == 0.25 and got["ws_port"] == 8765
        assert got["smplx_to_vrm"] == SMPLX_TO_VRM and got["audio_url"] == "audio"
        status, ctype, body = _get(base + "audio" + q)
        assert status == 200 and ctype in ("audio/x-wav", "audio/wav") and body == wav.read_bytes()
        if token:
            assert _get(base + "config.json")[0] == 403
            assert _get(base + "audio?token=wrong")[0] == 403
        for path in ("viewer/dist/index.html", "../pyproject.toml", "%2e%2e/pyproject.toml", "main.js", "audio/x"):
            assert _get(base + path)[0] == 404, path
    finally:
        http.close()


def _cli(capsys, *args: str) -> tuple[int, str]:
    """``chatanyone serve ARGS`` in this process: (exit code, stderr)."""
    from chatanyone.cli import main
    code = main(["serve", *args])
    return code, capsys.readouterr().err


def test_serve_bad_input_is_one_line(tmp_path, capsys):
    clip = make_clip(tmp_path, 1.0)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cases = [
            ((str(tmp_path / "missing.npz"),), "does not exist"),
            ((str(tmp_path / "bad.npz"),), "bad.npz"),
            ((str(clip), "--host", "0.0.0.0"), "--token"),
            ((str(clip), "--avatar", str(clip)), "not a binary glTF"),
            ((str(clip), "--port", "70000"), "0..65535"),
            ((str(clip), "--port", str(port), "--ws-port", "0"), f"HTTP port {port} on 127.0.0.1 is in use"),
            ((str(clip), "--port", "0", "--ws-port", str(port)), f"port {port} on 127.0.0.1 is already in use"),
        ]
        for args, message in cases:
            code, err = _cli(capsys, *args)
            assert code == 2, (args, err)
            assert err.startswith("chatanyone: error:") and err.count("\n") == 1 and message in err, (args, err)


# --------------------------------------------------------------------------------------------------
# Headless Chromium
# --------------------------------------------------------------------------------------------------
class ServeProcess:
    """``chatanyone serve`` in a subprocess; ``url`` from its first stdout line."""

    def __init__(self, *args: str):
        # SIGINT back to its default in the child: a test run started in the background (`cmd &` in a
        # non-interactive shell, as some CI runners do) passes SIGINT down as ignored, and Python then
        # installs no KeyboardInterrupt handler, so Ctrl-C would not reach serve
        self.proc = subprocess.Popen([sys.executable, "-m", "chatanyone.cli", "serve", *args, "--quiet"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout=120)
        m = re.search(r"viewer: (http://\S+)", line[0] if line else "")
        if not m:
            self.proc.kill()
            raise AssertionError(f"serve did not start: {line} {self.proc.stderr.read()}")
        self.url = m.group(1)

    def stop(self) -> tuple[int, str]:
        """Ctrl-C; returns (exit code, stderr)."""
        if self.proc.poll() is not None:  # it must still be running when we stop it
            return self.proc.returncode, "exited before Ctrl-C: " + self.proc.stderr.read()
        self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err


def _quat_close(a, b, tol=1e-6) -> bool:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return bool(np.allclose(a, b, atol=tol) or np.allclose(a, -b, atol=tol))


@pytest.mark.slow
def test_viewer_in_headless_chromium(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    if shutil.which("node") is None or not (JS / "node_modules" / "playwright-core").is_dir():
        pytest.skip("node / playwright-core missing: run `npm ci --prefix tests/js`")
    clip_path = make_clip(tmp_path)
    clip = MotionClip.load(clip_path)
    glb_path = glb.write(clip, tmp_path / "mannequin.glb")    # a plain GLB, picked through the file input
    server = ServeProcess(str(clip_path), "--port", "0", "--ws-port", "0")
    try:
        out = subprocess.run(["node", str(JS / "viewer_check.mjs"), "--url", server.url, "--out", str(ARTIFACTS),
                              "--min-frames", "10", "--chromium", CHROMIUM, "--timeout-s", "150",
                              "--pick", str(glb_path)],
                             capture_output=True, text=True, timeout=300)
    finally:
        code, err = server.stop()
    assert out.returncode == 0, out.stderr
    assert code == 0, err                                     # Ctrl-C is a clean stop
    r = json.loads(out.stdout)
    print(json.dumps({k: r[k] for k in ("status", "region", "gapMs", "diff", "webgl")}, indent=1))
    s = r["state"]

    # Connected, header then frames received and applied, nothing from elsewhere, no page errors.
    assert s["connected"] and s["error"] is None
    assert s["framesReceived"] > 30 and s["framesApplied"] > 10
    assert 0 <= s["framesDropped"] < s["framesReceived"]
    assert re.search(r"frames \d+ · dropped \d+", r["status"]) and "stream 30 fps" in r["status"]
    assert r["consoleErrors"] == [] and r["foreignRequests"] == []
    assert r["webgl"], "no WebGL context"
    # The procedural VRM: every ARKit name as an expression, 53 humanoid bones (eyes go through lookAt).
    assert "VRM 1" in s["avatarInfo"] and "52 ARKit expressions" in s["avatarInfo"] and "53 bones" in s["avatarInfo"]
    assert s["audio"] == "playing"

    # What the avatar shows is exactly the frame it says it applied.
    pose = r["pose"]
    seq = pose["seq"]
    assert 0 <= seq < clip.num_frames
    for name in ARKIT_NAMES:
        assert pose["expressions"][name] == pytest.approx(float(clip.face[seq, ARKIT_INDEX[name]]), abs=1e-6), name
    for joint in ("head", "left_shoulder", "right_shoulder", "spine3", "neck", "left_elbow"):
        assert _quat_close(pose["bones"][joint], clip.rotations[seq, SMPLX_JOINT_NAMES.index(joint)]), joint

    # The avatar is on screen and moves: two screenshots of its region 0.5 s apart differ.
    d = r["diff"]
    assert d["avatarPixels"] > 0.1, d                        # not an empty background
    assert d["changed"] > 0.01 and d["meanAbs"] > 0.5, d
    # A user's GLB through the file picker: morph targets and joint nodes by name (our GLB exporter's rig).
    picked = r["picked"]
    assert picked["state"]["avatar"] == "mannequin.glb" and picked["state"]["error"] is None
    assert "glTF" in picked["state"]["avatarInfo"] and "55 bones" in picked["state"]["avatarInfo"]
    assert "52 morph targets" in picked["state"]["avatarInfo"]
    pose = picked["pose"]
    seq = pose["seq"]
    for name in ARKIT_NAMES:
        assert pose["morphs"][name] == pytest.approx(float(clip.face[seq, ARKIT_INDEX[name]]), abs=1e-6), name
    for joint in ("head", "left_shoulder", "spine3"):
        assert _quat_close(pose["bones"][joint], clip.rotations[seq, SMPLX_JOINT_NAMES.index(joint)]), joint

    for name in ("viewer_a.png", "viewer_b.png", "viewer_page.png", "viewer_picked.png"):
        assert (ARTIFACTS / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
