"""Tests for motion.audio: loading any file to 16 kHz mono float32, and clear errors for bad input."""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from motion.audio import MIN_DURATION_S, SAMPLE_RATE, load_audio, prepare_audio
from motion.errors import AudioError

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
TEST_AUDIO = DATA / "test_audio"
needs_data = pytest.mark.skipif(not TEST_AUDIO.is_dir(),
                                reason=f"real test audio not available ({TEST_AUDIO} does not exist)")


def _utterance() -> np.ndarray:
    y, sr = sf.read(TEST_AUDIO / "cmu_arctic_a0009.wav", dtype="float32")
    assert sr == SAMPLE_RATE and y.ndim == 1
    return y


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


@needs_data
def test_real_file_loads_unchanged():
    y = load_audio(TEST_AUDIO / "cmu_arctic_a0009.wav")
    assert y.dtype == np.float32 and y.ndim == 1
    np.testing.assert_allclose(y, _utterance(), atol=1e-6)


@needs_data
def test_stereo_44k_loads_as_mono_16k(tmp_path):
    orig = _utterance()
    hi = soxr.resample(orig, SAMPLE_RATE, 44100, quality="HQ")
    stereo = np.stack([hi, 0.5 * hi], axis=1)  # mean of channels = 0.75 * signal
    path = tmp_path / "stereo_44k.wav"
    sf.write(path, stereo, 44100, subtype="PCM_16")
    y = load_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - len(orig)) <= 2
    assert _corr(y, orig) > 0.99
    assert np.std(y) == pytest.approx(0.75 * np.std(orig), rel=0.02)


@needs_data
@pytest.mark.parametrize("fmt,subtype,min_corr", [("FLAC", "PCM_16", 0.999), ("OGG", "VORBIS", 0.9)])
def test_compressed_round_trip(tmp_path, fmt, subtype, min_corr):
    orig = _utterance()
    path = tmp_path / f"utt.{fmt.lower()}"
    sf.write(path, orig, SAMPLE_RATE, format=fmt, subtype=subtype)
    y = load_audio(path)
    assert y.dtype == np.float32
    assert abs(len(y) - len(orig)) <= 2
    assert _corr(y, orig) > min_corr


@needs_data
def test_mp3_at_22k_loads(tmp_path):
    orig = _utterance()
    path = tmp_path / "utt.mp3"
    try:
        sf.write(path, soxr.resample(orig, SAMPLE_RATE, 22050), 22050, format="MP3")
    except (sf.LibsndfileError, ValueError, TypeError) as exc:  # pragma: no cover - depends on libsndfile
        pytest.skip(f"this libsndfile cannot write MP3: {exc}")
    y = load_audio(path)
    # MP3 encoders add a little delay/padding; length and content stay close.
    assert abs(len(y) - len(orig)) < 0.1 * SAMPLE_RATE
    lags = range(0, 2000, 1)
    best = max(_corr(y[k:], orig) for k in lags[::8])
    assert best > 0.8


def test_silence_is_valid(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros((SAMPLE_RATE, 2), dtype=np.float32), 48000)
    y = load_audio(path)
    assert y.dtype == np.float32 and len(y) == SAMPLE_RATE // 3
    assert not y.any()


def _bad_inputs(tmp: Path) -> dict[str, Path]:
    files = {}
    files["missing"] = tmp / "missing_file.wav"
    (tmp / "a_directory.wav").mkdir()
    files["directory"] = tmp / "a_directory.wav"
    files["empty"] = tmp / "empty_file.wav"
    files["empty"].write_bytes(b"")
    files["text"] = tmp / "not_audio.wav"
    files["text"].write_text("this is not audio at all\n" * 20)
    files["zero_samples"] = tmp / "zero_samples.wav"
    sf.write(files["zero_samples"], np.zeros(0, dtype=np.float32), SAMPLE_RATE)
    files["nan"] = tmp / "has_nan.wav"
    nan = np.zeros(SAMPLE_RATE, dtype=np.float32)
    nan[100] = np.nan
    sf.write(files["nan"], nan, SAMPLE_RATE, subtype="FLOAT")
    files["inf"] = tmp / "has_inf.wav"
    inf = np.zeros(SAMPLE_RATE, dtype=np.float32)
    inf[5] = np.inf
    sf.write(files["inf"], inf, SAMPLE_RATE, subtype="FLOAT")
    files["short"] = tmp / "too_short.wav"
    sf.write(files["short"], 0.1 * np.ones(int(0.1 * SAMPLE_RATE), dtype=np.float32), SAMPLE_RATE)
    return files


@pytest.mark.parametrize("kind", ["missing", "directory", "empty", "text", "zero_samples", "nan", "inf",
                                  "short"])
def test_bad_input_raises_audio_error_naming_file(tmp_path, kind):
    path = _bad_inputs(tmp_path)[kind]
    with pytest.raises(AudioError) as info:
        load_audio(path)
    message = str(info.value)
    assert path.name in message
    assert "\n" not in message
    assert isinstance(info.value, ValueError)


def test_minimum_duration_boundary():
    ok = prepare_audio(np.zeros(int(MIN_DURATION_S * SAMPLE_RATE)), SAMPLE_RATE)
    assert len(ok) == int(MIN_DURATION_S * SAMPLE_RATE)
    with pytest.raises(AudioError, match="shorter"):
        prepare_audio(np.zeros(int(MIN_DURATION_S * SAMPLE_RATE) - 1), SAMPLE_RATE)


def test_prepare_audio_int16_multichannel_and_rate():
    t = np.arange(8000) / 8000
    tone = (0.5 * np.sin(2 * np.pi * 300 * t) * 32767).astype(np.int16)
    y = prepare_audio(np.stack([tone, tone, tone], axis=1), 8000)
    assert y.dtype == np.float32 and abs(len(y) - SAMPLE_RATE) <= 1
    assert np.max(np.abs(y)) == pytest.approx(0.5, abs=0.02)
    with pytest.raises(AudioError):
        prepare_audio(np.zeros((4, 4, 4)), SAMPLE_RATE)
    with pytest.raises(AudioError):
        prepare_audio(np.zeros(SAMPLE_RATE), 0)


def test_a_text_file_named_mp3_is_not_decodable_audio(tmp_path):
    """libsndfile calls an MPEG it cannot open "File does not exist"; the file exists, so we say what it is."""
    from motion.audio import probe_audio
    path = tmp_path / "notes.mp3"
    path.write_text("a text file, not audio\n" * 40)
    for read in (load_audio, probe_audio):
        with pytest.raises(AudioError, match="is not decodable audio") as info:
            read(path)
        assert "does not exist" not in str(info.value)


def test_probe_audio_reads_the_header_only(tmp_path):
    from motion.audio import probe_audio
    sf.write(tmp_path / "a.flac", np.zeros(int(2.5 * 22050), np.float32), 22050)
    assert probe_audio(tmp_path / "a.flac") == pytest.approx(2.5)
    sf.write(tmp_path / "s.wav", np.zeros(100, np.float32), 16000)
    with pytest.raises(AudioError, match="shorter"):
        probe_audio(tmp_path / "s.wav")
    with pytest.raises(AudioError, match="directory"):
        probe_audio(tmp_path)
