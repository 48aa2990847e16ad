import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation as R

from motion import MotionClip
from motion.clip import NPZ_KEYS
from motion.conventions import ARKIT_NAMES, SMPLX_JOINT_NAMES, SMPLX_PARENTS
from motion.errors import ClipError


def make_clip(T=20, fps=30.0, seed=0):
    rng = np.random.default_rng(seed)
    face = rng.uniform(0, 1, (T, 52)).astype(np.float32)
    rot = R.from_rotvec(rng.normal(0, 0.3, (T * 55, 3))).as_quat().reshape(T, 55, 4)
    return MotionClip(fps, face, rot, rng.normal(0, 0.1, (T, 3)), {"seed": seed})


def test_npz_keys_and_round_trip(tmp_path):
    c = make_clip()
    p = c.save(tmp_path / "a.npz")
    with np.load(p) as z:
        assert sorted(z.files) == sorted(NPZ_KEYS)
        assert list(z["face_names"]) == list(ARKIT_NAMES)
        assert list(z["joint_names"]) == list(SMPLX_JOINT_NAMES)
        assert list(z["parents"]) == list(SMPLX_PARENTS)
        assert z["face"].shape == (20, 52) and z["rotations"].shape == (20, 55, 4)
        assert json.loads(str(z["meta"]))["format_version"] == 1
    d = MotionClip.load(p)
    assert np.allclose(d.face, c.face) and np.allclose(d.rotations, c.rotations)
    assert np.allclose(d.translation, c.translation) and d.fps == 30.0


def test_load_matches_channels_by_name(tmp_path):
    c = make_clip()
    d = c.to_npz_dict()
    perm = np.random.default_rng(1).permutation(52)
    d["face"], d["face_names"] = d["face"][:, perm], d["face_names"][perm]
    np.savez(tmp_path / "p.npz", **d)
    assert np.allclose(MotionClip.load(tmp_path / "p.npz").face, c.face)


@pytest.mark.parametrize("bad", ["nan_face", "face_range", "not_unit", "shape"])
def test_validation(bad):
    c = make_clip()
    face, rot = c.face.copy(), c.rotations.copy()
    if bad == "nan_face":
        face[3, 4] = np.nan
    elif bad == "face_range":
        face[0, 0] = 1.5
    elif bad == "not_unit":
        rot[0, 0] *= 2
    else:
        rot = rot[:, :54]
    with pytest.raises(ClipError):
        MotionClip(30, face, rot)


def test_load_bad_files(tmp_path):
    with pytest.raises(ClipError, match="no such file"):
        MotionClip.load(tmp_path / "missing.npz")
    (tmp_path / "t.npz").write_text("hello")
    with pytest.raises(ClipError, match="not a readable"):
        MotionClip.load(tmp_path / "t.npz")


def test_slice_resample_concat():
    c = make_clip(T=31)
    s = c.slice(10, 20)
    assert s.num_frames == 10 and np.allclose(s.face, c.face[10:20])
    assert s.meta["audio_offset_s"] == pytest.approx(10 / 30)
    up = c.resample(60)
    assert up.num_frames == 62
    # frames at even indices coincide with the source frames (up to sign)
    dots = np.abs((up.rotations[0:60:2] * c.rotations[:30]).sum(-1))
    assert np.allclose(dots, 1, atol=1e-5)
    assert np.allclose(up.face[0:60:2], c.face[:30], atol=1e-6)
    # midpoint is the slerp halfway point
    q0, q1 = R.from_quat(c.rotations[0, 5]), R.from_quat(c.rotations[1, 5])
    mid = R.from_quat(up.rotations[1, 5])
    assert (q0.inv() * mid).magnitude() == pytest.approx((q0.inv() * q1).magnitude() / 2, abs=1e-5)
    j = MotionClip.concat([c, s])
    assert j.num_frames == 41 and np.allclose(j.face[31:], s.face)
    with pytest.raises(ClipError):
        MotionClip.concat([c, up])


def test_save_is_atomic(tmp_path, monkeypatch):
    c = make_clip()
    def boom(*a, **k):
        raise RuntimeError("disk full")
    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(RuntimeError):
        c.save(tmp_path / "x.npz")
    assert list(tmp_path.iterdir()) == []


def test_load_rejects_duplicate_names_wrong_shapes_and_folders(tmp_path):
    d = make_clip().to_npz_dict()
    names = list(d["joint_names"])
    np.savez(tmp_path / "dup.npz", **{**d, "joint_names": np.asarray(names[:-1] + names[:1])})
    with pytest.raises(ClipError, match="duplicate channel names in joint_names"):
        MotionClip.load(tmp_path / "dup.npz")
    np.savez(tmp_path / "short.npz", **{**d, "translation": d["translation"][:-1]})
    with pytest.raises(ClipError, match=r"translation must have shape \[20, 3\], got \[19, 3\]"):
        MotionClip.load(tmp_path / "short.npz")
    np.savez(tmp_path / "subset.npz", **{**d, "face": d["face"][:, :10], "face_names": d["face_names"][:10]})
    sub = MotionClip.load(tmp_path / "subset.npz")               # fewer named channels: the rest read 0
    assert np.allclose(sub.face[:, :10], d["face"][:, :10]) and not sub.face[:, 10:].any()
    with pytest.raises(ClipError, match="is a folder"):
        MotionClip.load(tmp_path)
