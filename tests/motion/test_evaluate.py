"""Metric functions used by the evaluation report and the CLI tests."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation as R

from motion.conventions import JOINT_INDEX
from motion.evaluate import (angular_speed, joint_limit, limit_violations, log_energy, max_jaw_in_silence,
                             pearson_best_lag, silences)


def test_pearson_best_lag_finds_the_shift():
    rng = np.random.default_rng(0)
    y = np.convolve(rng.normal(size=300), np.ones(5) / 5, "same")
    x = np.roll(y, 2)  # x lags y by 2 frames
    r0, best, lag = pearson_best_lag(x, y)
    assert lag == 2 and best > 0.99 and r0 < best


def test_silences_and_jaw_in_silence():
    sr = 16000
    t = np.arange(sr * 3) / sr
    audio = (0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32)
    audio[sr: sr * 2] = 0  # 1 s of silence in the middle
    e = log_energy(audio, 90)
    sil = silences(e)
    assert len(sil) == 1 and abs(sil[0][0] - 30) <= 2 and abs(sil[0][1] - 60) <= 2
    jaw = np.full(90, 0.5)
    jaw[32:58] = 0.0
    assert max_jaw_in_silence(jaw, e)[0] < 0.1      # closed apart from the 100 ms transitions
    jaw[45] = 0.4
    assert max_jaw_in_silence(jaw, e)[0] == pytest.approx(0.4)


def test_angular_speed_and_limits():
    T = 31
    rot = np.tile(np.array([0, 0, 0, 1.0]), (T, 55, 1))
    ang = np.linspace(0, 1.0, T)  # 1 rad over 1 s about z on the left elbow
    rot[:, JOINT_INDEX["left_elbow"]] = R.from_rotvec(np.outer(ang, [0, 0, 1])).as_quat()
    sp = angular_speed(rot, 30.0)
    assert np.allclose(sp[:, JOINT_INDEX["left_elbow"]], 1.0, atol=1e-6) and sp[:, 0].max() == 0
    assert limit_violations(rot) == {}
    rot[-1, JOINT_INDEX["spine2"]] = R.from_rotvec([1.2, 0, 0]).as_quat()  # 69 degrees > 40
    assert limit_violations(rot) == {"spine2": 1}
    assert joint_limit("left_pinky2") == pytest.approx(np.deg2rad(110))
    assert joint_limit("right_thumb1") == pytest.approx(np.deg2rad(90))
    assert joint_limit("left_knee") is None


def test_lipsync_section_without_prepared_videos_says_so(tmp_path, monkeypatch):
    """No runs/prepared: the video rows are skipped with a stated reason, nothing crashes."""
    from motion import evaluate as E
    from motion.inference import MotionGenerator
    monkeypatch.setattr(E, "DEFAULT_PREPARED", tmp_path / "no_prepared")
    cfg = tmp_path / "cfg.toml"
    cfg.write_text("holdout_clips = []\n")  # nothing held out: no generation needed
    lines, pngs = E.lipsync_section(MotionGenerator(), tmp_path, config=str(cfg), streaming=False,
                                    progress=lambda s: None)
    text = "\n".join(lines)
    assert "No prepared talking videos" in text and "rows are skipped" in text
    assert pngs == []
