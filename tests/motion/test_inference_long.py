"""Long audio in bounded memory: chunked features, batches run in dependency order and frames finished as
they become final give the same motion as the whole-clip path; audio decoded block by block."""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import motion.inference as inference
import motion.windows as windows
from motion.audio import load_audio
from motion.features import extract_features
from motion.inference import AudioReader, WindowPlan, chunked_conditions
from tests.conftest import DATA, needs_data

SAMPLE = Path(__file__).resolve().parents[2] / "chatanyone" / "samples" / "cmu_arctic_a0007.wav"


@pytest.fixture(scope="module")
def gen(tiny_generator):
    """Mechanics (chunked == whole-clip path, bit for bit): the tiny random-weight checkpoint."""
    return tiny_generator


@pytest.fixture(scope="module")
def speech():
    """~16 s of real speech (the sample and the test utterances): 5 sampling windows."""
    files = [SAMPLE] + sorted((DATA / "test_audio").glob("*.wav"))
    return np.concatenate([load_audio(p) for p in files if p.is_file()])


def whole_clip(gen, audio, seed, **kw):
    """The unchunked path: whole-clip features, :func:`sample_windows` per stage, whole-clip finish."""
    face_n, body_n, feats, _ = gen.sample_normalised(audio, seed=seed, **kw)
    idle = gen.idle.sample(len(face_n), 30.0, seed=seed, energy=feats.energy)
    return gen.finish(face_n, body_n, idle.face, idle.eye_rotations, inference.Intensity())


def test_short_clip_is_identical_to_the_whole_clip_path(gen):
    a = load_audio(SAMPLE)
    clip = gen.generate(a, seed=3)
    face, rot = whole_clip(gen, a, 3)
    np.testing.assert_array_equal(clip.face, np.clip(face, 0, 1))
    np.testing.assert_allclose(clip.rotations, rot, atol=1e-6)


@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_chunked_generation_equals_whole_clip_sampling(gen, speech, monkeypatch, eta):
    """One window per batch (so batches run out of order) and 100-frame feature chunks on 16 s of speech:
    the same motion as sampling the whole clip at once, also with DDIM noise (eta > 0) drawn per step."""
    monkeypatch.setattr(windows, "MAX_BATCH_WINDOWS", 1)
    T = int(round(len(speech) / 16000 * 30))
    plan = WindowPlan(T, gen.window, gen.overlap, 39)
    assert len(plan.groups[0]) >= 3 and len(plan.groups[1]) >= 2
    # phones off: per-chunk all-phone decoding is not the whole clip's (test below); this checks the sampling
    clip = gen.generate(speech, seed=5, feature_chunk_frames=100, face_eta=eta, phones=False)
    face, rot = whole_clip(gen, speech, 5, face_eta=eta, phones=False)
    np.testing.assert_allclose(clip.face, np.clip(face, 0, 1), atol=1e-6)
    np.testing.assert_allclose(clip.rotations, rot, atol=1e-6)
    assert clip.num_frames == T and clip.meta["audio_duration_s"] == len(speech) / 16000


def test_chunked_features_equal_whole_clip_features(speech):
    T = int(round(len(speech) / 16000 * 30))
    conds, energy, source = chunked_conditions(AudioReader.from_array(speech), T, ["fixed"], "none", chunk_frames=45)
    whole = extract_features(speech, 16000, 30, num_frames=T, phones=False)
    np.testing.assert_allclose(conds["fixed"], whole.stack(), atol=1e-6)
    np.testing.assert_allclose(energy, whole.energy, atol=1e-6)
    assert source == "none"


def test_window_plan_dependencies():
    plan = WindowPlan(2000, 120, 30, 4, batch_windows=2)
    evens, odds = [s for g in plan.groups[0] for s in g], [s for g in plan.groups[1] for s in g]
    assert sorted(evens + odds) == inference.window_starts(2000, 120, 30)
    for g, group in enumerate(plan.groups[1]):
        n = plan.needs_even(g)                         # the even windows after each odd one are sampled
        done = [s for grp in plan.groups[0][:n] for s in grp]
        assert all(s + plan.window - plan.overlap in done or s == odds[-1] and s + 90 > evens[-1] for s in group)
    assert plan.frontier(0, 0) == 0 and plan.frontier(len(plan.groups[0]), len(plan.groups[1])) == plan.Tp


@needs_data
def test_decoded_file_reader_matches_load_audio(tmp_path):
    """A 16 kHz mono file reads back exactly; a 44.1 kHz stereo one through the streaming resampler within
    1e-4 of the one-shot resampling (same soxr quality)."""
    src = DATA / "test_audio" / "commonvoice_en_17299458.wav"
    ref = load_audio(src)
    r = AudioReader.decode_file(src)
    try:
        assert r.num_samples == len(ref)
        np.testing.assert_array_equal(r.read(-10, len(ref) + 10)[10:-10], ref)
        assert not r.read(-10, 0).any() and not r.read(len(ref), len(ref) + 5).any()
    finally:
        r.close()
    import soxr
    y = soxr.resample(ref, 16000, 44100)
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.stack([y, 0.5 * y], 1), 44100, subtype="FLOAT")
    ref2 = load_audio(stereo)
    r = AudioReader.decode_file(stereo)
    try:
        assert abs(r.num_samples - len(ref2)) <= 1
        n = min(r.num_samples, len(ref2))
        np.testing.assert_allclose(r.read(0, n), ref2[:n], atol=1e-4)
    finally:
        r.close()


def test_chunked_pocketsphinx_phones_agree_with_whole_clip_decoding(speech):
    """Phones decoded per chunk (with PHONE_CONTEXT_FRAMES of audio on each side) against one decoding of the
    whole clip: the same phone on most frames; one chunk is the whole-clip decoding exactly."""
    T = int(round(len(speech) / 16000 * 30))
    whole = extract_features(speech, 16000, 30, num_frames=T, phones="pocketsphinx").stack()
    one, _, source = chunked_conditions(AudioReader.from_array(speech), T, ["fixed"], "pocketsphinx")
    assert source == "pocketsphinx"
    np.testing.assert_allclose(one["fixed"], whole, atol=1e-6)
    conds, _, _ = chunked_conditions(AudioReader.from_array(speech), T, ["fixed"], "pocketsphinx", chunk_frames=150)
    agree = (conds["fixed"][:, -40:].argmax(1) == whole[:, -40:].argmax(1)).mean()
    assert agree > 0.8, agree
    np.testing.assert_allclose(conds["fixed"][:, :-40], whole[:, :-40], atol=1e-6)   # the rest is the same
