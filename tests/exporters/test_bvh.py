"""BVH exporter: hierarchy, units, Euler convention, round trip, malformed input, atomic writes."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from exporters import bvh
from motion import MotionClip
from motion.conventions import JOINT_INDEX, SMPLX_JOINT_NAMES, SMPLX_PARENTS, rest_offsets
from motion.errors import ChatAnyoneError


def smooth_clip(T=40, fps=30.0, seed=1, amplitude=0.5) -> MotionClip:
    rng = np.random.default_rng(seed)
    t = np.arange(T)[:, None] / fps
    aa = amplitude * np.sin(2 * np.pi * rng.uniform(0.3, 2, (1, 165)) * t + rng.uniform(0, 6, (1, 165)))
    rot = Rotation.from_rotvec(aa.reshape(-1, 3)).as_quat().reshape(T, 55, 4)
    face = rng.uniform(0, 1, (T, 52))
    trans = 0.1 * np.sin(2 * np.pi * t * np.array([0.5, 1.0, 0.25]))
    return MotionClip(fps, face, rot, trans)


def in_smplx_order(data: bvh.BvhData, array: np.ndarray) -> np.ndarray:
    """Reorder a per-joint axis (file order, depth-first) into SMPL-X index order, by name."""
    return array[..., [data.joint_names.index(n) for n in SMPLX_JOINT_NAMES], :]


def angle_between(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """Rotation angle (radians) of q1^-1 q2, elementwise over ``[..., 4]`` xyzw."""
    r = Rotation.from_quat(q1.reshape(-1, 4)).inv() * Rotation.from_quat(q2.reshape(-1, 4))
    return r.magnitude().reshape(q1.shape[:-1])


@pytest.fixture(scope="module")
def clip():
    return smooth_clip()


@pytest.fixture(scope="module")
def path(clip, tmp_path_factory):
    return bvh.write(clip, tmp_path_factory.mktemp("bvh") / "clip.bvh")


def test_round_trip(clip, path):
    data = bvh.read(path)
    assert sorted(data.joint_names) == sorted(SMPLX_JOINT_NAMES)
    assert data.rotations.shape == (clip.num_frames, 55, 4)
    assert angle_between(in_smplx_order(data, data.rotations), clip.rotations).max() < 1e-4
    assert np.abs(data.root_translation - clip.translation).max() < 1e-4
    back = bvh.to_clip(data)
    assert back.num_frames == clip.num_frames and back.fps == 30.0
    assert angle_between(back.rotations, clip.rotations).max() < 1e-4
    assert not back.face.any()


@pytest.mark.parametrize("order", ["XYZ", "YXZ", "zyx"])
def test_round_trip_other_orders(clip, tmp_path, order):
    p = bvh.write(clip, tmp_path / "o.bvh", euler_order=order)
    text = p.read_text()
    axes = order.upper()
    assert f"CHANNELS 3 {axes[0]}rotation {axes[1]}rotation {axes[2]}rotation" in text
    data = bvh.read(p)
    assert angle_between(in_smplx_order(data, data.rotations), clip.rotations).max() < 1e-4


def test_euler_convention_is_intrinsic_zxy(tmp_path):
    """``Zrotation Xrotation Yrotation`` with values (z, x, y) means R = Rz(z) @ Rx(x) @ Ry(y)."""
    z, x, y = 30.0, 20.0, -40.0
    Rz, Rx, Ry = (Rotation.from_euler(a, v, degrees=True).as_matrix() for a, v in (("z", z), ("x", x), ("y", y)))
    rot = np.zeros((1, 55, 4))
    rot[..., 3] = 1
    rot[0, JOINT_INDEX["left_elbow"]] = Rotation.from_matrix(Rz @ Rx @ Ry).as_quat()
    p = bvh.write(MotionClip(30, np.zeros((1, 52)), rot), tmp_path / "e.bvh")
    values = np.array(p.read_text().split("Frame Time:")[1].split()[1:], dtype=float)
    k = 6 + 3 * (bvh._dfs_order().index(JOINT_INDEX["left_elbow"]) - 1)
    assert np.allclose(values[k:k + 3], [z, x, y], atol=1e-5)


def test_hierarchy_and_units(path, clip):
    text = path.read_text()
    lines = [ln.strip() for ln in text.splitlines()]
    assert lines[0] == "HIERARCHY" and lines[1] == "ROOT pelvis"
    assert lines[2] == "{" and lines[3].startswith("OFFSET ")
    assert lines[4] == "CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation"
    assert sum(ln.startswith("JOINT ") for ln in lines) == 54
    assert sum(ln == "End Site" for ln in lines) == 2 + 1 + 2 + 10   # feet, jaw, eyes, fingertips
    assert "JOINT left_thumb3" in lines and "JOINT right_pinky2" in lines
    assert f"Frames: {clip.num_frames}" in lines
    frame_time = float(next(ln for ln in lines if ln.startswith("Frame Time:")).split(":")[1])
    assert frame_time == pytest.approx(1 / 30, abs=1e-9)
    data = bvh.read(path)
    assert data.fps == 30.0
    # depth-first file order: each joint's subtree follows it, SMPL-X index order among siblings
    assert data.joint_names[:5] == ["pelvis", "left_hip", "left_knee", "left_ankle", "left_foot"]
    assert data.joint_names[-3:] == ["right_thumb1", "right_thumb2", "right_thumb3"]
    assert [data.joint_names[p] if p >= 0 else None for p in
            (data.parents[data.joint_names.index(n)] for n in SMPLX_JOINT_NAMES)] == \
           [SMPLX_JOINT_NAMES[p] if p >= 0 else None for p in SMPLX_PARENTS]
    assert np.allclose(in_smplx_order(data, data.offsets_m), rest_offsets(), atol=1e-6)
    # OFFSETs are centimetres: the forearm bone (elbow offset from the shoulder) is ~25-30 cm
    elbow = lines[lines.index("JOINT left_elbow") + 2].split()
    assert elbow[0] == "OFFSET"
    assert 20 < np.linalg.norm(np.array(elbow[1:], float)) < 35
    # root position channels: absolute position in cm (rest + translation)
    first = np.array(text.split("Frame Time:")[1].split()[1:7], float)
    assert np.allclose(first[:3], (rest_offsets()[0] + clip.translation[0]) * 100, atol=1e-4)


@pytest.mark.parametrize("mutate, match", [
    (lambda t: t.replace("HIERARCHY", "HIERARCHI"), "HIERARCHY"),
    (lambda t: t.replace("Frames: 40", "Frames: 41"), "values"),
    (lambda t: t.replace("Frame Time:", "Frame Tim:"), "Time"),
    (lambda t: t.replace("CHANNELS 3 Zrotation", "CHANNELS 3 Wrotation", 1), "unknown channel"),
    (lambda t: t[: t.rindex("\n", 0, t.index("MOTION") // 2) + 1], "end of file"),  # cut at a line end
    (lambda t: t.replace("OFFSET 0.", "OFFSET x.", 1), "number"),
    (lambda t: t[:-20] + " abc\n", "not a number|values"),
    (lambda t: t.replace("Frame Time: 0.0333", "Frame Time: -0.0333"), "positive"),
    (lambda t: "", "end of file"),
])
def test_malformed_files(path, tmp_path, mutate, match):
    bad = tmp_path / "bad.bvh"
    bad.write_text(mutate(path.read_text()))
    with pytest.raises(ChatAnyoneError, match=match):
        bvh.read(bad)


def test_read_errors(tmp_path):
    with pytest.raises(ChatAnyoneError, match="no such"):
        bvh.read(tmp_path / "missing.bvh")
    (tmp_path / "bin.bvh").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ChatAnyoneError):
        bvh.read(tmp_path / "bin.bvh")


def test_to_clip_rejects_foreign_skeleton(path):
    data = bvh.read(path)
    data.joint_names[3] = "Spine"
    with pytest.raises(ChatAnyoneError, match="not SMPL-X"):
        bvh.to_clip(data)


def test_reads_foreign_channel_layouts(tmp_path):
    """A minimal hand-written BVH: root with rotations before positions, an XYZ child, no End Site."""
    text = """HIERARCHY
ROOT Hips
{
  OFFSET 0 90 0
  CHANNELS 6 Xrotation Yrotation Zrotation Xposition Yposition Zposition
  JOINT Spine
  {
    OFFSET 0 10 0
    CHANNELS 3 Xrotation Yrotation Zrotation
  }
}
MOTION
Frames: 2
Frame Time: 0.04
0 0 0 0 90 0 0 0 0
90 0 0 10 95 -5 0 45 0
"""
    p = tmp_path / "foreign.bvh"
    p.write_text(text)
    d = bvh.read(p)
    assert d.joint_names == ["Hips", "Spine"] and list(d.parents) == [-1, 0]
    assert d.fps == pytest.approx(25.0)
    assert np.allclose(d.offsets_m[0], [0, 0.9, 0])
    assert np.allclose(d.root_translation, [[0, 0, 0], [0.1, 0.05, -0.05]])
    assert angle_between(d.rotations[1, 0], Rotation.from_euler("x", 90, degrees=True).as_quat()) < 1e-9
    assert angle_between(d.rotations[1, 1], Rotation.from_euler("y", 45, degrees=True).as_quat()) < 1e-9


def test_bad_options_and_atomic_write(tmp_path, clip, monkeypatch):
    with pytest.raises(ChatAnyoneError, match="euler_order"):
        bvh.write(clip, tmp_path / "x.bvh", euler_order="XXY")
    with pytest.raises(ChatAnyoneError, match="does not exist"):
        bvh.write(clip, tmp_path / "missing" / "x.bvh")

    def boom(f, values):  # the header is already on disk when the frames fail
        raise OSError("disk full")

    monkeypatch.setattr(bvh, "_write_frames", boom)
    with pytest.raises(OSError, match="disk full"):
        bvh.write(clip, tmp_path / "x.bvh")
    assert list(tmp_path.iterdir()) == []


def test_mixamo_bone_names(clip, tmp_path):
    path = bvh.write(clip, tmp_path / "mixamo.bvh", bone_names="mixamo")
    text = path.read_text()
    assert "ROOT mixamorig:Hips" in text and "JOINT mixamorig:LeftUpLeg" in text
    assert "JOINT mixamorig:RightHandThumb3" in text and "JOINT jaw" in text     # Mixamo has no jaw bone
    assert "JOINT left_hip" not in text
    data = bvh.read(path)
    assert data.joint_names == [bvh.joint_names("mixamo")[SMPLX_JOINT_NAMES.index(n)] for n in
                                bvh.read(bvh.write(clip, tmp_path / "smplx.bvh")).joint_names]
    back = bvh.to_clip(data)
    assert angle_between(back.rotations, clip.rotations).max() < 1e-5
    with pytest.raises(ChatAnyoneError, match="bone_names must be one of"):
        bvh.write(clip, tmp_path / "x.bvh", bone_names="unreal")
    assert not (tmp_path / "x.bvh").exists()
