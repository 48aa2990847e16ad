"""three.js in headless Chromium plays our exports: the GLB with GLTFLoader + AnimationMixer, and the VRMA on
the default VRM avatar with @pixiv/three-vrm + @pixiv/three-vrm-animation.

``tests/js/threejs_check.mjs`` bundles ``tests/js/threejs_page.mjs`` (esbuild), serves it on 127.0.0.1,
opens it in Debian's Chromium through playwright-core (fresh profile, WebGL on SwiftShader) and, at two
times of a real clip (the sample speech), poses the avatar, renders, screenshots the canvas and reports
what three.js holds: bone quaternions, morph influences, VRM expression values and LookAt angles. The test
compares those with the clip and checks that the two screenshots differ where the avatar is. Screenshots
are kept in ``tests/artifacts/threejs/`` (git-ignored).
"""
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation

from exporters import glb, vrma
from exporters.vrm_avatar import write_vrm_avatar
from motion.conventions import (
    ARKIT_INDEX, ARKIT_NAMES, HEAD_JOINTS, JOINT_INDEX, SMPLX_JOINT_NAMES, SMPLX_TO_VRM, UPPER_BODY_JOINTS,
)
from tests.exporters.sample_clip import sample_clip

REPO = Path(__file__).resolve().parents[2]
JS = REPO / "tests" / "js"
ARTIFACTS = REPO / "tests" / "artifacts" / "threejs"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)"),
    pytest.mark.skipif(NODE is None, reason="node is not installed (Debian: apt-get install nodejs npm)"),
    pytest.mark.skipif(not (JS / "node_modules" / "playwright-core").is_dir(),
                       reason="tests/js node modules are not installed: run `npm ci --prefix tests/js`"),
]
TOL = 1e-5


@pytest.fixture(scope="module")
def clip():
    return sample_clip()


@pytest.fixture(scope="module")
def frames(clip):
    """Two clip frames: the first, and the one whose upper-body pose is farthest from it (visibly different)."""
    joints = list(UPPER_BODY_JOINTS + HEAD_JOINTS)
    rot = Rotation.from_quat(clip.rotations[:, joints].reshape(-1, 4).astype(np.float64))
    first = Rotation.from_quat(np.tile(clip.rotations[0, joints].astype(np.float64), (clip.num_frames, 1)))
    distance = (first.inv() * rot).magnitude().reshape(clip.num_frames, len(joints)).sum(1)
    return [0, int(np.argmax(distance))]


@pytest.fixture(scope="module")
def avatar_json(tmp_path_factory):
    import pygltflib
    path = write_vrm_avatar(tmp_path_factory.mktemp("vrm") / "avatar.vrm")
    return pygltflib.GLTF2.load_binary(str(path)).extensions["VRMC_vrm"]


@pytest.fixture(scope="module")
def report(clip, frames, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("threejs")
    times = [k / clip.fps for k in frames]
    spec = {"glb": str(glb.write(clip, tmp / "sample.glb")), "vrma": str(vrma.write(clip, tmp / "sample.vrma")),
            "vrm": str(write_vrm_avatar(tmp / "avatar.vrm")), "out": str(tmp / "shots"),
            "glbTimes": times, "vrmTimes": times, "chromium": CHROMIUM,
            "vrmSweep": [k / clip.fps for k in range(clip.num_frames)]}     # every frame: largest morph weight
    (tmp / "spec.json").write_text(json.dumps(spec))
    proc = subprocess.run([NODE, str(JS / "threejs_check.mjs"), str(tmp / "spec.json")],
                          capture_output=True, text=True, timeout=240, cwd=JS)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    for key in ("glb", "vrm"):
        for i, f in enumerate(out[key]["frames"]):
            shutil.copy(f["screenshot"], ARTIFACTS / f"{key}_frame{frames[i]}.png")
    return out


def quat_close(a, b, tol=TOL) -> bool:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return min(np.abs(a - b).max(), np.abs(a + b).max()) < tol


def expected_vrm_morphs(clip, frame: int, avatar_json: dict, expressions: dict) -> np.ndarray:
    """Morph influences the VRM expression system must produce: sum over expressions of value x bind
    weight (VRM expressions.md "Expression update algorithm"; all overrides are "none")."""
    out = np.zeros(len(ARKIT_NAMES))
    for kind in ("preset", "custom"):
        for name, expr in avatar_json["expressions"][kind].items():
            for bind in expr["morphTargetBinds"]:
                out[bind["index"]] += expressions.get(name, 0.0) * bind["weight"]
    return out


def avatar_change(a_path: str, b_path: str) -> dict:
    """Where the avatar is (pixels unlike the background in either image) and how much of it changed."""
    a = np.asarray(Image.open(a_path).convert("RGB"), np.int16)
    b = np.asarray(Image.open(b_path).convert("RGB"), np.int16)
    background = a[2, 2]
    assert (np.abs(b[2, 2] - background) <= 2).all()
    avatar = (np.abs(a - background).max(-1) > 12) | (np.abs(b - background).max(-1) > 12)
    ys, xs = np.nonzero(avatar)
    box = (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1)
    region = (slice(box[0], box[1]), slice(box[2], box[3]))
    changed = np.abs(a[region] - b[region]).max(-1) > 24
    return {"avatar_fraction": float(avatar.mean()), "changed_fraction": float(changed.mean()),
            "box": box}


# --------------------------------------------------------------------------------------------------
# GLB: GLTFLoader + AnimationMixer
# --------------------------------------------------------------------------------------------------
def test_webgl_is_available(report):
    assert report["webgl"]["renderer"].startswith("WebGL")


def test_glb_loads_with_animation_and_morphs(report, clip):
    g = report["glb"]
    assert g["animations"] == 1
    assert g["duration"] == pytest.approx((clip.num_frames - 1) / clip.fps, abs=1e-5)
    assert g["tracks"] == 55 + 1 + 1                      # joint rotations, root translation, morph weights
    assert sorted(g["skinnedMeshes"]) == ["face", "mannequin"]
    assert g["morphTargetNames"] == list(ARKIT_NAMES)


def test_glb_pose_and_face_match_clip(report, clip, frames):
    for k, f in zip(frames, report["glb"]["frames"]):
        assert set(f["bones"]) == set(SMPLX_JOINT_NAMES)
        bad = [n for n in SMPLX_JOINT_NAMES if not quat_close(f["bones"][n], clip.rotations[k, JOINT_INDEX[n]])]
        assert not bad, (k, bad)
        np.testing.assert_allclose(f["morphs"], clip.face[k], atol=TOL)
    first, second = (f["bones"] for f in report["glb"]["frames"])
    assert sum(not quat_close(first[n], second[n], 0.05) for n in SMPLX_JOINT_NAMES) >= 5   # the pose changed


def test_glb_screenshots_differ_on_the_avatar(report):
    a, b = (f["screenshot"] for f in report["glb"]["frames"])
    d = avatar_change(a, b)
    assert d["avatar_fraction"] > 0.05, d                 # the avatar is in view
    assert d["changed_fraction"] > 0.02, d                # and moved between the two times


# --------------------------------------------------------------------------------------------------
# VRMA on the default VRM avatar: three-vrm + three-vrm-animation
# --------------------------------------------------------------------------------------------------
def test_vrm_avatar_loads_in_three_vrm(report):
    v = report["vrm"]
    assert v["metaVersion"] == "1" and v["licenseUrl"] == "https://vrm.dev/licenses/1.0/"
    assert set(v["humanBones"]) == set(SMPLX_TO_VRM.values())
    assert {"aa", "ih", "ou", "ee", "oh", "blink", "blinkLeft", "blinkRight", "happy"} <= set(v["presetExpressions"])
    assert v["customExpressions"] == list(ARKIT_NAMES)
    assert v["lookAtType"] == "bone"                      # the eyeballs turn
    assert v["morphTargetNames"] == list(ARKIT_NAMES)


def test_vrma_binds_to_the_avatar(report, clip):
    v = report["vrm"]
    assert len(v["animationHumanBones"]) == 53 and v["hasLookAtTrack"]
    assert v["animationExpressions"]["custom"] == list(ARKIT_NAMES)
    assert v["animationExpressions"]["preset"] == []      # one set per file (exporters.vrma)
    assert v["clipDuration"] == pytest.approx((clip.num_frames - 1) / clip.fps, abs=1e-5)
    # every track found its target: 53 rotations + hips translation + 52 custom + lookAt
    assert len(v["clipTracks"]) == 53 + 1 + 52 + 1
    assert "lookAtQuaternionProxy.quaternion" in v["clipTracks"]


def test_vrma_pose_matches_clip(report, clip, frames):
    vrm_of = {v: n for n, v in SMPLX_TO_VRM.items()}
    for k, f in zip(frames, report["vrm"]["frames"]):
        bad = [b for b in report["vrm"]["animationHumanBones"]
               if not quat_close(f["normalized"][b], clip.rotations[k, JOINT_INDEX[vrm_of[b]]])]
        assert not bad, (k, bad)


def test_vrma_expressions_and_gaze_reach_the_face(report, clip, frames, avatar_json):
    for k, f in zip(frames, report["vrm"]["frames"]):
        ex = f["expressions"]
        for n in ARKIT_NAMES:
            assert ex[n] == pytest.approx(clip.face[k, ARKIT_INDEX[n]], abs=TOL), n
        for n in ("aa", "blink", "blinkLeft", "happy"):
            assert ex[n] == 0, n                               # presets are not driven: one set
        # LookAt: the gaze quaternion as yaw (about +Y, + = the avatar's left) and pitch (about +X, + = down)
        yaw, pitch = np.degrees(Rotation.from_quat(vrma.gaze_quats(clip.rotations[k:k + 1])[0].astype(np.float64))
                                .as_euler("YXZ")[:2])
        assert f["yaw"] == pytest.approx(yaw, abs=1e-3) and f["pitch"] == pytest.approx(pitch, abs=1e-3)
        # a bone LookAt with identity range maps turns each eyeball by the gaze angle
        for eye in ("leftEye", "rightEye"):
            turned = np.degrees(Rotation.from_quat(np.asarray(f["normalized"][eye], np.float64)).magnitude())
            assert turned == pytest.approx(np.hypot(yaw, pitch), abs=0.3), (k, eye)
        np.testing.assert_allclose(f["morphs"], expected_vrm_morphs(clip, k, avatar_json, ex), atol=1e-4)
        np.testing.assert_allclose(f["morphs"], clip.face[k], atol=1e-4)   # each ARKit weight on its own morph
    assert max(abs(f["yaw"]) + abs(f["pitch"]) for f in report["vrm"]["frames"]) > 0.5     # gaze moves


def test_no_morph_is_over_driven_over_the_whole_clip(report, clip):
    """three-vrm adds the expressions that bind a morph: over every frame of the clip, no morph influence
    on our VRM exceeds 1 (one expression set per file, one expression per morph)."""
    sweep = report["vrm"]["sweep"]
    assert sweep["count"] == clip.num_frames
    assert sweep["max"] <= 1.0 + 1e-6, sweep
    assert sweep["max"] == pytest.approx(clip.face.max(), abs=1e-4)   # the largest ARKit weight, unchanged


def test_vrm_screenshots_differ_on_the_avatar(report):
    a, b = (f["screenshot"] for f in report["vrm"]["frames"])
    d = avatar_change(a, b)
    assert d["avatar_fraction"] > 0.05, d
    assert d["changed_fraction"] > 0.02, d
