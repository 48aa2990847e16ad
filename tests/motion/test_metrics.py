"""Body metrics: known answers on constructed motion."""
import numpy as np

from motion import metrics as M
from motion.conventions import JOINT_INDEX
from motion.rotations import axis_angle_to_quat


def _swing(T=120, fps=30.0, freq=1.0, amp=0.6):
    """Both elbows swinging sinusoidally about +Y: speed minima twice per period."""
    t = np.arange(T) / fps
    rot = np.zeros((T, 55, 4), np.float32)
    rot[..., 3] = 1
    for n in ("left_elbow", "right_elbow"):
        aa = np.zeros((T, 3))
        aa[:, 1] = amp * np.sin(2 * np.pi * freq * t)
        rot[:, JOINT_INDEX[n]] = axis_angle_to_quat(aa)
    return rot, t


def test_motion_beats_are_the_speed_minima_of_a_swing():
    rot, _ = _swing()
    beats = M.motion_beats(M.joint_positions(rot), 30.0)
    # sin: speed minima at the turning points t = 0.25 + 0.5 k
    expect = 0.25 + 0.5 * np.arange(8)
    assert len(beats) >= 6
    assert np.abs(beats[:, None] - expect[None]).min(1).max() < 0.05


def test_beat_consistency_known_values():
    beats = np.array([0.25, 0.75, 1.25])
    assert M.beat_consistency(np.array([0.25, 0.75]), beats) == 1.0
    v = M.beat_consistency(np.array([0.55]), beats, sigma=0.3)
    assert abs(v - np.exp(-0.2 ** 2 / (2 * 0.09))) < 1e-9
    assert M.beat_consistency(np.array([0.5]), np.zeros(0)) == 0.0   # a still body has no beats


def test_l1_diversity_jerk_and_still_pose():
    rot, _ = _swing()
    pos = M.joint_positions(rot)
    still = np.repeat(pos[:1], len(pos), 0)
    assert M.l1_diversity(still) == 0.0 and M.l1_diversity(pos) > 0.05
    assert M.jerk(still, 30.0).max() == 0.0
    assert M.motion_beats(still, 30.0).size == 0


def test_hellinger_bounds():
    p = M.speed_histogram(np.full(100, 1.0))
    q = M.speed_histogram(np.full(100, 5.0))
    assert M.hellinger(p, p) < 1e-7
    assert abs(M.hellinger(p, q) - 1.0) < 1e-7
    assert 0 < M.hellinger(p, 0.5 * p + 0.5 * q) < 1


def test_seam_ratio_sees_a_jump():
    rot, _ = _swing(T=150)
    pos = M.joint_positions(rot)
    assert M.seam_ratio(pos, 30.0, [60, 120]) < 1.5
    jumped = pos.copy()
    jumped[60:] += 0.02                 # a 2 cm jump at frame 60
    assert M.seam_ratio(jumped, 30.0, [60]) > 5


def test_seam_ratio_on_dense_seams_needs_radius_0_and_phase_profile_finds_a_periodic_bump():
    rot, _ = _swing(T=150)
    pos = M.joint_positions(rot)
    hops = list(range(6, 150, 6))
    assert np.isnan(M.seam_ratio(pos, 30.0, hops))          # radius 2 covers every frame
    assert 0.7 < M.seam_ratio(pos, 30.0, hops, radius=0) < 1.4
    prof = M.jerk_phase_profile(pos, 30.0, 6)
    assert prof.shape == (6,) and prof.max() < 1.5
    bumped = pos.copy()
    bumped[3::6] += 0.01                                     # a 1 cm bump every 6 frames, at phase 3
    prof = M.jerk_phase_profile(bumped, 30.0, 6)
    assert prof.max() > 1.5 and M.seam_ratio(bumped, 30.0, list(range(4, 150, 6)), radius=0) > 1.2
