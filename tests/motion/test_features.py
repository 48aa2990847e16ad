"""Tests for motion.features: 30 fps alignment, energy/pitch/voicing behaviour, layouts, phones from pocketsphinx."""
from pathlib import Path

import numpy as np
import pytest

from motion.audio import SAMPLE_RATE, load_audio
from motion.errors import AudioError
from motion.features import (FEATURE_DIM, FEATURE_LAYOUT, PHONES, SIL_INDEX, AudioFeatures,
                             extract_features, onset_strength)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
TEST_AUDIO = DATA / "test_audio"
needs_data = pytest.mark.skipif(not TEST_AUDIO.is_dir(),
                                reason=f"real test audio not available ({TEST_AUDIO} does not exist)")

# Festival/ARCTIC label phones that are not spelled like the CMU/pocketsphinx inventory.
_LAB_TO_CMU = {"ax": "AH", "pau": "SIL", "sil": "SIL", "h#": "SIL", "axr": "ER", "el": "L", "em": "M",
               "en": "N", "nx": "N", "dx": "T", "hv": "HH"}
A0009_TEXT = "He turned sharply, and faced Gregson across the table."


def _read_lab(path: Path) -> list[tuple[float, float, str]]:
    """HTS full-context labels: ``start end context`` with times in 100 ns; the phone sits between - and +."""
    out = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        start, end, context = line.split()[:3]
        phone = context.split("-", 1)[1].split("+", 1)[0]
        out.append((int(start) * 1e-7, int(end) * 1e-7, _LAB_TO_CMU.get(phone, phone.upper())))
    return out


def _tone(freq: float, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_layout_and_phone_inventory():
    assert FEATURE_DIM == sum(w for _, w in FEATURE_LAYOUT) == 80 + 3 + len(PHONES)
    assert PHONES[SIL_INDEX] == "SIL" and len(PHONES) == 40 and len(set(PHONES)) == 40


@needs_data
@pytest.mark.parametrize("name", ["cmu_arctic_a0007.wav", "commonvoice_en_17299458.wav"])
def test_shapes_frame_count_finite(name):
    y = load_audio(TEST_AUDIO / name)
    feats = extract_features(y, phones=False)
    T = round(len(y) / SAMPLE_RATE * 30)
    assert feats.num_frames == T
    assert feats.mel.shape == (T, 80) and feats.phones.shape == (T, len(PHONES))
    for arr in (feats.mel, feats.energy, feats.pitch, feats.voiced, feats.phones):
        assert arr.dtype == np.float32 and np.isfinite(arr).all()
    stacked = feats.stack()
    assert stacked.shape == (T, FEATURE_DIM) and stacked.dtype == np.float32
    assert np.isfinite(stacked).all()
    assert np.abs(stacked).max() < 5  # fixed-constant normalisation keeps values near unit range
    assert set(np.unique(feats.voiced)) <= {0.0, 1.0}


def test_num_frames_pads_with_silence_and_truncates():
    y = _tone(200, 1.0)
    long = extract_features(y, num_frames=45, phones=False)
    short = extract_features(y, num_frames=20, phones=False)
    assert long.num_frames == 45 and short.num_frames == 20
    assert long.energy[-3:].max() < np.log(1e-4)   # padded part is silence
    np.testing.assert_allclose(short.energy[:15], long.energy[:15], atol=1e-4)


@needs_data
def test_energy_and_voicing_follow_speech(tmp_path):
    y = np.concatenate([np.zeros(SAMPLE_RATE, dtype=np.float32), load_audio(TEST_AUDIO / "cmu_arctic_a0009.wav")])
    feats = extract_features(y, phones=False)
    silence, speech = feats.energy[:25], feats.energy[40:]
    assert silence.max() < np.log(1e-4)
    assert np.median(speech) > silence.max() + 5
    assert feats.voiced[:25].sum() == 0 and feats.voiced[40:].mean() > 0.3
    assert np.all(feats.pitch[feats.voiced == 0] == 0)


def test_pitch_of_200hz_tone():
    feats = extract_features(_tone(200, 1.0), phones=False)
    inner = slice(3, feats.num_frames - 3)
    assert feats.voiced[inner].min() == 1.0
    assert np.abs(feats.pitch[inner] - np.log(200)).max() < 0.05 * np.log(200)
    assert np.abs(np.exp(np.median(feats.pitch[inner])) - 200) < 200 * 0.05


def test_noise_is_unvoiced():
    noise = 0.1 * np.random.default_rng(0).standard_normal(SAMPLE_RATE).astype(np.float32)
    feats = extract_features(noise, phones=False)
    assert feats.voiced.mean() < 0.2


def test_rejects_wrong_rate_and_stereo():
    with pytest.raises(AudioError):
        extract_features(_tone(200, 1.0), sample_rate=44100)
    with pytest.raises(AudioError):
        extract_features(np.zeros((SAMPLE_RATE, 2), dtype=np.float32))


def test_onset_strength_shape():
    y = np.zeros(2 * SAMPLE_RATE, dtype=np.float32)
    y[SAMPLE_RATE:SAMPLE_RATE + 800] = _tone(1000, 0.05)
    env = onset_strength(y)
    assert env.shape == (60,) and env.dtype == np.float32 and np.isfinite(env).all()
    assert 27 <= int(np.argmax(env)) <= 33  # the burst at 1.0 s


def _agreement(feats: AudioFeatures, lab) -> float:
    ref = [next((p for s, e, p in lab if s <= i / 30 < e), "SIL") for i in range(feats.num_frames)]
    hyp = [PHONES[k] for k in feats.phones.argmax(axis=1)]
    return float(np.mean([a == b for a, b in zip(ref, hyp)]))


@needs_data
def test_phones_agree_with_arctic_labels():
    y = load_audio(TEST_AUDIO / "cmu_arctic_a0009.wav")
    lab = _read_lab(TEST_AUDIO / "cmu_arctic_a0009_phone.lab")
    assert all(p in PHONES for _, _, p in lab)

    allphone = extract_features(y, phones="pocketsphinx")
    assert allphone.phone_source == "pocketsphinx"
    np.testing.assert_allclose(allphone.phones.sum(axis=1), 1.0, atol=1e-5)
    # Measured 0.61 (all-phone decoding); chance is ~1/40.
    assert _agreement(allphone, lab) > 0.45
    assert (allphone.phones[:3].argmax(axis=1) == SIL_INDEX).all()
    assert (allphone.phones[-3:].argmax(axis=1) == SIL_INDEX).all()

    aligned = extract_features(y, transcript=A0009_TEXT)
    assert aligned.phone_source == "aligned"
    # Measured 0.87 with forced alignment to the transcript.
    assert _agreement(aligned, lab) > 0.75
    assert (aligned.phones[:3].argmax(axis=1) == SIL_INDEX).all()
    assert (aligned.phones[-3:].argmax(axis=1) == SIL_INDEX).all()


@needs_data
def test_out_of_dictionary_transcript_falls_back_to_allphone():
    y = load_audio(TEST_AUDIO / "cmu_arctic_a0009.wav")
    fallback = extract_features(y, transcript="qzxv blorptastic", phones="pocketsphinx")
    allphone = extract_features(y, phones="pocketsphinx")
    np.testing.assert_array_equal(fallback.phones, allphone.phones)
    assert fallback.phone_source == "pocketsphinx"


def test_layouts_same_width_and_sil_block():
    y = _tone(200, 1.0)
    f = extract_features(y, phones=False)
    for layout in ("fixed", "fixed-sil", "running"):
        x = f.stack(layout)
        assert x.shape == (f.num_frames, FEATURE_DIM) and x.dtype == np.float32 and np.isfinite(x).all()
    sil = f.stack("fixed-sil")[:, -len(PHONES):]
    assert (sil[:, SIL_INDEX] == 1).all() and sil.sum() == f.num_frames
    np.testing.assert_array_equal(f.stack("running")[:, :83], f.relative)
    with pytest.raises(ValueError):
        f.stack("nope")
    with pytest.raises(ValueError):
        extract_features(y, phones="nope")
    assert extract_features(y, phones=False, relative=False).relative is None


@needs_data
def test_long_audio_pieces_decode_the_same_in_worker_processes(monkeypatch):
    """All-phone pieces of long audio decoded in forked workers give exactly the phones decoded here one
    after the other (each piece has a fresh decoder either way)."""
    from motion import features
    facegood = sorted((TEST_AUDIO.parent / "facegood" / "audio_only").glob("*.wav"))
    y = np.concatenate([load_audio(p) for p in facegood[:2]])[: 45 * SAMPLE_RATE]   # 3 pieces of <= 20 s
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert features.allphone_workers() == 1
    alone = features.phone_segments(y)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert features.allphone_workers() == 3
    assert features.phone_segments(y) == alone
    assert len(alone) > 150 and alone[-1][2] > 44 * 100   # phones up to the end, not one lost search


@needs_data
def test_hama_phones_find_the_hand_labelled_bilabials_and_mostly_the_labelled_phones():
    """The opt-in hama phone source (extra `hama`) on ARCTIC a0009 against its hand labels: the /p/ of
    "sharply" and the /b/ of "table" start within 40 ms of their labels (after HAMA_ONSET_LAG_S), the phone
    sequence is mostly the labelled one, no phone is held past HAMA_MAX_PHONE_S (the clip ends in 'SIL'), and the
    posteriors are one-hot rows of the 40 phones."""
    pytest.importorskip("hama", reason="the optional extra `hama` is not installed (pip install -e '.[hama]')")
    from motion.alignment import read_htk_lab
    from motion.features import hama_segments
    y = load_audio(TEST_AUDIO / "cmu_arctic_a0009.wav")
    ref = read_htk_lab(TEST_AUDIO / "cmu_arctic_a0009_phone.lab")
    segs = hama_segments(y)
    assert segs[0][1] == 0 and segs[-1][2] == len(y) // 160
    assert all(a[2] + 1 == b[1] for a, b in zip(segs, segs[1:]))           # contiguous, no overlap
    for phone in ("P", "B"):
        want = next(p.start_s for p in ref if p.phone == phone)
        got = [s / 100 for name, s, _ in segs if name == phone]
        assert min(abs(g - want) for g in got) <= 0.04, (phone, want, got)
    spoken = [name for name, _, _ in segs if name != "SIL"]
    labelled = [p.phone for p in ref if p.phone != "SIL"]
    d = np.arange(len(spoken) + 1)
    for i, x in enumerate(labelled, 1):                                     # phone error rate (edit distance)
        prev, d[0] = d.copy(), i
        for j, z in enumerate(spoken, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (x != z))
    assert d[-1] / len(labelled) < 0.35
    from motion.features import HAMA_MAX_PHONE_S
    assert all(e - s + 1 <= HAMA_MAX_PHONE_S * 100 for name, s, e in segs if name != "SIL")   # none held on
    assert segs[-1][0] == "SIL" and segs[-1][1] <= (ref[-1].start_s + HAMA_MAX_PHONE_S) * 100  # ends in silence
    f = extract_features(y, phones="hama")
    assert f.phone_source == "hama" and np.allclose(f.phones.sum(1), 1)
    # generate's bounded-memory path reads the same phones (one chunk: the clip decoded whole)
    from motion.features import PHONE_SLICE
    from motion.inference import AudioReader, chunked_conditions
    conds, _, source = chunked_conditions(AudioReader.from_array(y), f.num_frames, ["fixed"], "hama")
    assert source == "hama"
    np.testing.assert_allclose(conds["fixed"][:, PHONE_SLICE], f.phones, atol=1e-6)


def test_hama_phones_are_refused_by_the_streaming_features():
    """hama decodes whole utterances: a live stream cannot take it (a clear error, not silence)."""
    from motion.features import StreamingFeatures
    with pytest.raises(ValueError, match="whole utterances"):
        StreamingFeatures(["fixed"], "hama")
