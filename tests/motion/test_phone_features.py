"""Tests for motion.phone_features: running normalisation, the distilled phone classifier against a real
alignment, streaming == offline features, and a mouth that does not depend on loudness or voice."""
import sys
from pathlib import Path

import numpy as np
import pytest

from motion.audio import SAMPLE_RATE, load_audio
from motion.features import PHONES, StreamingFeatures, extract_features
from motion.phone_features import (CLASSIFIER_LEFT_FRAMES, CLASSIFIER_LOOKAHEAD_FRAMES, RunningNorm,
                                   classifier_path, phone_posteriors)

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"
TEST_AUDIO = DATA / "test_audio"
needs_data = pytest.mark.skipif(not TEST_AUDIO.is_dir(),
                                reason=f"real test audio not available ({TEST_AUDIO} does not exist)")
SAMPLE = REPO / "chatanyone" / "samples" / "cmu_arctic_a0007.wav"


def _speech() -> np.ndarray:
    return load_audio(SAMPLE)


def test_running_norm_does_not_depend_on_blocks():
    f = extract_features(_speech(), phones=False, relative=False)
    whole = RunningNorm().normalise(f.mel, f.energy, f.pitch, f.voiced)
    rn = RunningNorm()
    parts = [rn.normalise(f.mel[a:a + 7], f.energy[a:a + 7], f.pitch[a:a + 7], f.voiced[a:a + 7])
             for a in range(0, f.num_frames, 7)]
    for k in range(3):
        np.testing.assert_allclose(np.concatenate([p[k] for p in parts]), whole[k], atol=1e-5)


def test_relative_features_ignore_loudness():
    y = _speech()
    loud, quiet = extract_features(y, phones=False), extract_features(y * 0.25, phones=False)  # -12 dB
    # after the 0.5 s warm-up the relative log-mel and energy of speech frames are the same
    speech = loud.energy > np.log(0.01)
    speech[:30] = False
    d_rel = np.abs(loud.relative[speech, :81] - quiet.relative[speech, :81]).mean()
    d_fixed = np.abs(loud.stack("fixed")[speech, :81] - quiet.stack("fixed")[speech, :81]).mean()
    # fixed normalisation: log-mel moves by log(16)/4 = 0.69 per band; relative: measured 0.07
    assert d_rel < 0.1 and d_rel < d_fixed / 5


def _score(y, phones):
    sys.path.insert(0, str(REPO / "benchmarks"))
    from phone_features import posterior_segments, read_lab, score
    f = extract_features(y, phones=phones)
    assert f.phones.shape == (f.num_frames, len(PHONES))
    np.testing.assert_allclose(f.phones.sum(1), 1.0, atol=1e-4)
    return score(posterior_segments(f.phones), read_lab())


@needs_data
def test_default_phones_match_arctic_alignment():
    """The model's default phone source (pocketsphinx all-phone, 30 fps posteriors) on a speaker the model
    never heard (ARCTIC 'bdl'), against the hand-checked .lab: onsets within 30 ms (median)."""
    s = _score(load_audio(TEST_AUDIO / "cmu_arctic_a0009.wav"), "pocketsphinx")
    # measured at 30 fps (benchmarks/phone_features.py has the 10 ms numbers): onset 8 ms, frame accuracy
    # 0.56, PER 0.42
    assert s["onset_ms"] <= 30.0
    assert s["frame_acc"] >= 0.45
    assert s["per"] <= 0.6


@needs_data
def test_distilled_classifier_on_an_unseen_speaker():
    """The distilled classifier (not the default: it generalises poorly from its three training speakers)
    still places the phones it finds at their onsets."""
    s = _score(load_audio(TEST_AUDIO / "cmu_arctic_a0009.wav"), "classifier")
    # measured: onset 22 ms, frame accuracy 0.20, PER 0.79 (a random classifier: ~0.03 frame accuracy)
    assert s["onset_ms"] <= 40.0
    assert s["frame_acc"] >= 0.12


@needs_data
def test_streaming_features_equal_offline():
    """StreamingFeatures on overlapping buffers (as MotionStream cuts them) gives the offline numbers, with the
    classifier's phones, for every frame whose classifier lookahead has arrived."""
    y = load_audio(TEST_AUDIO / "commonvoice_en_17299458.wav")[: 3 * SAMPLE_RATE]
    off = extract_features(y, phones="classifier")
    T = off.num_frames
    sf = StreamingFeatures(["running", "fixed-sil"], "classifier")
    got_r = np.full((T, off.stack("running").shape[1]), np.nan, np.float32)
    got_f = np.full_like(got_r, np.nan)
    hop, W = 6, 48
    for end in range(hop + 3, T + 1, hop):
        start = max(0, end - W)
        fs = max(0, ((start - 6) // 3) * 3)
        a, b = fs * 1600 // 3, (end * 1600 + 2) // 3 + 1024
        buf = y[a:b]
        if len(buf) < b - a:
            buf = np.pad(buf, (0, b - a - len(buf)))
        rows = sf.rows(extract_features(buf, phones=False, relative=False), fs, start, end)
        final = end - CLASSIFIER_LOOKAHEAD_FRAMES
        got_r[start:final] = rows["running"][:final - start]
        got_f[start:final] = rows["fixed-sil"][:final - start]
    ok = ~np.isnan(got_r[:, 0])
    ok[: CLASSIFIER_LEFT_FRAMES] = False  # the first step has no left context before frame 0 either way
    assert ok.sum() > T - 30
    np.testing.assert_allclose(got_r[ok], off.stack("running")[ok], atol=2e-3)
    np.testing.assert_allclose(got_f[ok], off.stack("fixed-sil")[ok], atol=2e-3)


def _mouth(gen, y):
    from motion.conventions import ARKIT_MOUTH
    return gen.generate(y, seed=0).face[:, list(ARKIT_MOUTH)]


_VOICE_XFAIL = pytest.mark.xfail(strict=True, reason=(
    "checkpoint 0.5.x's mouth follows pocketsphinx's phones, and pocketsphinx decodes librosa's pitch shift "
    "(formants shifted too) as other phones (frame agreement 0.08-0.18 with the unshifted decoding, with or "
    "without pocketsphinx's frequency warping): mouth r 0.36 (+3 semitones) and 0.45 (-3) for 0.5.2, whose "
    "face stage was fine-tuned with speed-perturbed voices; on real unseen speakers (the held-out videos) the "
    "mouth r is 0.38. A face stage trained on hama's phones (configs/experiments/face_hama_phones.toml, not "
    "shipped: 15-22x real time, no live phones) gives 0.90 / 0.67"))


@pytest.mark.slow
@needs_data
@pytest.mark.parametrize("variant", ["-12 dB", pytest.param("+3 semitones", marks=_VOICE_XFAIL),
                                     pytest.param("-3 semitones", marks=_VOICE_XFAIL)])
def test_mouth_same_for_loudness_and_voice(variant):
    """The same speech 12 dB quieter, and pitch-shifted by +-3 semitones (another voice), moves the shipped
    model's mouth the same way (Pearson r over the moving mouth channels >= 0.9)."""
    import librosa
    from motion.inference import MotionGenerator
    gen = MotionGenerator()
    if gen.feature_layouts["face"] != "running" and gen.feature_layouts["phones"] == "none":
        pytest.skip(f"checkpoint {gen.version} predates the speaker-independent features (phones)")
    y = load_audio(TEST_AUDIO / "cmu_arctic_a0009.wav")
    ref = _mouth(gen, y)
    v = {"-12 dB": lambda: y * 0.25,
         "+3 semitones": lambda: librosa.effects.pitch_shift(y, sr=SAMPLE_RATE, n_steps=3),
         "-3 semitones": lambda: librosa.effects.pitch_shift(y, sr=SAMPLE_RATE, n_steps=-3)}[variant]()
    m = _mouth(gen, v.astype(np.float32))
    moving = ref.std(0) > 0.01
    r = np.mean([np.corrcoef(ref[:, c], m[:, c])[0, 1] for c in np.flatnonzero(moving)])
    assert r >= 0.9, f"{variant}: mouth r {r:.2f}"


def test_classifier_weights_ship_with_the_package():
    assert classifier_path().is_file()
    x = np.zeros((40, 83), np.float32)
    p = phone_posteriors(x)
    assert p.shape == (40, len(PHONES)) and np.isfinite(p).all()


@needs_data
def test_streaming_pocketsphinx_phones_mostly_agree_with_offline():
    """Streaming decodes each window's audio: the running block is exact, the phones mostly agree."""
    y = load_audio(TEST_AUDIO / "cmu_arctic_a0009.wav")
    off = extract_features(y, phones="pocketsphinx")
    T = off.num_frames
    sf = StreamingFeatures(["running"], "pocketsphinx")
    got = np.full((T, off.stack("running").shape[1]), np.nan, np.float32)
    for end in range(9, T + 1, 6):
        start = max(0, end - 48)
        fs = max(0, ((start - 6) // 3) * 3)
        a, b = fs * 1600 // 3, (end * 1600 + 2) // 3 + 1024
        buf = np.pad(y[a:b], (0, max(0, b - a - len(y[a:b]))))
        rows = sf.rows(extract_features(buf, phones=False, relative=False), fs, start, end, audio=buf)
        got[end - 9:end - 3] = rows["running"][end - 9 - start:end - 3 - start]  # the frames a step emits
    ok = ~np.isnan(got[:, 0])
    np.testing.assert_allclose(got[ok, :83], off.relative[ok], atol=2e-3)
    agree = (got[ok, 83:].argmax(1) == off.phones[ok].argmax(1)).mean()
    assert agree >= 0.5, agree


def _labels(segments, n100):
    from motion.features import _PHONE_INDEX, SIL_INDEX
    lab = np.full(n100, SIL_INDEX)
    for name, a, b in segments:
        lab[max(a, 0):min(b + 1, n100)] = _PHONE_INDEX.get(name.upper(), SIL_INDEX)
    return lab


@needs_data
def test_live_decoder_feeds_each_sample_once_restarts_and_agrees_with_offline():
    """LivePhoneDecoder fed as the stream feeds it (1.7 s buffers, 200 ms apart, overlapping): each sample is
    decoded once, the utterance restarts every ALLPHONE_PIECE_S seconds without losing the phones before the
    restart, and the phones agree with the offline decoding on most speech frames; a gap restarts there."""
    from motion.features import ALLPHONE_PIECE_S, HOP_100HZ, LivePhoneDecoder, SIL_INDEX, phone_segments
    parts = [load_audio(p) for p in sorted(TEST_AUDIO.glob("*.wav"))]
    y = np.concatenate(parts * 5)[: int(45 * SAMPLE_RATE)]      # 45 s of real speech: two restarts
    dec = LivePhoneDecoder()
    hop, win = 3200, 27200
    for end in range(hop, len(y) + 1, hop):
        start = max(0, end - win)
        dec.feed(y[start:end], start)
    assert dec._fed == (len(y) // hop) * hop
    assert dec._utt == int(2 * ALLPHONE_PIECE_S * SAMPLE_RATE)    # restarted at 20 s and 40 s
    n100 = dec._fed // HOP_100HZ
    live = _labels(dec.segments(), n100)
    assert (live[:1900] != SIL_INDEX).mean() > 0.5 and (live[2100:3900] != SIL_INDEX).mean() > 0.5
    off = _labels(phone_segments(y[:dec._fed]), n100)
    speech = off != SIL_INDEX
    assert (live[speech] == off[speech]).mean() > 0.6
    # forgetting: only the segments ending at or after a frame are kept
    assert min(b for _, _, b in dec.segments(since=4000)) >= 4000
    # a gap: the next buffer starts after the samples fed so far
    gap = LivePhoneDecoder()
    gap.feed(y[:16000], 0)
    gap.feed(y[32000:48000], 32000)
    assert gap._utt == 32000 and gap._fed == 48000
    segs = gap.segments()
    assert any(b < 100 for _, _, b in segs) and any(a >= 200 for _, a, _ in segs)   # both sides of the gap
