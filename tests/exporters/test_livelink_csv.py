"""Live Link Face CSV: exact header of the app's files, round trip, head/eye angle convention, timecodes,
resampling, the real NeuroSync capture, malformed input."""
import re

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from exporters import livelink_csv as llc
from motion import MotionClip
from motion.conventions import ARKIT_INDEX, ARKIT_NAMES, JOINT_INDEX
from motion.conventions import livelink_angles_to_quat, quat_to_livelink_angles
from motion.livelink import read_livelink_csv
from motion.errors import ChatAnyoneError
from tests.conftest import DATA, needs_data
from tests.exporters.test_glb import smooth_clip

REAL = DATA / "neurosync_face_only" / "livelinkface_60fps_no_audio.csv"
TIMECODE = re.compile(r"^\d\d:\d\d:\d\d:\d\d\.\d\d\d$")


def head_eye_clip(T=50, fps=30.0, seed=3):
    """A clip whose head angles live in the head joint only (neck identity) and eyes in the eye joints,
    built with the dataset adapter's convention, so the written angles must be exactly these."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)[:, None] / fps
    head = 0.4 * np.sin(2 * np.pi * rng.uniform(0.2, 1, (1, 3)) * t + rng.uniform(0, 6, (1, 3)))
    eyes = 0.3 * np.sin(2 * np.pi * rng.uniform(0.2, 1, (1, 6)) * t + rng.uniform(0, 6, (1, 6)))
    clip = MotionClip.rest(T, fps)
    clip.rotations[:, JOINT_INDEX["head"]] = livelink_angles_to_quat(*head.T)
    clip.rotations[:, JOINT_INDEX["left_eye_smplhf"]] = livelink_angles_to_quat(*eyes[:, :3].T)
    clip.rotations[:, JOINT_INDEX["right_eye_smplhf"]] = livelink_angles_to_quat(*eyes[:, 3:].T)
    clip.face[:] = rng.uniform(0, 1, (T, 52))
    return MotionClip(fps, clip.face, clip.rotations), head, eyes


def test_angles_are_the_inverse_of_the_dataset_convention():
    a = np.random.default_rng(0).uniform(-1.2, 1.2, (200, 3))
    assert np.abs(quat_to_livelink_angles(livelink_angles_to_quat(*a.T)) - a).max() < 1e-6
    # signs: positive yaw turns to the face's right (-X), positive pitch looks down (-Y)
    fwd = np.array([0.0, 0.0, 1.0])
    yaw, pitch, _ = quat_to_livelink_angles(Rotation.from_euler("Y", -0.3).as_quat())
    assert yaw == pytest.approx(0.3) and Rotation.from_euler("Y", -0.3).apply(fwd)[0] < 0
    _, pitch, _ = quat_to_livelink_angles(Rotation.from_euler("X", 0.2).as_quat())
    assert pitch == pytest.approx(0.2) and Rotation.from_euler("X", 0.2).apply(fwd)[1] < 0


def test_round_trip(tmp_path):
    clip, head, eyes = head_eye_clip()
    path = llc.write(clip, tmp_path / "take.csv")
    face, h, e, fps, tcs = llc.read(path)
    assert fps == 30.0 and len(tcs) == clip.num_frames
    assert np.abs(face - clip.face).max() < 1e-4
    assert np.abs(h - head).max() < 1e-4
    assert np.abs(e - eyes).max() < 1e-4


def test_head_is_neck_and_head_composed(tmp_path):
    clip = smooth_clip()
    _, h, e, _, _ = llc.read(llc.write(clip, tmp_path / "take.csv"))
    want = (Rotation.from_quat(clip.rotations[:, JOINT_INDEX["neck"]])
            * Rotation.from_quat(clip.rotations[:, JOINT_INDEX["head"]]))
    got = Rotation.from_quat(livelink_angles_to_quat(*h.T))
    assert (want.inv() * got).magnitude().max() < 1e-4
    got_eye = Rotation.from_quat(livelink_angles_to_quat(*e[:, 3:].T))
    assert (Rotation.from_quat(clip.rotations[:, JOINT_INDEX["right_eye_smplhf"]]).inv() * got_eye).magnitude().max() < 1e-4


def test_columns_are_named_not_positional(tmp_path):
    clip = MotionClip.rest(3)
    clip.face[:, ARKIT_INDEX["jawLeft"]] = 1.0
    clip.face[:, ARKIT_INDEX["mouthRight"]] = 0.5
    path = llc.write(clip, tmp_path / "x.csv")
    lines = path.read_text().splitlines()
    header, row = lines[0].split(","), lines[1].split(",")
    assert len(header) == len(row) == 63 and row[1] == "61"
    assert header.index("JawLeft") == header.index("JawRight") + 1          # the app's order
    assert float(row[header.index("JawLeft")]) == 1.0 and float(row[header.index("JawRight")]) == 0.0
    assert float(row[header.index("MouthRight")]) == 0.5
    assert np.array_equal(llc.read(path).face, clip.face)


@needs_data
def test_header_matches_the_real_file_exactly(tmp_path):
    real = REAL.read_text().splitlines()[0]
    ours = llc.write(MotionClip.rest(2), tmp_path / "x.csv").read_text().splitlines()[0]
    assert ours == real
    assert ",".join(llc.LIVELINK_CSV_COLUMNS) == real


@needs_data
def test_reads_the_real_neurosync_file(tmp_path):
    take = llc.read(REAL)
    face, head, eyes, fps = read_livelink_csv(REAL)                # the training adapter's reader
    assert take.fps == 60.0 and take.face.shape == (1848, 52) and take.eyes.shape == (1848, 6)
    assert np.array_equal(take.face, face) and np.array_equal(take.eyes, eyes) and np.array_equal(take.head, head)
    assert take.timecodes[0] == "19:18:11:20.002" and all(TIMECODE.match(t) for t in take.timecodes)
    assert llc.timecode_seconds(take.timecodes[1], 60) - llc.timecode_seconds(take.timecodes[0], 60) == pytest.approx(
        1.001 / 60, abs=1e-6)
    # re-export what the app recorded: the same columns and numbers come back
    clip = MotionClip(take.fps, take.face, MotionClip.rest(len(take.face)).rotations)
    for k, name in enumerate(("left_eye_smplhf", "right_eye_smplhf")):
        clip.rotations[:, JOINT_INDEX[name]] = livelink_angles_to_quat(*take.eyes[:, 3 * k:3 * k + 3].T)
    again = llc.read(llc.write(clip, tmp_path / "again.csv"))
    assert np.abs(again.face - take.face).max() < 1e-6 and np.abs(again.eyes - take.eyes).max() < 1e-4


def test_sixty_fps_option_doubles_frames(tmp_path):
    clip = smooth_clip(T=45)
    take = llc.read(llc.write(clip, tmp_path / "x60.csv", fps=60))
    assert len(take.face) == 90 and take.fps == 60.0
    assert take.timecodes[:3] == ["00:00:00:00.000", "00:00:00:01.000", "00:00:00:02.000"]
    assert take.timecodes[60] == "00:00:01:00.000"
    assert np.abs(take.face[::2] - clip.face).max() < 1e-4                # even frames are the 30 fps frames
    assert llc.read(llc.write(clip, tmp_path / "x30.csv")).timecodes[31] == "00:00:01:01.000"


def test_timecodes_follow_the_audio_offset():
    clip = smooth_clip(T=40).slice(30, 40)                                 # starts 1 s into its audio
    tcs = llc.format_timecodes(clip.meta["audio_offset_s"] + np.arange(2) / 30, 30)
    assert tcs == ["00:00:01:00.000", "00:00:01:01.000"]
    assert llc.format_timecodes(np.array([3600 * 25 + 0.5]), 60) == ["01:00:00:30.000"]
    assert llc.format_timecodes(np.array([1 / 120]), 60) == ["00:00:00:00.500"]


def test_fps_is_inferred_without_rollover_from_the_name(tmp_path):
    clip = MotionClip.rest(10, 60.0)
    assert llc.read(llc.write(clip, tmp_path / "take_60fps.csv")).fps == 60.0
    assert llc.read(llc.write(clip, tmp_path / "take.csv")).fps == 24.0    # FF only reaches 9: ambiguous
    assert llc.read(tmp_path / "take.csv", fps=60).fps == 60.0


def test_malformed_files(tmp_path):
    with pytest.raises(ChatAnyoneError, match="no such"):
        llc.read(tmp_path / "missing.csv")
    good = llc.write(MotionClip.rest(3), tmp_path / "good.csv").read_text().splitlines()
    cases = {
        "ragged.csv": (good[:2] + [good[2] + ",1"], "line 3"),
        "text.csv": (good[:2] + [good[2].replace("0.0000000000", "abc", 1)], "non-numeric"),
        "noarkit.csv": (["Timecode,Foo", "00:00:00:00.000,1"], "no ARKit"),
        "noframes.csv": (good[:1], "no frames"),
        "badtc.csv": (good[:2] + ["garbage" + good[2][15:]], "timecode"),
    }
    for name, (lines, msg) in cases.items():
        p = tmp_path / name
        p.write_text("\n".join(lines) + "\n")
        with pytest.raises(ChatAnyoneError, match=msg):
            llc.read(p)


def test_bad_writes_leave_nothing(tmp_path):
    with pytest.raises(ChatAnyoneError, match="empty"):
        llc.write(MotionClip.rest(0), tmp_path / "x.csv")
    with pytest.raises(ChatAnyoneError):
        llc.write(MotionClip.rest(3), tmp_path / "x.csv", fps=0)
    with pytest.raises(ChatAnyoneError):
        llc.write("clip", tmp_path / "x.csv")
    with pytest.raises(ChatAnyoneError, match="does not exist"):
        llc.write(MotionClip.rest(3), tmp_path / "nope" / "x.csv")
    assert list(tmp_path.iterdir()) == []
    assert set(ARKIT_NAMES) == set(llc.LIVELINK_BLENDSHAPE_ORDER)
