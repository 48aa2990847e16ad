"""The pacer's schedule, interpolation and error handling, on a virtual clock (timing itself: benchmarks/)."""
import math
import threading
import time

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from bridge.pacing import FrameBuffer, Pacer, interpolate_frames, slerp
from motion.errors import ChatAnyoneError
from motion.frames import MotionFrame, clip_frames
from tests.bridge.helpers import VirtualClock, synthetic_clip


class Recorder:
    """An Output that records what it was asked to do, and when (on the pacer's clock)."""

    def __init__(self, name, fps, clock, fail=None):
        self.name, self.fps, self.clock, self.fail = name, fps, clock, fail
        self.events, self.frames = [], []

    def encode(self, frame):
        self.events.append(("encode", self.clock()))
        return frame

    def transmit(self, frame):
        self.events.append(("transmit", self.clock()))
        if self.fail and self.fail(frame):
            raise OSError(101, "Network is unreachable")
        self.frames.append(frame)

    def close(self):
        pass


def test_slerp_is_the_rotation_half_way_and_takes_the_short_arc():
    q0 = np.array([0, 0, 0, 1.0])
    q1 = Rotation.from_euler("y", 90, degrees=True).as_quat()
    half = slerp(q0, q1, 0.5)
    assert np.allclose(half, Rotation.from_euler("y", 45, degrees=True).as_quat(), atol=1e-6)
    assert np.allclose(slerp(q0, -q1, 0.5), half, atol=1e-6)           # -q1 is the same rotation
    batch = slerp(np.tile(q0, (5, 1)), np.tile(q1, (5, 1)), 0.25)
    assert np.allclose(np.linalg.norm(batch, axis=-1), 1) and batch.dtype == np.float32
    assert np.allclose(slerp(q1, q1, 0.3), q1, atol=1e-6)              # identical inputs


def test_interpolated_frame_is_linear_in_face_and_translation():
    clip = synthetic_clip(2)
    f0, f1 = clip_frames(clip)
    f = interpolate_frames(f0, f1, 0.25, 7, 0.1)
    assert (f.index, f.time_s) == (7, 0.1)
    assert np.allclose(f.face, 0.75 * clip.face[0] + 0.25 * clip.face[1], atol=1e-7)
    assert np.allclose(f.translation, 0.75 * clip.translation[0] + 0.25 * clip.translation[1], atol=1e-7)
    assert f.rotations.shape == (55, 4)
    same = interpolate_frames(f0, f1, 0.0, 0, 0.0)
    assert same.face is f0.face and same.rotations is f0.rotations


def test_each_output_transmits_exactly_on_its_own_schedule():
    clip = synthetic_clip(10)
    vc = VirtualClock(start=50.0)
    vmc, ws = Recorder("vmc", 60.0, vc.clock), Recorder("ws", None, vc.clock)
    pacer = Pacer([vmc, ws], source_fps=30.0, delay_s=0.5, clock=vc.clock, sleep=vc.sleep)
    started = []
    stats = pacer.run(clip_frames(clip), start=10.0, on_start=started.append)
    assert started == [10.5] and pacer.t0 == 10.5
    # the clock reads 50 s, t0 is 10.5 s: every tick is 40 s late and skipped rather than sent in a burst
    assert vmc.frames == [] and ws.frames == []
    assert (stats["vmc"].skipped, stats["ws"].skipped) == (19, 10)
    # on time:
    vc = VirtualClock(start=0.0)
    vmc, ws = Recorder("vmc", 60.0, vc.clock), Recorder("ws", None, vc.clock)
    stats = Pacer([vmc, ws], source_fps=30.0, delay_s=0.5, clock=vc.clock, sleep=vc.sleep).run(
        clip_frames(clip), start=1.0)
    t_vmc = [t for e, t in vmc.events if e == "transmit"]
    t_ws = [t for e, t in ws.events if e == "transmit"]
    assert np.allclose(t_vmc, 1.5 + np.arange(19) / 60, atol=1e-9)
    assert np.allclose(t_ws, 1.5 + np.arange(10) / 30, atol=1e-9)
    assert stats["vmc"].sent == 19 and stats["ws"].sent == 10
    assert stats["vmc"].percentile(99) == pytest.approx(0, abs=1e-6)
    assert all(f.time_s == pytest.approx(f.index / 60) for f in vmc.frames)
    # ws frames are the source frames themselves (same rate: no interpolation)
    assert all(np.array_equal(f.face, clip.face[f.index]) for f in ws.frames)


def test_outputs_due_together_are_all_encoded_before_the_deadline():
    vc = VirtualClock(start=0.0)
    a, b = Recorder("a", 30.0, vc.clock), Recorder("b", 30.0, vc.clock)
    Pacer([a, b], clock=vc.clock, sleep=vc.sleep).run(clip_frames(synthetic_clip(3)), start=1.0)
    for k in range(3):
        enc_a, tx_a = a.events[2 * k], a.events[2 * k + 1]
        enc_b = b.events[2 * k]
        assert enc_a[0] == "encode" and tx_a[0] == "transmit"
        assert enc_b[1] <= tx_a[1] and tx_a[1] == pytest.approx(1.0 + k / 30)


def test_a_source_that_falls_behind_makes_late_ticks_skipped_not_bursted():
    clip = synthetic_clip(30)
    vc = VirtualClock(start=0.0)

    def slow_source():
        for f in clip_frames(clip):
            if f.index == 10:
                vc.t += 1.0                           # the model stalls for one second
            yield f

    out = Recorder("o", 30.0, vc.clock)
    stats = Pacer([out], clock=vc.clock, sleep=vc.sleep, max_late_s=0.25).run(slow_source(), start=0.0)
    assert stats["o"].skipped > 0
    assert stats["o"].sent + stats["o"].skipped == 30
    assert max(stats["o"].samples_ms) <= 250 + 1e-6
    assert [f.index for f in out.frames] == sorted(f.index for f in out.frames)


def test_source_errors_reach_the_caller():
    def broken():
        yield from list(clip_frames(synthetic_clip(3)))[:2]
        raise ChatAnyoneError("audio too short: 0.100 s")

    vc = VirtualClock()
    with pytest.raises(ChatAnyoneError, match="audio too short"):
        Pacer([Recorder("o", 30.0, vc.clock)], clock=vc.clock, sleep=vc.sleep).run(broken())


def test_send_errors_are_counted_reported_once_per_call_and_do_not_stop_the_stream():
    vc = VirtualClock()
    seen = []
    out = Recorder("vmc", 30.0, vc.clock, fail=lambda f: f.index < 3)
    stats = Pacer([out], clock=vc.clock, sleep=vc.sleep, on_error=lambda n, m: seen.append((n, m))).run(
        clip_frames(synthetic_clip(6)))
    assert stats["vmc"].errors == 3 and stats["vmc"].sent == 6 and len(out.frames) == 3
    assert seen[0] == ("vmc", "Network is unreachable")
    assert "3 send errors (Network is unreachable)" in stats["vmc"].summary()


def test_stop_ends_a_live_run_and_empty_sources_return_at_once():
    def endless():
        i = 0
        while True:
            yield MotionFrame(i, i / 30, np.zeros(52, np.float32), np.tile(np.float32([0, 0, 0, 1]), (55, 1)),
                              np.zeros(3, np.float32))
            i += 1
            time.sleep(0.001)

    out = Recorder("o", 30.0, time.perf_counter)
    pacer = Pacer([out], max_late_s=1e9)
    threading.Timer(0.3, pacer.stop).start()
    pacer.run(endless())
    assert 0 < len(out.frames) < 60
    assert Pacer([out]).run(iter([]))["o"].sent == 0
    with pytest.raises(ChatAnyoneError, match="nothing to stream to"):
        Pacer([])


def test_frame_buffer_drops_old_frames_and_blocks_for_new_ones():
    buf = FrameBuffer()
    frames = list(clip_frames(synthetic_clip(5)))
    for f in frames[:3]:
        buf.append(f)
    buf.drop_before(2)
    assert buf.get(2) is frames[2] and len(buf) == 3
    with pytest.raises(IndexError):
        buf.get(1)
    with pytest.raises(TimeoutError):
        buf.get(3, timeout=0.05)
    threading.Timer(0.05, lambda: (buf.append(frames[3]), buf.finish())).start()
    assert buf.get(3, timeout=5) is frames[3]
    assert buf.get(4) is None
    assert math.isnan(Pacer([Recorder("x", 30, time.perf_counter)]).stats["x"].percentile(50))
