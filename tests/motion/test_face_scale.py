"""The mouth's map to iPhone ARKit scale (motion.face_scale): the fit, the map, and its use by the generator."""
import numpy as np
import pytest

from motion.conventions import ARKIT_INDEX, ARKIT_MOUTH
from motion.face_scale import (GAIN_RANGE, IPHONE_SPEECH_TAKES, MOUTH_NAMES, MouthScale, fit_mouth_scale,
                               iphone_ranges, scale_error)
from tests.conftest import needs_data

M = {n: i for i, n in enumerate(MOUTH_NAMES)}


@needs_data
def test_iphone_speech_takes_are_real_speaking_captures():
    med, per = iphone_ranges()
    assert len(per) == len(IPHONE_SPEECH_TAKES) == 7
    jaw = ARKIT_INDEX["jawOpen"]
    # every take moves the jaw (the silent Sad takes are not in the list), and iPhone speech moves it little
    assert all(r[jaw] > 0.04 for r in per.values())
    assert 0.05 < med[jaw] < 0.2
    # the iPhone reads speech as lower-lip motion: a wider range than the jaw's
    assert med[ARKIT_INDEX["mouthLowerDownLeft"]] > med[jaw]


@needs_data
def test_fit_matches_the_iphone_range_within_one_octave():
    rng = np.random.default_rng(0)
    face = np.zeros((3000, 52))
    jaw, low, close, pucker = (ARKIT_INDEX[n] for n in ("jawOpen", "mouthLowerDownLeft", "mouthClose", "mouthPucker"))
    face[:, jaw] = rng.uniform(0.02, 0.4, 3000)          # wide jaw: the iPhone's is ~4x narrower -> clipped at 0.5
    face[:, low] = face[:, ARKIT_INDEX["mouthLowerDownRight"]] = rng.uniform(0, 0.15, 3000)
    face[:, close] = rng.uniform(0, 0.05, 3000)
    face[:, ARKIT_INDEX["mouthLeft"]] = rng.uniform(0, 0.2, 3000)   # lateral: kept
    face[:, pucker] = rng.uniform(0, 0.005, 3000)           # barely moved by the model: kept
    s = fit_mouth_scale([face[:1500], face[1500:]])
    med = iphone_ranges()[0]
    d_model_low = np.percentile(face[:, low], 95) - np.percentile(face[:, low], 5)
    assert s.gain[M["jawOpen"]] == pytest.approx(GAIN_RANGE[0])
    assert s.gain[M["mouthClose"]] == s.gain[M["jawOpen"]]     # a seal stays a seal
    want = np.clip(0.5 * (med[low] + med[ARKIT_INDEX["mouthLowerDownRight"]]) / d_model_low, *GAIN_RANGE)
    assert s.gain[M["mouthLowerDownLeft"]] == pytest.approx(want, rel=1e-4)
    assert s.gain[M["mouthLowerDownLeft"]] == s.gain[M["mouthLowerDownRight"]]
    assert s.gain[M["mouthLeft"]] == 1 and s.gain[M["mouthPucker"]] == 1
    assert s.rest[M["jawOpen"]] == pytest.approx(np.percentile(face[:, jaw], 5), abs=1e-6)
    # after the map the jaw's range is half the model's, and the scale error falls
    full = face.copy()
    full[:, list(ARKIT_MOUTH)] = s.apply(face[:, list(ARKIT_MOUTH)])
    assert np.ptp(np.percentile(full[:, jaw], [5, 95])) == pytest.approx(0.5 * np.ptp(np.percentile(face[:, jaw], [5, 95])), rel=1e-3)
    before, after = scale_error([face])["jawOpen"], scale_error([full])["jawOpen"]   # log2(model / iPhone)
    assert after == pytest.approx(before - 1, abs=0.01) and after > 0   # one octave closer, still wider


def test_apply_keeps_rest_and_weights_in_range():
    gain = np.ones(27, np.float32)
    gain[M["jawOpen"]], gain[M["mouthSmileLeft"]] = 0.5, 2.0
    rest = np.zeros(27, np.float32)
    rest[M["jawOpen"]] = 0.04
    s = MouthScale(gain, rest)
    x = np.zeros((3, 27), np.float32)
    x[:, M["jawOpen"]] = [0.04, 0.24, 0.0]
    x[:, M["mouthSmileLeft"]] = [0.1, 0.7, 0.0]
    y = s.apply(x)
    assert y[:, M["jawOpen"]] == pytest.approx([0.04, 0.14, 0.02])
    assert y[:, M["mouthSmileLeft"]] == pytest.approx([0.2, 1.0, 0.0])   # 1.4 clipped to 1
    assert y.dtype == np.float32


def test_mouth_close_keeps_its_fraction_of_the_jaw_so_a_seal_stays_a_seal():
    """ARKit's mouthClose closes the lips of the open jaw: sealed lips (mouthClose == jawOpen) stay sealed in
    iPhone scale although the jaw's rest is not mouthClose's (the per-channel map left a gap of
    rest * (1 - gain) = 0.02 jawOpen); half a closure stays half; a shut jaw scales mouthClose by its gain."""
    gain = np.ones(27, np.float32)
    gain[M["jawOpen"]] = gain[M["mouthClose"]] = 0.5
    rest = np.zeros(27, np.float32)
    rest[M["jawOpen"]] = 0.04
    s = MouthScale(gain, rest)
    x = np.zeros((4, 27), np.float32)
    x[:, M["jawOpen"]] = [0.3, 0.3, 0.1, 0.0]
    x[:, M["mouthClose"]] = [0.3, 0.15, 0.2, 0.02]    # sealed, half, beyond the jaw (capped), jaw shut
    y = s.apply(x)
    jaw = y[:, M["jawOpen"]]
    assert jaw == pytest.approx([0.17, 0.17, 0.07, 0.02])
    assert y[:, M["mouthClose"]] == pytest.approx([0.17, 0.085, 0.07, 0.01])
    assert (y[:, M["mouthClose"]] <= jaw + 1e-7).all()
    assert s.apply(x[None])[0] == pytest.approx(y)                   # leading axes are kept


def test_info_round_trip_and_bad_info():
    s = MouthScale(np.linspace(0.5, 2, 27).astype(np.float32), np.linspace(0, 0.05, 27).astype(np.float32), {"a": 1})
    t = MouthScale.from_info(s.to_info())
    assert np.allclose(t.gain, s.gain, atol=1e-4) and np.allclose(t.rest, s.rest, atol=1e-4)
    bad = s.to_info() | {"gain": [1.0] * 26}
    with pytest.raises(ValueError):
        MouthScale.from_info(bad)
    with pytest.raises(ValueError):
        MouthScale.from_info(s.to_info() | {"channels": list(MOUTH_NAMES[::-1])})
    with pytest.raises(ValueError):
        MouthScale.from_info(s.to_info() | {"rest": [float("nan")] * 27})


def test_generator_applies_the_checkpoints_map_offline(tiny_checkpoint, tmp_path):
    from motion.checkpoint import load_models, save_models
    from motion.errors import CheckpointError
    from motion.inference import MotionGenerator
    m = load_models(tiny_checkpoint)
    gain = np.ones(27, np.float32)
    gain[M["jawOpen"]], gain[M["mouthLowerDownLeft"]] = 0.5, 2.0
    s = MouthScale(gain, np.full(27, 0.01, np.float32))
    m.info.setdefault("sampling", {})["mouth_scale"] = s.to_info()
    path = save_models(m, tmp_path / "scaled.safetensors")
    audio = np.random.default_rng(1).standard_normal(16000).astype(np.float32) * 0.1
    native = MotionGenerator(path, mouth_scale=False).generate(audio, seed=3, phones=False).face
    scaled = MotionGenerator(path).generate(audio, seed=3, phones=False).face
    mouth = list(ARKIT_MOUTH)
    assert np.allclose(scaled[:, mouth], s.apply(native[:, mouth]), atol=1e-6)
    other = [i for i in range(52) if i not in mouth]
    assert np.array_equal(scaled[:, other], native[:, other])   # blinks, brows, gaze untouched
    m.info["sampling"]["mouth_scale"] = {"channels": ["jawOpen"], "gain": [1], "rest": [0]}
    broken = save_models(m, tmp_path / "broken.safetensors")
    with pytest.raises(CheckpointError, match="mouth_scale"):
        MotionGenerator(broken)
