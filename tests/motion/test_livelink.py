"""motion.livelink, the one Live Link Face module: a take in the app's CSV layout -> clip -> our CSV is the
identity with the head turned in the neck AND the head joint, the frame rate comes from the timecodes, and
every consumer (datasets, style references, the CSV exporter, the UDP sender) uses the same objects."""
import csv

import numpy as np
import pytest
from scipy.spatial.transform import Rotation as R

from exporters import livelink_csv as llc
from motion import MotionClip, livelink
from motion.conventions import JOINT_INDEX, NECK_SHARE
from tests.conftest import DATA, needs_data

NECK, HEAD = JOINT_INDEX["neck"], JOINT_INDEX["head"]
REAL = DATA / "neurosync_face_only" / "livelinkface_60fps_no_audio.csv"


def app_timecodes(T: int, fps: int, start_s: float = 19 * 3600 + 18 * 60 + 11.5) -> list[str]:
    """Timecodes as the app stamps a ``fps`` take (nominal rate ``fps``, no sub-frames)."""
    out = []
    for k in range(T):
        f = int(round(start_s * fps)) + k
        s, ff = divmod(f, fps)
        out.append(f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}:{ff:02d}.000")
    return out


def write_app_csv(path, face, head, eyes, timecodes) -> None:
    """A take in the app's layout, written with the csv module (not with our exporter)."""
    order = [livelink.ARKIT_NAMES.index(n) for n in livelink.LIVELINK_BLENDSHAPE_ORDER]
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(livelink.LIVELINK_CSV_COLUMNS)
        for tc, fa, h, e in zip(timecodes, face, head, eyes):
            w.writerow([tc, 61] + [f"{v:.10f}" for v in np.concatenate([fa[order], h, e])])


def turned_take(T: int, fps: float, seed: int = 0):
    """Face weights, a head turning up to +-30 degrees about every axis, eyes up to +-17 degrees."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)[:, None] / fps
    head = np.radians(30) * np.sin(2 * np.pi * rng.uniform(0.2, 1.0, (1, 3)) * t + rng.uniform(0, 6, (1, 3)))
    eyes = 0.3 * np.sin(2 * np.pi * rng.uniform(0.5, 2.0, (1, 6)) * t + rng.uniform(0, 6, (1, 6)))
    return rng.uniform(0, 1, (T, 52)), head, eyes


def csv_clip_csv(path, out):
    """CSV -> clip (the adapters' split into neck and head) -> our CSV; returns (first read, clip, second read)."""
    first = livelink.parse_livelink_csv(path)
    rot = MotionClip.rest(len(first.face)).rotations
    livelink.apply_livelink_head_eyes(rot, first.head, first.eyes)
    clip = MotionClip(first.fps, first.face, rot)
    return first, clip, livelink.parse_livelink_csv(llc.write(clip, out))


def test_csv_to_clip_to_csv_is_the_identity_with_a_turned_neck(tmp_path):
    face, head, eyes = turned_take(150, 60.0)
    write_app_csv(tmp_path / "take.csv", face, head, eyes, app_timecodes(150, 60))
    first, clip, again = csv_clip_csv(tmp_path / "take.csv", tmp_path / "ours.csv")
    assert first.fps == 60.0 and again.fps == 60.0            # from the timecodes: no "fps" in the names
    assert np.abs(first.head - head).max() < 1e-7 and np.abs(first.face - face).max() < 1e-7
    # the neck really turns: NECK_SHARE of the whole rotation, up to 0.4 * ~45 degrees
    neck = R.from_quat(clip.rotations[:, NECK]).magnitude()
    full = (R.from_quat(clip.rotations[:, NECK]) * R.from_quat(clip.rotations[:, HEAD])).magnitude()
    assert neck.max() > np.radians(12) and np.allclose(neck, NECK_SHARE * full, atol=1e-5)
    assert np.abs(again.head - first.head).max() < 2e-6      # radians (float32 quaternions in between)
    assert np.abs(again.eyes - first.eyes).max() < 2e-6
    assert np.array_equal(again.face, first.face)
    # and once more from our own file: nothing drifts (float32 rounding only)
    _, _, third = csv_clip_csv(tmp_path / "ours.csv", tmp_path / "ours2.csv")
    assert np.abs(third.head - head).max() < 2e-6 and np.array_equal(third.face, first.face)


@needs_data
def test_real_capture_with_a_turned_head_round_trips(tmp_path):
    """The NeuroSync capture's real face weights and eye angles, with a head track added (its own head
    columns are all zero), survive CSV -> clip -> CSV."""
    real = livelink.parse_livelink_csv(REAL)
    _, head, _ = turned_take(len(real.face), real.fps, seed=1)
    write_app_csv(tmp_path / "take.csv", real.face, head, real.eyes, real.timecodes)
    first, clip, again = csv_clip_csv(tmp_path / "take.csv", tmp_path / "ours.csv")
    assert first.fps == again.fps == 60.0 and len(again.face) == 1848
    assert np.array_equal(first.face, real.face) and np.array_equal(first.eyes, real.eyes)
    assert R.from_quat(clip.rotations[:, NECK]).magnitude().max() > np.radians(10)
    assert np.abs(again.head - head).max() < 2e-6 and np.abs(again.eyes - real.eyes).max() < 2e-6
    assert np.array_equal(again.face, real.face)


@pytest.mark.parametrize("fps", [24, 25, 30, 50, 60])
def test_the_rate_comes_from_the_timecodes_not_the_name(tmp_path, fps):
    face, head, eyes = turned_take(2 * fps + 7, fps)
    path = tmp_path / "take_60fps.csv"                         # a misleading name: the timecodes win
    write_app_csv(path, face, head, eyes, app_timecodes(len(face), fps))
    assert livelink.parse_livelink_csv(path).fps == float(fps)
    assert livelink.read_livelink_csv(path)[3] == float(fps)


def test_timecode_helpers_are_inverse():
    times = np.arange(200) / 60.0 + 3600 * 5 + 0.25
    tcs = livelink.format_timecodes(times, 60)
    back = np.array([livelink.timecode_seconds(tc, 60) for tc in tcs])
    assert np.abs(back - times).max() < 1e-6
    with pytest.raises(livelink.ChatAnyoneError, match="not a Live Link timecode"):
        livelink.timecode_seconds("12:00", 60)


def test_one_module_for_every_consumer():
    """datasets, the CSV exporter and the UDP sender use motion.livelink's objects, not copies."""
    from bridge import livelink as udp
    from motion import conventions, datasets
    assert datasets.parse_livelink_csv is livelink.parse_livelink_csv
    assert datasets.read_livelink_csv is livelink.read_livelink_csv
    assert datasets.LIVELINK_HEAD_COLUMNS is livelink.LIVELINK_HEAD_COLUMNS
    assert llc.parse_livelink_csv is livelink.parse_livelink_csv
    assert llc.LIVELINK_CSV_COLUMNS is livelink.LIVELINK_CSV_COLUMNS
    assert llc.format_timecodes is livelink.format_timecodes
    assert udp.HEAD_EYE_NAMES == livelink.LIVELINK_ANGLE_COLUMNS == tuple(llc.LIVELINK_CSV_COLUMNS[-9:])
    assert udp.VALUE_COUNT == llc.BLENDSHAPE_COUNT == livelink.LIVELINK_VALUE_COUNT == 61
    assert livelink.split_neck_head is conventions.split_neck_head
    assert livelink.apply_livelink_head_eyes is conventions.apply_livelink_head_eyes


def test_udp_values_are_the_csv_angles():
    face, head, eyes = turned_take(20, 30.0, seed=4)
    rot = MotionClip.rest(20).rotations
    livelink.apply_livelink_head_eyes(rot, head, eyes)
    from bridge.livelink import head_eye_values
    h, e = livelink.livelink_head_eye_angles(rot)
    for k in range(20):
        assert np.array_equal(head_eye_values(rot[k]), np.concatenate([h[k], e[k]]))
    assert np.abs(h - head).max() < 2e-6 and np.abs(e - eyes).max() < 2e-6


def test_our_30_fps_csv_as_a_style_reference_plays_at_30_fps(tmp_path):
    """The style-reference reader (motion.inference) takes the rate from the timecodes (a 30 fps CSV read as
    60 played at double speed) and puts the head into neck and head exactly."""
    from motion.inference import load_style_reference
    face, head, eyes = turned_take(90, 30.0, seed=5)
    rot = MotionClip.rest(90).rotations
    livelink.apply_livelink_head_eyes(rot, head, eyes)
    path = llc.write(MotionClip(30.0, face, rot), tmp_path / "reference.csv")
    ref = load_style_reference(path)
    assert ref.fps == 30.0 and ref.num_frames == 90
    h, _ = livelink.livelink_head_eye_angles(ref.rotations)
    assert np.abs(h - head).max() < 2e-6 and R.from_quat(ref.rotations[:, NECK]).magnitude().max() > np.radians(10)


def test_take_rotations_puts_in_only_real_angles(tmp_path):
    face, head, eyes = turned_take(40, 30.0, seed=6)
    write_app_csv(tmp_path / "still.csv", face, np.zeros_like(head), eyes, app_timecodes(40, 30))
    rot, mask = livelink.take_rotations(livelink.parse_livelink_csv(tmp_path / "still.csv"))
    assert rot.shape == (40, 55, 4) and rot.dtype == np.float32 and mask.shape == (55,)
    assert np.flatnonzero(mask).tolist() == sorted([JOINT_INDEX["left_eye_smplhf"], JOINT_INDEX["right_eye_smplhf"]])
    assert np.array_equal(rot[:, [NECK, HEAD]], np.tile(np.float32([0, 0, 0, 1]), (40, 2, 1)))
    _, e = livelink.livelink_head_eye_angles(rot)
    assert np.abs(e - eyes).max() < 2e-6
    write_app_csv(tmp_path / "turned.csv", face, head, eyes, app_timecodes(40, 30))
    take = livelink.parse_livelink_csv(tmp_path / "turned.csv")
    rot, mask = livelink.take_rotations(take, eyes=False)
    assert np.flatnonzero(mask).tolist() == sorted([NECK, HEAD]) and np.abs(livelink.livelink_head_eye_angles(rot)[0] - head).max() < 2e-6
    assert np.array_equal(rot[:, JOINT_INDEX["left_eye_smplhf"]], np.tile(np.float32([0, 0, 0, 1]), (40, 1)))
