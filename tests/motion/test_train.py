"""Training pieces: mirroring, phone dropout and random window lengths in the batches."""
import numpy as np

from motion.clip import MotionClip
from motion.conventions import ARKIT_INDEX, JOINT_INDEX
from motion.features import FEATURE_DIM, SIL_INDEX
from motion.rotations import axis_angle_to_quat
from motion.train import PHONE_SLICE, Item, TrainConfig, WindowSampler, mirror_clip
from tests.conftest import REPO


def _clip(T=20, seed=0):
    rng = np.random.default_rng(seed)
    rot = axis_angle_to_quat(rng.normal(0, 0.4, (T, 55, 3))).astype(np.float32)
    return MotionClip(30.0, rng.uniform(0, 1, (T, 52)), rot, rng.normal(0, 0.1, (T, 3)))


def test_mirroring_twice_is_the_identity_and_once_swaps_sides():
    c = _clip()
    m = mirror_clip(c)
    mm = mirror_clip(m)
    np.testing.assert_allclose(mm.face, c.face, atol=1e-6)
    np.testing.assert_allclose(np.abs(np.sum(mm.rotations * c.rotations, -1)), 1.0, atol=1e-5)
    np.testing.assert_allclose(mm.translation, c.translation, atol=1e-6)
    # once: left and right swap (ARKit channels and joints), x translation flips
    np.testing.assert_allclose(m.face[:, ARKIT_INDEX["eyeBlinkLeft"]], c.face[:, ARKIT_INDEX["eyeBlinkRight"]])
    l, r = JOINT_INDEX["left_elbow"], JOINT_INDEX["right_elbow"]
    q = c.rotations[:, r] * np.array([1, -1, -1, 1], np.float32)    # mirror about the YZ plane
    np.testing.assert_allclose(np.abs(np.sum(m.rotations[:, l] * q, -1)), 1.0, atol=1e-5)
    np.testing.assert_allclose(m.translation[:, 0], -c.translation[:, 0])


def test_phone_slice_is_the_phone_block():
    assert PHONE_SLICE.stop == FEATURE_DIM and PHONE_SLICE.stop - PHONE_SLICE.start == 40
    assert SIL_INDEX == 0


def test_window_sampler_draws_the_requested_length():
    T = 200
    items = [Item("a", "beat2", 1, np.zeros((T, 4), np.float32), np.zeros((T, 2)), np.zeros((T, 2)),
                  np.ones((T, 2), bool), np.ones((T, 2), bool))]
    s = WindowSampler(items, 120, np.random.default_rng(0))
    starts = [s.draw(40)[1] for _ in range(200)]
    assert min(starts) >= 0 and max(starts) <= T - 40 and max(starts) > 120 - 40
    assert TrainConfig().phone_dropout == 0.0 and TrainConfig.from_toml(REPO / "configs" / "default.toml").phone_dropout == 0.5
