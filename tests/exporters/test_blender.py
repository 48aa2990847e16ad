"""Blender (the Debian ``blender`` package, headless) imports our GLB and BVH: bones, animation, morph targets.

Each file is imported by Blender's own importer in ``blender -b --factory-startup`` running
``blender_import.py``, which dumps rest and posed bone matrices, the action's frame range and the shape
keys as JSON. The test then undoes Blender's conventions and compares with the clip:

* axes: both importers map ours (+Y up, facing +Z) to Blender's +Z up by ``(x, y, z) -> (x, -z, y)``
  (:data:`TO_BLENDER`); checked on the rest skeleton, which also checks the units (GLB metres; BVH
  centimetres, imported with ``global_scale=0.01``);
* bone space: Blender gives each bone its own rest orientation (glTF: the importer's bone heuristic; BVH:
  along the offsets), so a joint's rotation is read as the world-space change from rest,
  ``D = posed @ rest^-1``, made local with the parent's ``D`` and mapped back to our axes;
* time: the glTF importer keys at ``seconds * scene fps`` from frame 0 (the script sets the scene to the
  clip's 30 fps); the BVH importer keys from frame 1 (``frame_start`` default) and adopts the file's fps.
"""
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from exporters import bvh, glb
from motion.conventions import ARKIT_NAMES, JOINT_INDEX, SMPLX_JOINT_NAMES, SMPLX_PARENTS, rest_joint_positions
from tests.exporters.sample_clip import sample_clip

SCRIPT = Path(__file__).with_name("blender_import.py")
BLENDER = shutil.which("blender")
pytestmark = pytest.mark.skipif(BLENDER is None, reason="blender is not installed (Debian: apt-get install blender)")

#: Our axes -> Blender's world axes, as both importers apply them (glTF Y-up; BVH axis_up='Y', forward '-Z').
TO_BLENDER = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])
#: The known joint and frame of the issue's check (frame: the clip frame where the elbow bends most).
KNOWN_JOINT = "left_elbow"
TOL_RAD = 1e-3


def run_blender(path: Path, frames: list[int], tmp_path: Path) -> dict:
    """Import ``path`` in Blender and return ``blender_import.py``'s JSON dump."""
    out = tmp_path / f"{path.stem}.{path.suffix[1:]}.json"
    # A minimal environment: Blender's embedded Python must use the system's library and numpy, not the
    # test's virtualenv (it would pick up a python3 found on PATH).
    env = {"PATH": os.pathsep.join([str(Path(BLENDER).parent), "/usr/bin", "/bin"]),
           "HOME": os.environ.get("HOME", str(tmp_path)), "LANG": "C.UTF-8"}
    cmd = [BLENDER, "-b", "--factory-startup", "--python-exit-code", "2", "--python", str(SCRIPT), "--",
           str(path), str(out), "--fps", "30", "--frames", ",".join(map(str, frames))]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0 and out.is_file(), \
        f"blender failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(out.read_text())


def local_rotations(dump: dict, frame: int) -> dict[str, Rotation]:
    """Per SMPL-X joint, its local rotation relative to rest in OUR axes, from Blender's matrices."""
    obj = np.asarray(dump["armature"]["matrix_world"])[:3, :3]
    delta = {}
    for name in SMPLX_JOINT_NAMES:
        rest = obj @ np.asarray(dump["bones"][name]["matrix_local"])[:3, :3]
        posed = obj @ np.asarray(dump["pose"][str(frame)][name])[:3, :3]
        delta[name] = posed @ np.linalg.inv(rest)
    out = {}
    for j, name in enumerate(SMPLX_JOINT_NAMES):
        p = SMPLX_PARENTS[j]
        local = delta[name] if p < 0 else delta[SMPLX_JOINT_NAMES[p]].T @ delta[name]
        out[name] = Rotation.from_matrix(TO_BLENDER.T @ local @ TO_BLENDER)
    return out


def angle_to_clip(rot: Rotation, clip, frame: int, name: str) -> float:
    ref = Rotation.from_quat(clip.rotations[frame, JOINT_INDEX[name]].astype(np.float64))
    return float((ref.inv() * rot).magnitude())


@pytest.fixture(scope="module")
def clip():
    return sample_clip()


@pytest.fixture(scope="module")
def frames(clip):
    """Clip frames to compare: the known joint's most bent frame, the first and a late one."""
    ang = Rotation.from_quat(clip.rotations[:, JOINT_INDEX[KNOWN_JOINT]].astype(np.float64)).magnitude()
    return sorted({int(np.argmax(ang)), 0, clip.num_frames - 7})


@pytest.fixture(scope="module")
def gltf_dump(clip, frames, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("blender_glb")
    return run_blender(glb.write(clip, tmp / "sample.glb"), frames, tmp)      # glTF frames = clip frames


@pytest.fixture(scope="module")
def bvh_dump(clip, frames, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("blender_bvh")
    return run_blender(bvh.write(clip, tmp / "sample.bvh"), [f + 1 for f in frames], tmp)   # BVH: from 1


def check_rest_skeleton(dump: dict, atol: float) -> None:
    rest = rest_joint_positions().astype(np.float64) @ TO_BLENDER.T
    obj = np.asarray(dump["armature"]["matrix_world"])
    for j, name in enumerate(SMPLX_JOINT_NAMES):
        bone = dump["bones"][name]
        head = obj[:3, :3] @ np.asarray(bone["head_local"]) + obj[:3, 3]
        np.testing.assert_allclose(head, rest[j], atol=atol, err_msg=name)
        want_parent = SMPLX_JOINT_NAMES[SMPLX_PARENTS[j]] if SMPLX_PARENTS[j] >= 0 else None
        assert bone["parent"] == want_parent, name


def test_blender_version(gltf_dump):
    major, minor = (int(x) for x in gltf_dump["blender"].split(".")[:2])
    assert (major, minor) >= (3, 4), gltf_dump["blender"]


# --------------------------------------------------------------------------------------------------
# GLB through the glTF importer
# --------------------------------------------------------------------------------------------------
def test_glb_skeleton_and_animated_bones(gltf_dump):
    assert set(gltf_dump["bones"]) == set(SMPLX_JOINT_NAMES)
    check_rest_skeleton(gltf_dump, atol=1e-5)
    assert gltf_dump["action"]["rotation_bones"] == sorted(SMPLX_JOINT_NAMES)
    assert gltf_dump["action"]["location_bones"] == ["pelvis"]


def test_glb_frame_range(gltf_dump, clip):
    assert gltf_dump["scene_fps"] == 30
    assert gltf_dump["action"]["frame_range"] == pytest.approx([0, clip.num_frames - 1], abs=1e-3)
    assert gltf_dump["shape_keys"]["frame_range"] == pytest.approx([0, clip.num_frames - 1], abs=1e-3)


def test_glb_known_joint_rotation(gltf_dump, clip, frames):
    for f in frames:
        rots = local_rotations(gltf_dump, f)
        errors = {n: angle_to_clip(r, clip, f, n) for n, r in rots.items()}
        worst = max(errors, key=errors.get)
        assert errors[KNOWN_JOINT] < TOL_RAD, (f, errors[KNOWN_JOINT])
        assert errors[worst] < TOL_RAD, (f, worst, errors[worst])


def test_glb_known_rotation_is_not_trivially_met(gltf_dump, clip, frames):
    """The comparison can fail: the elbow's bend at the checked frame is far from identity and from
    another frame's."""
    f = max(frames, key=lambda k: Rotation.from_quat(clip.rotations[k, JOINT_INDEX[KNOWN_JOINT]]).magnitude())
    rot = local_rotations(gltf_dump, f)[KNOWN_JOINT]
    assert rot.magnitude() > 0.5
    # the compared frame most unlike f (frame 0 can sit next to the most bent one)
    assert max(angle_to_clip(rot, clip, k, KNOWN_JOINT) for k in frames if k != f) > 10 * TOL_RAD


def test_glb_morph_targets_as_shape_keys(gltf_dump, clip, frames):
    sk = gltf_dump["shape_keys"]
    assert sk["names"] == list(ARKIT_NAMES)
    for f in frames:
        np.testing.assert_allclose(sk["values"][str(f)], clip.face[f], atol=1e-5)
    assert max(np.abs(clip.face[f]).max() for f in frames) > 0.1      # the weights are not all zero


# --------------------------------------------------------------------------------------------------
# BVH through the BVH importer
# --------------------------------------------------------------------------------------------------
def test_bvh_skeleton_and_animated_bones(bvh_dump):
    assert set(bvh_dump["bones"]) == set(SMPLX_JOINT_NAMES)
    check_rest_skeleton(bvh_dump, atol=1e-5)                 # centimetres in the file, metres here
    assert bvh_dump["action"]["rotation_bones"] == sorted(SMPLX_JOINT_NAMES)
    assert bvh_dump["action"]["location_bones"] == ["pelvis"]
    assert set(bvh_dump["action"]["rotation_modes"].values()) == {"ZXY"}     # the file's stated order


def test_bvh_frame_range(bvh_dump, clip):
    assert bvh_dump["scene_fps"] == 30                       # update_scene_fps: from "Frame Time"
    assert bvh_dump["action"]["frame_range"] == pytest.approx([1, clip.num_frames], abs=1e-6)


def test_bvh_known_joint_rotation(bvh_dump, clip, frames):
    for f in frames:
        rots = local_rotations(bvh_dump, f + 1)
        errors = {n: angle_to_clip(r, clip, f, n) for n, r in rots.items()}
        worst = max(errors, key=errors.get)
        assert errors[KNOWN_JOINT] < TOL_RAD, (f, errors[KNOWN_JOINT])
        assert errors[worst] < TOL_RAD, (f, worst, errors[worst])
