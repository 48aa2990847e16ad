"""``motion.tracking``: the one MediaPipe/PyAV tracker of ``prepare`` and the renderer's facial keypoints.

Importing it (and ``motion.prepare``) loads neither MediaPipe, PyAV nor SciPy; frames of a real GRID video
come with strictly increasing millisecond timestamps; non-videos fail with one TrackingError; hands go to
the side whose pose wrist is seen and near (made-up landmarker results); on real frames ``prepare``'s track and
``generator.face_keypoints``'s are the same numbers. Video tests skip without ../shared/data, PyAV or mediapipe.
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from motion import tracking
from motion.tracking import MP_POSE, TrackingError

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
GRID = DATA / "videos" / "grid" / "bbaf2n.mpg"  # 3 s, 25 fps, 360x288
REPO = Path(__file__).resolve().parents[2]
needs_av = pytest.mark.skipif(importlib.util.find_spec("av") is None or not GRID.is_file(),
                              reason=f"needs PyAV and the GRID video {GRID} (a user's clone has no ../shared)")
needs_mp = pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None, reason="mediapipe is not installed")


def test_importing_tracking_and_prepare_loads_no_mediapipe_av_or_scipy():
    code = ("import sys, motion.tracking, motion.prepare, motion.prepare.cli, motion.landmark_ik\n"
            "print([m for m in ('mediapipe', 'av', 'torch') if m in sys.modules])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout.replace("'", '"')) == [], r.stderr
    code = "import sys, motion.tracking, motion.prepare, motion.prepare.cli\nprint('scipy' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.stdout.strip() == "False", r.stderr


def test_one_table_of_extensions_and_landmarks():
    from generator import face_keypoints
    from motion import landmark_ik
    from motion.prepare.discovery import _job_for

    assert face_keypoints.VIDEO_EXTS is tracking.VIDEO_EXTS
    assert landmark_ik.MP_POSE is MP_POSE and landmark_ik.MP_HAND_POINTS is tracking.MP_HAND_POINTS
    assert all(_job_for(Path(f"x/clip{e.upper()}")).kind == "video" for e in tracking.VIDEO_EXTS)
    assert _job_for(Path("x/clip.wav")) is None


def test_missing_task_file_is_one_error(tmp_path):
    with pytest.raises(TrackingError, match="face_landmarker.task not found"):
        tracking.task_path(tracking.FACE_TASK, tmp_path)
    if importlib.util.find_spec("mediapipe") is not None:
        (tmp_path / tracking.FACE_TASK).write_bytes(b"")
        with pytest.raises(TrackingError, match="pose_landmarker_full.task"):
            tracking.Landmarkers(tmp_path)  # every file is checked before any landmarker is made


@needs_av
def test_video_frames_have_increasing_timestamps(tmp_path):
    with tracking.VideoReader(GRID) as r:
        assert r.size == (360, 288) and r.nominal_fps == 25.0
        frames = list(r.frames(stride=3))
    idx = [k for k, _, _, _ in frames]
    ms = np.array([m for _, _, m, _ in frames])
    assert idx[:3] == [0, 3, 6] and len(frames) == 25 and np.all(np.diff(ms) > 0)
    assert frames[0][3].shape == (288, 360, 3) and frames[0][3].dtype == np.uint8
    np.testing.assert_allclose(ms, np.round(np.array([t for _, t, _, _ in frames]) * 1000))
    assert [k for k, _, _ in tracking.iter_video_frames(GRID)] == list(range(75))

    noise = tmp_path / "noise.mp4"
    noise.write_bytes(b"\x00" * 5000)
    with pytest.raises(TrackingError, match="cannot open video"):
        tracking.VideoReader(noise)
    wav = DATA / "facegood" / "paired" / "1114_2_01.wav"
    with pytest.raises(TrackingError, match="no video stream"):
        tracking.VideoReader(wav)


def _pt(x, y, z=0.0):
    return SimpleNamespace(x=x, y=y, z=z)


def _hand(wrist_xy, score):
    img = [_pt(*wrist_xy)] + [_pt(0.0, 0.0)] * 20
    world = [_pt(0.01 * k, 0.02 * k, 0.03 * k) for k in range(21)]
    return img, world, [SimpleNamespace(score=score)]


def test_hands_go_to_the_seen_pose_wrist_nearby():
    vis = np.zeros(33)
    img = np.full((33, 2), np.nan)
    vis[MP_POSE["left_wrist"]], img[MP_POSE["left_wrist"]] = 0.9, (0.30, 0.60)
    vis[MP_POSE["right_wrist"]], img[MP_POSE["right_wrist"]] = 0.2, (0.70, 0.60)  # not seen
    hands = [_hand((0.31, 0.61), 0.8),   # at the left wrist
             _hand((0.29, 0.60), 0.9),   # also at the left wrist, more confident: wins
             _hand((0.70, 0.60), 0.99),  # at the right wrist, which the pose model does not see: dropped
             _hand((0.30, 0.75), 0.99)]  # 0.15 from the left wrist: farther than HAND_WRIST_MAX_DIST
    res = SimpleNamespace(hand_landmarks=[h[0] for h in hands], hand_world_landmarks=[h[1] for h in hands],
                          handedness=[h[2] for h in hands])
    flip = lambda xyz: np.asarray(xyz, float) * [1, -1, -1]  # noqa: E731
    H, c = tracking.assign_hands(res, vis, img, flip)
    np.testing.assert_allclose(c, [0.9, 0.0])
    np.testing.assert_allclose(H[0, 5], [0.05, -0.10, -0.15])
    assert np.isnan(H[1]).all()


@needs_av
@needs_mp
def test_prepare_and_face_keypoints_track_the_same_numbers():
    """The renderer's face track and ``prepare``'s are one computation: same blendshapes, head rotations
    and validity on the first 12 frames of a GRID clip, and plausible values (a frontal face, orthonormal
    head rotations, landmarks inside the frame)."""
    from generator.face_keypoints import track_face_video

    with tracking.Landmarkers(pose=False, hands=False) as lm:
        vt = tracking.track_video(GRID, lm, max_frames=12, face_landmarks=True)
    ft = track_face_video(GRID, max_frames=12)
    lmk = tracking.create_face_landmarker("video")    # a caller's own landmarker, stride 2: frames 0, 2, ..
    try:
        ft2 = track_face_video(GRID, max_frames=6, stride=2, landmarker=lmk)
    finally:
        lmk.close()
    assert list(ft2.frame_index) == [0, 2, 4, 6, 8, 10] and ft2.ok.all()
    np.testing.assert_allclose(ft2.head, ft.head[::2], atol=0.05)   # same frames, a different VIDEO-mode history
    assert vt.face_ok.all() and ft.ok.all() and len(vt.times) == 12 and vt.decode_errors == 0
    np.testing.assert_array_equal(ft.blendshapes, vt.face.astype(np.float32))
    np.testing.assert_array_equal(ft.head, vt.head)
    np.testing.assert_array_equal(ft.landmarks, vt.face_landmarks)
    np.testing.assert_allclose(np.einsum("nij,nkj->nik", vt.head, vt.head), np.tile(np.eye(3), (12, 1, 1)), atol=1e-9)
    assert np.isnan(vt.pose).all() and (vt.hand_conf == 0).all()   # pose and hands not run
    x, y = vt.face_landmarks[..., 0], vt.face_landmarks[..., 1]
    assert 0 < x.min() and x.max() < 360 and 0 < y.min() and y.max() < 288
    assert vt.face[:, tracking.ARKIT_INDEX["tongueOut"]].max() == 0.0
