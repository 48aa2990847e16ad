"""Idle face model: the shipped parameters, sampling statistics against the data, and fitting."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from motion.conventions import ARKIT_INDEX, NUM_ARKIT
from motion.face_idle import (AR_CHANNELS, GAZE_CHANNELS, IDLE_CHANNELS, FaceIdleModel, _fixations,
                              detect_blinks, gaze_from_face)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(),
                                reason=f"real data folder {DATA} is absent (a user's clone has no ../shared)")
BROWS = ("browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight")


@pytest.fixture(scope="module")
def model():
    return FaceIdleModel.default()


@pytest.fixture(scope="module")
def long_sample(model):
    return model.sample(30 * 600, seed=1)


def test_default_loads_and_is_fitted(model):
    assert model.fps == 30.0 and model.channels == list(AR_CHANNELS)
    assert np.asarray(model.quantiles).shape == (len(AR_CHANNELS), 101)
    assert model.blink["count"] > 5 and 10 < model.blink["rate_per_min"] < 40
    assert 0.05 < model.blink["fwhm_mean_s"] < 0.4
    assert "neurosync" in model.source


def test_shapes_range_mask_and_quaternions(model):
    s = model.sample(300, seed=3)
    assert s.face.shape == (300, NUM_ARKIT) and s.face.dtype == np.float32
    assert s.face.min() >= 0.0 and s.face.max() <= 1.0
    assert s.mask.sum() == len(IDLE_CHANNELS)
    assert not s.face[:, ~s.mask].any()
    assert s.mask[ARKIT_INDEX["eyeBlinkLeft"]] and not s.mask[ARKIT_INDEX["jawOpen"]]
    assert s.eye_rotations.shape == (300, 2, 4) and s.eye_rotations.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(s.eye_rotations, axis=-1), 1.0, atol=1e-5)
    assert model.sample(0).face.shape == (0, NUM_ARKIT)


def test_deterministic_with_seed(model):
    a, b, c = model.sample(200, seed=7), model.sample(200, seed=7), model.sample(200, seed=8)
    np.testing.assert_array_equal(a.face, b.face)
    np.testing.assert_array_equal(a.eye_rotations, b.eye_rotations)
    assert not np.array_equal(a.face, c.face)


def test_blink_rate_and_duration(model):
    data_rate = model.blink["rate_per_min"]
    rates, widths = [], []
    for seed in range(10):  # 10 x 60 s
        s = model.sample(30 * 60, seed=seed)
        b = detect_blinks(s.face, 30.0)
        rates.append(b.count)
        widths.extend(b.fwhm_s)
    assert abs(np.mean(rates) - data_rate) / data_rate < 0.3, (np.mean(rates), data_rate)
    assert abs(np.mean(widths) - model.blink["fwhm_mean_s"]) / model.blink["fwhm_mean_s"] < 0.3
    # both eyes blink together
    s = model.sample(30 * 60, seed=0)
    L, R = s.face[:, ARKIT_INDEX["eyeBlinkLeft"]], s.face[:, ARKIT_INDEX["eyeBlinkRight"]]
    assert np.corrcoef(L, R)[0, 1] > 0.8


def test_other_fps_keeps_blink_rate(model):
    s = model.sample(60 * 120, fps=60.0, seed=2)
    assert s.face.shape[0] == 60 * 120
    b = detect_blinks(s.face, 60.0)
    assert 0.4 < b.count / 2.0 / model.blink["rate_per_min"] < 1.8


def test_energy_coupling_is_small_and_raises_brows(model):
    T = 30 * 120
    energy = np.where((np.arange(T) // 45) % 2 == 0, 1.0, 0.0)
    a = model.sample(T, seed=4)
    b = model.sample(T, seed=4, energy=energy)
    i = ARKIT_INDEX["browInnerUp"]
    hi = energy > 0.5
    assert (b.face[hi, i] - a.face[hi, i]).mean() > 0
    assert np.abs(b.face[:, i] - a.face[:, i]).mean() < 0.05
    j = ARKIT_INDEX["eyeSquintLeft"]
    np.testing.assert_array_equal(a.face[:, j], b.face[:, j])
    with pytest.raises(ValueError):
        model.sample(10, energy=np.zeros(9))


def test_save_load_round_trip(model, tmp_path):
    p = model.save(tmp_path / "m.json")
    m2 = FaceIdleModel.load(p)
    np.testing.assert_array_equal(m2.sample(100, seed=1).face, model.sample(100, seed=1).face)
    json.loads(p.read_text())
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError):
        FaceIdleModel.load(tmp_path / "bad.json")


# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data_face():
    from motion.datasets import load_neurosync
    return load_neurosync(DATA)[0].clip.face


@needs_data
def test_brow_and_slow_channel_stats_match_data(long_sample, data_face):
    for n in BROWS + ("eyeSquintLeft", "cheekSquintRight", "noseSneerLeft"):
        i = ARKIT_INDEX[n]
        sd, ss = data_face[:, i].std(), long_sample.face[:, i].std()
        if sd < 1e-6:
            assert ss < 1e-6, n
            continue
        assert abs(ss - sd) / sd < 0.5, (n, ss, sd)
        assert abs(long_sample.face[:, i].mean() - data_face[:, i].mean()) < 0.5 * sd + 0.01, n


@needs_data
def test_gaze_amplitude_matches_data(model, long_sample, data_face):
    g_data = gaze_from_face(data_face, model.gaze["scale"]).mean(axis=1)
    g = long_sample.gaze.astype(np.float64)
    for k in range(2):  # spread of yaw and pitch
        assert abs(g[:, k].std() - g_data[:, k].std()) / g_data[:, k].std() < 0.5
    disp = lambda x: np.linalg.norm(x[15:] - x[:-15], axis=1).mean()  # noqa: E731  0.5 s displacement
    assert abs(disp(g) - disp(g_data)) / disp(g_data) < 0.5
    amp_data = _fixations(g_data, 30.0, model.gaze["saccade_speed"])[2].mean()
    amp = _fixations(g, 30.0, model.gaze["saccade_speed"])[2].mean()
    assert abs(amp - amp_data) / amp_data < 0.5, (np.degrees(amp), np.degrees(amp_data))
    # eyeLook shapes and eye rotations agree: yaw > 0 (face's left) <-> eyeLookOutLeft
    from scipy.spatial.transform import Rotation
    fwd = Rotation.from_quat(long_sample.eye_rotations[:, 0]).apply([0, 0, 1])
    f = long_sample.face
    left = f[:, ARKIT_INDEX["eyeLookOutLeft"]] - f[:, ARKIT_INDEX["eyeLookInLeft"]]
    assert np.corrcoef(fwd[:, 0], left)[0, 1] > 0.9
    for n in GAZE_CHANNELS:
        i = ARKIT_INDEX[n]
        assert abs(f[:, i].mean() - data_face[:, i].mean()) < 0.1, n


@needs_data
def test_fit_default_reproduces_shipped_json(model):
    from motion.face_idle import fit_default
    m = fit_default(DATA)
    assert m.blink["count"] == model.blink["count"]
    np.testing.assert_allclose(m.quantiles, model.quantiles, atol=1e-9)
    np.testing.assert_allclose(m.phi, model.phi, atol=1e-9)
    assert m.gaze["scale"] == pytest.approx(model.gaze["scale"])


def test_fit_rejects_short_input():
    with pytest.raises(ValueError):
        FaceIdleModel.fit(np.zeros((10, NUM_ARKIT)), 30.0)
    with pytest.raises(ValueError):
        FaceIdleModel.fit(np.zeros((100, 51)), 30.0)
