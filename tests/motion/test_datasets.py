"""Dataset adapters on the real data in ../shared/data (skipped when it is absent)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from motion.conventions import ARKIT_INDEX, ARKIT_MOUTH, JOINT_INDEX, NUM_ARKIT, NUM_JOINTS
from motion.rotations import quat_to_axis_angle

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
pytestmark = pytest.mark.skipif(not DATA.is_dir(),
                                reason=f"real data folder {DATA} is absent (a user's clone has no ../shared)")
NEUROSYNC_CSV = DATA / "neurosync_face_only" / "livelinkface_60fps_no_audio.csv"


@pytest.fixture(scope="module")
def facegood():
    from motion.datasets import load_facegood
    return load_facegood(DATA)


@pytest.fixture(scope="module")
def beat2():
    from motion.datasets import load_beat2
    return load_beat2(DATA)


@pytest.fixture(scope="module")
def neurosync():
    from motion.datasets import load_neurosync
    return load_neurosync(DATA)


def _log_rms(audio: np.ndarray, frames: int, fps: float = 30.0, sr: int = 16000) -> np.ndarray:
    hop = sr / fps
    out = np.empty(frames)
    for i in range(frames):
        c = int(round(i * hop))
        seg = audio[max(0, c - int(hop)):c + int(hop)]
        out[i] = np.log(np.sqrt(np.mean(seg.astype(np.float64) ** 2)) + 1e-5) if len(seg) else np.log(1e-5)
    return out


def test_data_root_env_override(monkeypatch, tmp_path):
    from motion.datasets import data_root
    monkeypatch.setenv("CHATANYONE_DATA", str(tmp_path))
    assert data_root() == tmp_path
    monkeypatch.delenv("CHATANYONE_DATA")
    assert data_root().resolve() == DATA.resolve()


def test_facegood_mapping_valid_channels(facegood):
    from motion.datasets import facegood_mapping, _load_names116
    names = _load_names116(DATA / "facegood" / "bs_names_116.npy")
    m = facegood_mapping(DATA / "facegood" / "blendshape2ARKit.xlsx", names)
    assert sum(m.valid.values()) == 27
    assert m.valid["jawOpen"] and m.sources["jawOpen"] == ["mouth_stretch_c"]
    assert not m.valid["browDownLeft"]  # the sheet's "browDownleft" row was matched case-insensitively
    assert m.missing == ["eye_upLidRaise_l", "eye_upLidRaise_r"]  # cheek_up matches cheek_UP
    tc = facegood[0]
    assert tc.face_mask.shape == (NUM_ARKIT,) and tc.face_mask.sum() == 27
    assert tc.face_mask[ARKIT_INDEX["jawOpen"]]
    assert np.flatnonzero(tc.face_mask).tolist() == list(ARKIT_MOUTH)
    assert not tc.joint_mask.any() and tc.joint_mask.shape == (NUM_JOINTS,)
    assert len(facegood) == 7 and tc.name == "facegood/1114_2_01" and tc.licence == "MIT (FACEGOOD)"


def test_facegood_to_arkit_max_and_names():
    from motion.datasets import facegood_to_arkit, _load_names116
    names = _load_names116(DATA / "facegood" / "bs_names_116.npy")
    bs = np.zeros((3, 116))
    bs[:, names.index("mouth_funnel_ur")] = [0.2, 0.5, 1.5]
    bs[:, names.index("mouth_stretch_c")] = 0.7
    bs[:, names.index("cheek_UP")] = 0.3
    face, mask = facegood_to_arkit(bs, names)
    assert face.dtype == np.float32 and face.shape == (3, NUM_ARKIT)
    np.testing.assert_allclose(face[:, ARKIT_INDEX["mouthFunnel"]], [0.2, 0.5, 1.0])  # max, clipped
    np.testing.assert_allclose(face[:, ARKIT_INDEX["jawOpen"]], 0.7, rtol=1e-6)
    np.testing.assert_allclose(face[:, ARKIT_INDEX["cheekSquintLeft"]], 0.3, rtol=1e-6)
    assert mask.sum() == 27
    with pytest.raises(ValueError):
        facegood_to_arkit(np.zeros((3, 10)), names)


def test_facegood_alignment_and_jaw_energy_correlation(facegood):
    rs = []
    for tc in facegood:
        T = tc.clip.num_frames
        assert tc.clip.fps == 30.0 and tc.audio.dtype == np.float32
        assert abs(len(tc.audio) - T * 16000 / 30) <= 1
        assert 0.0 <= tc.clip.face.min() and tc.clip.face.max() <= 1.0
        e = _log_rms(tc.audio, T)
        rs.append(np.corrcoef(tc.clip.face[:, ARKIT_INDEX["jawOpen"]], e)[0, 1])
    assert min(rs) > 0.5, rs


def test_beat2_round_trip_and_masks(beat2):
    assert [tc.name for tc in beat2] == ["beat2/2_scott_0_1_1", "beat2/2_scott_0_3_3"]
    for tc in beat2:
        with np.load(DATA / "beat2" / (tc.name.split("/")[1] + ".smplxflame30.npz")) as z:
            poses = z["poses"].astype(np.float64)
        from motion.datasets import beat2_rotations
        q = beat2_rotations(poses, lock_root=False)
        aa = quat_to_axis_angle(q)
        src = poses.reshape(-1, NUM_JOINTS, 3)
        # compare as rotations (axis-angle near pi may flip), body joints 1..21
        from scipy.spatial.transform import Rotation
        for j in range(1, 22):
            d = (Rotation.from_rotvec(aa[:, j]).inv() * Rotation.from_rotvec(src[:, j])).magnitude()
            assert d.max() < 1e-5
            small = np.linalg.norm(src[:, j], axis=1) < 3.0
            np.testing.assert_allclose(aa[small, j], src[small, j], atol=1e-5)
        T = tc.clip.num_frames
        assert T == len(poses)
        np.testing.assert_allclose(tc.clip.rotations[:, 0], np.tile([0, 0, 0, 1], (T, 1)))  # root locked
        np.testing.assert_allclose(tc.clip.translation, 0)
        assert abs(len(tc.audio) - T * 16000 / 30) <= 1
        jm = tc.joint_mask
        assert jm.sum() == 13 + 30
        for n in ("spine1", "neck", "head", "left_collar", "right_wrist", "left_index1", "right_thumb3"):
            assert jm[JOINT_INDEX[n]]
        for n in ("pelvis", "left_hip", "left_knee", "jaw", "left_eye_smplhf"):
            assert not jm[JOINT_INDEX[n]]
        assert not tc.face_mask.any()
        assert len(tc.clip.meta["beat2_global_orient_mean"]) == 3


def test_neurosync_frames_and_columns_by_name(neurosync):
    from motion.livelink import read_livelink_csv
    tc, = neurosync
    assert tc.audio is None and tc.clip.fps == 30.0
    assert abs(tc.clip.num_frames - 1848 / 2) <= 1
    with open(NEUROSYNC_CSV, newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    jl = np.array([float(r[header.index("JawLeft")]) for r in rows[1:]])
    jr = np.array([float(r[header.index("JawRight")]) for r in rows[1:]])
    assert header.index("JawLeft") != 15 + 2  # the CSV really swaps positions
    face, head, eyes, fps = read_livelink_csv(NEUROSYNC_CSV)
    assert fps == 60.0 and face.shape == (1848, NUM_ARKIT) and head.shape == (1848, 3) and eyes.shape == (1848, 6)
    np.testing.assert_allclose(face[:, ARKIT_INDEX["jawLeft"]], jl, atol=1e-7)
    np.testing.assert_allclose(face[:, ARKIT_INDEX["jawRight"]], jr, atol=1e-7)
    k = int(np.argmax(jr))
    assert face[k, ARKIT_INDEX["jawRight"]] == pytest.approx(jr[k], abs=1e-7) and jr[k] > 0.2
    # resampled clip: even source frames land on the 30 fps frames
    np.testing.assert_allclose(tc.clip.face[:, ARKIT_INDEX["jawRight"]], jr[::2][:tc.clip.num_frames], atol=1e-6)
    assert not tc.face_mask[ARKIT_INDEX["tongueOut"]] and tc.face_mask.sum() == 51
    assert tc.joint_mask[JOINT_INDEX["left_eye_smplhf"]] and tc.joint_mask[JOINT_INDEX["right_eye_smplhf"]]
    assert not tc.joint_mask[JOINT_INDEX["head"]]  # the capture's head columns are all zero


def test_livelink_eye_axes_match_blendshapes(neurosync):
    """Eye yaw + = look to the face's left (+X): it must rise with eyeLookOutLeft/eyeLookInRight."""
    from scipy.spatial.transform import Rotation
    tc, = neurosync
    e = Rotation.from_quat(tc.clip.rotations[:, JOINT_INDEX["left_eye_smplhf"]]).as_euler("YXZ")
    f = tc.clip.face
    left = f[:, ARKIT_INDEX["eyeLookOutLeft"]] - f[:, ARKIT_INDEX["eyeLookInLeft"]]
    down = f[:, ARKIT_INDEX["eyeLookDownLeft"]] - f[:, ARKIT_INDEX["eyeLookUpLeft"]]
    assert np.corrcoef(e[:, 0], left)[0, 1] > 0.9
    assert np.corrcoef(e[:, 1], down)[0, 1] > 0.9
    # and the gaze direction really points to +X / -Y: rotate the forward axis +Z
    fwd = Rotation.from_quat(tc.clip.rotations[:, JOINT_INDEX["left_eye_smplhf"]]).apply([0, 0, 1])
    assert np.corrcoef(fwd[:, 0], left)[0, 1] > 0.9
    assert np.corrcoef(-fwd[:, 1], down)[0, 1] > 0.9


def test_load_all_and_missing_root(tmp_path):
    from motion.datasets import load_all, load_facegood
    clips = load_all(DATA)
    assert {c.dataset for c in clips} == {"facegood", "beat2", "neurosync"}
    for c in clips:
        assert c.face_mask.dtype == bool and c.joint_mask.dtype == bool
    with pytest.raises(FileNotFoundError):
        load_facegood(tmp_path / "nope")
