"""Streaming API: chunking does not change the output, features match the offline ones, the statistics
match the offline path, frame bookkeeping and bad input.

The mechanics run on the tiny random-weight checkpoint (``tiny_generator``, tests/conftest.py); the two
checks of what the trained model's streamed motion looks like use the shipped weights and are ``slow``."""
from pathlib import Path

import numpy as np
import torch
import pytest

from motion.audio import load_audio
from motion.conventions import ARKIT_INDEX, HEAD_JOINTS
from motion.errors import AudioError, ChatAnyoneError
from motion.features import extract_features
from motion.inference import MotionGenerator
from motion.streaming import MotionStream, StreamConfig, stream_clip

SAMPLE = Path(__file__).resolve().parents[2] / "chatanyone" / "samples" / "cmu_arctic_a0007.wav"


@pytest.fixture(scope="module")
def gen(tiny_generator):
    return tiny_generator


@pytest.fixture(scope="module")
def real_gen():
    return MotionGenerator()


@pytest.fixture(scope="module")
def audio():
    return load_audio(SAMPLE)  # 4.0 s of real speech


def test_chunk_size_does_not_change_the_output(gen, audio):
    a = audio[:32000]
    whole = stream_clip(gen, a, seed=3)
    chunks = stream_clip(gen, a, seed=3, chunk_samples=320)      # 20 ms chunks
    odd = stream_clip(gen, a, seed=3, chunk_samples=1234)
    assert whole.num_frames == 60
    for other in (chunks, odd):
        np.testing.assert_array_equal(whole.face, other.face)
        np.testing.assert_array_equal(whole.rotations, other.rotations)
    # a different seed gives different motion
    assert np.abs(stream_clip(gen, a, seed=4).face - whole.face).max() > 1e-3


def test_style_reference_streams_chunk_independently(gen, audio):
    a = audio[:24000]
    ref = gen.generate(audio, seed=9)  # any clip with face and body motion
    plain = stream_clip(gen, a, seed=3)
    styled = stream_clip(gen, a, seed=3, style_reference=ref)
    chunked = stream_clip(gen, a, seed=3, style_reference=ref, chunk_samples=320)
    np.testing.assert_array_equal(styled.rotations, chunked.rotations)
    assert not np.allclose(styled.rotations, plain.rotations, atol=1e-4)


def test_hop_joins_cross_fade_from_the_previous_look_ahead(gen, audio, monkeypatch):
    """The first look-ahead frames of a step blend the previous step's sample into the new one: turning
    the blend off changes exactly the frames after each hop join that the previous step had sampled."""
    import motion.streaming as S
    a = audio[:24000]
    on = stream_clip(gen, a, seed=2)
    monkeypatch.setattr(S, "crossfade_weights", lambda n: np.ones(n, np.float32))  # new sample only
    off = stream_clip(gen, a, seed=2)
    assert not np.allclose(on.rotations, off.rotations, atol=1e-5)
    np.testing.assert_array_equal(on.rotations[:4], off.rotations[:4])  # before the first join (smoothing reads 2)


def test_stream_features_equal_offline_features(gen, audio):
    """The features a step computes on its short buffer are those of the whole file (phones: mostly the same)."""
    s = MotionStream(gen)
    s.push(audio)
    full = extract_features(audio, phones=False).stack()
    pad = s._pad
    # internal frames [pad + 30, pad + 78) = external frames [30, 78); the buffer holds the whole audio here
    s._audio_base = 0
    s._audio = np.concatenate([np.zeros(int(round(pad * 1600 / 3)), np.float32), audio])
    got, got_body = s._features(pad + 30, pad + 78)  # face and body stage inputs
    np.testing.assert_allclose(got[:, :-40], full[30:78, :-40], atol=2e-3)
    np.testing.assert_allclose(got_body[:, :-40], full[30:78, :-40], atol=2e-3)
    if gen.feature_layouts["phones"] == "pocketsphinx":   # phones: decoded on the buffer
        whole = extract_features(audio, phones="pocketsphinx").stack()[30:78, -40:]
        # the face stage reads them; the body stage too when trained with them (0.5.1: layout "fixed"; 0.5.0
        # reused 0.4.0's body stage, "fixed-sil": every frame 'SIL')
        stages = [got] + ([got_body] if gen.feature_layouts["body"] != "fixed-sil" else [])
        for x in stages:
            np.testing.assert_allclose(x[:, -40:].sum(1), 1.0, atol=1e-5)
            # the stream decodes live (LivePhoneDecoder): 0.60 of these frames agree with the offline
            # decoding (each window decoded afresh, until 0.5.1: 0.7+); against real capture the live phones
            # give the better streaming lip sync (held-out videos jawOpen r 0.58 vs 0.56, FACEGOOD 0.67 vs 0.64)
            assert (x[:, -40:].argmax(1) == whole.argmax(1)).mean() > 0.55
        if gen.feature_layouts["body"] == "fixed-sil":
            np.testing.assert_allclose(got_body, full[30:78], atol=2e-3)
    else:
        np.testing.assert_allclose(got, full[30:78], atol=2e-3)


def test_frames_are_ordered_timed_and_final_after_the_lookahead(gen, audio):
    cfg = StreamConfig(context_frames=48, hop_frames=3, lookahead_frames=3)
    s = MotionStream(gen, config=cfg)
    assert s.lookahead_s == pytest.approx(3 / 30 + 0.064)
    got = []
    n = 0
    for i in range(0, 24000, 320):
        out = s.push(audio[i:i + 320])
        n = i + 320
        got += out
        # every frame whose audio (plus lookahead) has arrived is out, and no other
        final = int(np.floor(((n - 1024) / 16000 - 3 / 30) * 30 / 3)) * 3
        assert len(got) <= max(0, final + 3)
        assert len(got) >= max(0, final - 3)
    got += s.flush()
    assert [f.index for f in got] == list(range(45))
    assert got[10].time_s == pytest.approx(10 / 30)
    assert all(f.face.shape == (52,) and f.rotations.shape == (55, 4) for f in got)
    assert s.flush() == []
    with pytest.raises(ChatAnyoneError, match="flushed"):
        s.push(audio[:10])


@pytest.mark.slow
def test_streaming_statistics_match_offline(real_gen, audio):
    """Same weights, shorter windows, no phones: jaw level, jaw/energy correlation and head motion stay close."""
    off = real_gen.generate(audio, seed=0)
    st = stream_clip(real_gen, audio, seed=0)
    assert st.num_frames == off.num_frames == 120
    jaw = ARKIT_INDEX["jawOpen"]
    e = extract_features(audio, phones=False).energy
    r_off = np.corrcoef(off.face[:, jaw], e)[0, 1]
    r_st = np.corrcoef(st.face[:, jaw], e)[0, 1]
    assert r_st > 0.5 and r_off > 0.5
    assert abs(st.face[:, jaw].mean() - off.face[:, jaw].mean()) < 0.1
    # head motion of the same order
    def head_speed(c):
        q = c.rotations[:, list(HEAD_JOINTS)]
        d = np.abs(np.sum(q[1:] * q[:-1], -1)).clip(0, 1)
        return float((2 * np.arccos(d)).mean() * 30)
    assert 0.25 < head_speed(st) / head_speed(off) < 4


def test_bad_input(gen):
    s = MotionStream(gen)
    with pytest.raises(AudioError, match="NaN"):
        s.push(np.array([0.0, np.nan], np.float32))
    with pytest.raises(AudioError, match="shape"):
        s.push(np.zeros((10, 2), np.float32))
    with pytest.raises(AudioError, match="too short"):
        MotionStream(gen).flush()
    with pytest.raises(ChatAnyoneError, match="multiple of 3"):
        StreamConfig(context_frames=50)
    with pytest.raises(ChatAnyoneError, match="hop"):
        StreamConfig(context_frames=12, hop_frames=6, lookahead_frames=6)
    with pytest.raises(ChatAnyoneError, match="torch_threads"):
        StreamConfig(torch_threads=0)


def test_a_step_runs_with_its_own_torch_threads_and_restores_them(gen, audio, monkeypatch):
    """StreamConfig.torch_threads is torch's thread count during a step (seen from inside the sampler) and
    the caller's count is back afterwards; None leaves it alone."""
    import motion.streaming as streaming
    seen = []
    orig = streaming.MotionStream._step_frames

    def spy(self, *a):
        seen.append(torch.get_num_threads())
        return orig(self, *a)

    monkeypatch.setattr(streaming.MotionStream, "_step_frames", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        MotionStream(gen, config=StreamConfig(torch_threads=1), warm_up=False).push(audio[:16000])
        assert seen and set(seen) == {1} and torch.get_num_threads() == 2
        seen.clear()
        MotionStream(gen, config=StreamConfig(torch_threads=None), warm_up=False).push(audio[:16000])
        assert seen and set(seen) == {2}
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_body_offset_shift_removes_most_of_the_hop_ripple(real_gen, audio, monkeypatch):
    """Shifting each step's new body motion onto the previous look-ahead (STREAM_OFFSET_FRAMES) lowers the
    body jerk and its peak at one phase of the 6-frame hop; the face is untouched by it."""
    import motion.streaming as S
    from motion import metrics as M
    clips = {}
    for n in (0, 6):
        monkeypatch.setattr(S, "STREAM_OFFSET_FRAMES", n)
        clips[n] = stream_clip(real_gen, audio, seed=0)
    hop = StreamConfig().hop_frames
    pos = {n: M.joint_positions(c.rotations) for n, c in clips.items()}
    jerk = {n: M.jerk(p, 30.0).mean() for n, p in pos.items()}
    peak = {n: M.jerk_phase_profile(p, 30.0, hop).max() for n, p in pos.items()}
    assert jerk[6] < 0.9 * jerk[0] and peak[6] < peak[0]
    np.testing.assert_array_equal(clips[6].face, clips[0].face)


def test_degrade_policy_switches_on_when_a_step_exceeds_its_budget_and_back_when_calm():
    from motion.streaming import DEGRADE_CALM_STEPS, DegradePolicy
    p = DegradePolicy((4, 6), (2, 1), budget_s=0.2)              # face with guidance: 2 passes per step
    assert p.ladder == [(4, 6), (2, 2), (1, 1)] and p.cost == [14, 6, 3]
    assert not p.update(0.10) and p.level == 0                    # within budget
    assert p.update(0.30) and p.steps == (2, 2)                   # smoothed 0.2 s > 0.9 x budget: degrade
    assert p.update(0.30) and p.steps == (1, 1)                   # still too slow at level 1
    assert not p.update(0.30) and p.level == 2                    # no lower level
    n = 1
    while not p.update(0.02):                                     # fast again: level 1 after calm steps
        n += 1
    assert p.level == 1 and DEGRADE_CALM_STEPS <= n <= DEGRADE_CALM_STEPS + 5
    q = DegradePolicy((4, 6), (2, 1), budget_s=0.2)
    assert q.update(0.05, slack_s=0.01) and q.level == 1          # fast, but the next frames are due now
    assert DegradePolicy((1, 1), (2, 1), 0.2).ladder == [(1, 1)]  # nothing to degrade to


def test_stream_degrades_under_an_injected_slow_clock_and_says_so_once_per_level(gen, audio):
    """Each step appears to take 0.5 s of its 0.2 s budget (a slow clock): the stream switches to fewer
    denoising steps after its first step, reports it, and its frames are still complete and finite."""
    t = [0.0]

    def slow_clock():
        t[0] += 0.5                                               # each step appears to take 0.5 s
        return t[0]
    messages = []
    s = MotionStream(gen, seed=1, warm_up=False, adaptive=True, clock=slow_clock, on_degrade=messages.append)
    frames = s.push(audio[:24000]) + s.flush()
    assert len(frames) == 45 and all(np.isfinite(f.face).all() for f in frames)
    assert s.stats.level_changes[:2] == [(1, 1), (2, 2)] and s.active_steps == (1, 1)
    assert s.stats.degraded_steps == len(s.stats.compute_s) - 1
    assert len(messages) == 2 and "too slow" in messages[0] and "face 2, body 2" in messages[0]
    plain = MotionStream(gen, seed=1, warm_up=False, clock=slow_clock)   # not adaptive: never degrades
    plain.push(audio[:24000])
    assert plain.active_steps == plain.steps and plain.stats.degraded_steps == 0
