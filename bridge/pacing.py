"""Real-time pacing: every output gets its frames at their scheduled wall-clock time.

A live stream has one clock: the moment audio time 0 is heard (``t0``, a :func:`time.perf_counter`
value). Output frame ``k`` of an output running at ``fps`` is due at ``t0 + k / fps``. The :class:`Pacer`
drives several outputs at once (VMC at 60 fps, Live Link Face at 60 fps, the WebSocket stream at the
model's 30 fps) from one stream of source frames:

* the source (a generator of :class:`motion.frames.MotionFrame`, 30 fps) runs in a background thread and
  fills a :class:`FrameBuffer`; a live source (microphone, WebSocket audio) may block;
* for each output tick, the pacer takes the source frames around the tick's time, interpolates
  (:func:`interpolate_frames`: linear face and translation, slerp rotations), asks the output to
  ``encode`` it *before* the deadline, sleeps until the deadline and only then calls ``transmit``; the
  lateness of each transmit (``perf_counter()`` at transmit minus the deadline) is recorded per output
  (:class:`LatenessStats`);
* a tick whose source frames are not there yet waits for them (it is then late); a tick later than
  ``max_late_s`` is skipped and counted, so a stalled source never makes the outputs replay stale motion
  in a burst.

Outputs follow the :class:`Output` protocol ("build bytes, send bytes"): ``name``, ``fps`` (``None``: the
source rate, frames passed through unchanged), ``encode(frame) -> payload``, ``transmit(payload)``,
``close()``.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol, Sequence

import numpy as np

from motion.conventions import MODEL_FPS
from motion.errors import ChatAnyoneError
from motion.frames import MotionFrame

#: a tick later than this is skipped (seconds)
DEFAULT_MAX_LATE_S = 0.25


class Output(Protocol):
    """What the pacer drives. ``encode`` runs before the deadline, ``transmit`` at it."""

    name: str
    fps: float | None

    def encode(self, frame: MotionFrame) -> Any: ...

    def transmit(self, payload: Any) -> None: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------------------------------
# Interpolation
# --------------------------------------------------------------------------------------------------
def slerp(q0: np.ndarray, q1: np.ndarray, alpha: float) -> np.ndarray:
    """Spherical linear interpolation of unit quaternions ``[..., 4]`` (xyzw), shortest arc.

    Returns float32 unit quaternions; ``alpha = 0`` gives ``q0``, ``1`` gives ``q1`` (or ``-q1``).
    """
    a = np.asarray(q0, np.float64)
    b = np.asarray(q1, np.float64)
    dot = (a * b).sum(-1, keepdims=True)
    b = np.where(dot < 0, -b, b)
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin = np.sin(theta)
    near = sin < 1e-6                                   # (anti)parallel: plain lerp is exact enough
    safe = np.where(near, 1.0, sin)
    w0 = np.where(near, 1.0 - alpha, np.sin((1.0 - alpha) * theta) / safe)
    w1 = np.where(near, alpha, np.sin(alpha * theta) / safe)
    q = w0 * a + w1 * b
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    return q.astype(np.float32)


def interpolate_frames(f0: MotionFrame, f1: MotionFrame, alpha: float, index: int,
                       time_s: float) -> MotionFrame:
    """The frame ``alpha`` of the way from ``f0`` to ``f1`` (linear face and translation, slerp rotations),
    numbered ``index`` at ``time_s`` seconds. ``alpha == 0`` returns ``f0``'s arrays unchanged."""
    if alpha <= 0.0:
        return MotionFrame(index, time_s, f0.face, f0.rotations, f0.translation)
    face = ((1 - alpha) * np.asarray(f0.face, np.float32) + alpha * np.asarray(f1.face, np.float32))
    trans = ((1 - alpha) * np.asarray(f0.translation, np.float32)
             + alpha * np.asarray(f1.translation, np.float32))
    rot = slerp(f0.rotations, f1.rotations, alpha)
    return MotionFrame(index, time_s, face.astype(np.float32), rot, trans.astype(np.float32))


# --------------------------------------------------------------------------------------------------
# Source buffer
# --------------------------------------------------------------------------------------------------
class FrameBuffer:
    """Source frames in arrival order, filled by one producer thread, read by the pacer.

    ``get(i)`` blocks until frame ``i`` exists or the stream has ended (then returns ``None``).
    An exception raised by the producer is stored and re-raised by ``get``. ``drop_before(i)`` forgets
    older frames, so an endless live stream keeps bounded memory.
    """

    def __init__(self) -> None:
        self._frames: list[MotionFrame] = []
        self._offset = 0                      # source index of self._frames[0]
        self._done = False
        self._error: BaseException | None = None
        self._cond = threading.Condition()

    def append(self, frame: MotionFrame) -> None:
        with self._cond:
            self._frames.append(frame)
            self._cond.notify_all()

    def finish(self, error: BaseException | None = None) -> None:
        with self._cond:
            self._done = True
            self._error = error
            self._cond.notify_all()

    def __len__(self) -> int:
        return self._offset + len(self._frames)

    def get(self, i: int, timeout: float | None = None) -> MotionFrame | None:
        """Frame ``i`` (blocking), ``None`` past the end. Raises ``TimeoutError`` after ``timeout`` s,
        ``IndexError`` for a dropped frame, or the producer's exception."""
        with self._cond:
            end = None if timeout is None else time.monotonic() + timeout
            while i >= len(self) and not self._done:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(i)
                self._cond.wait(left)
            if self._error is not None:
                raise self._error
            if i < self._offset:
                raise IndexError(f"frame {i} was dropped")
            return self._frames[i - self._offset] if i < len(self) else None

    def drop_before(self, i: int) -> None:
        """Forget frames with index < ``i``."""
        with self._cond:
            n = min(max(0, i - self._offset), len(self._frames))
            if n:
                del self._frames[:n]
                self._offset += n


# --------------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------------
@dataclass
class LatenessStats:
    """Transmit lateness of one output (milliseconds; positive = late, negative = early).

    Attributes:
        name: the output's name.
        sent: ticks transmitted.
        skipped: ticks skipped because they were later than ``max_late_s``.
        errors: transmits that raised ``OSError`` (e.g. an unreachable host); the first message is kept.
            A refusal reported by an output that counts its refusals (``refused``) is not an error.
        refused: datagrams the OS reported refused while this output sent (ICMP "port unreachable": nothing
            listening at the destination), as counted by the output's own ``refused`` attribute
            (:attr:`bridge.udp.UdpDestination.refused`); every refusal, the first included. A refusal
            arriving after the last datagram is never reported, so this is a lower bound.
        destination: ``HOST:PORT`` of the output when it has one (named in the summary's refusals).
        samples_ms: every transmit's lateness, in order.
    """

    name: str
    sent: int = 0
    skipped: int = 0
    errors: int = 0
    first_error: str | None = None
    refused: int = 0
    destination: str | None = None
    samples_ms: list[float] = field(default_factory=list)

    def percentile(self, q: float, absolute: bool = True) -> float:
        """``q``-th percentile (0..100) of the (absolute) lateness in ms; NaN without samples."""
        if not self.samples_ms:
            return float("nan")
        a = np.asarray(self.samples_ms)
        return float(np.percentile(np.abs(a) if absolute else a, q))

    def summary(self) -> str:
        """One line: ``vmc: 240 sent, 0 skipped, |lateness| p50 0.08 ms, p99 0.31 ms, max 0.9 ms``, then
        send errors and refusals when there were any (``..., 238 datagrams refused (nothing listening on
        HOST:PORT)``)."""
        line = f"{self.name}: {self.sent} sent, {self.skipped} skipped"
        if self.samples_ms:
            line += (f", |lateness| p50 {self.percentile(50):.2f} ms, p99 {self.percentile(99):.2f} ms, "
                     f"max {self.percentile(100):.2f} ms")
        if self.errors:
            line += f", {self.errors} send errors ({self.first_error})"
        if self.refused:
            where = f" on {self.destination}" if self.destination else ""
            line += f", {self.refused} datagrams refused (nothing listening{where})"
        return line


# --------------------------------------------------------------------------------------------------
# Pacer
# --------------------------------------------------------------------------------------------------
class _Track:
    def __init__(self, output: Output, source_fps: float):
        self.output = output
        self.fps = float(output.fps) if output.fps else float(source_fps)
        if not math.isfinite(self.fps) or self.fps <= 0:
            raise ChatAnyoneError(f"output {output.name}: fps must be positive, got {output.fps}")
        self.k = 0
        self.done = False
        host, port = getattr(output, "host", None), getattr(output, "port", None)
        self.stats = LatenessStats(output.name, destination=f"{host}:{port}" if host and port else None)
        self.counts_refusals = isinstance(getattr(output, "refused", None), int)
        self.refused_before = output.refused if self.counts_refusals else 0   # the output may be reused

    def time(self) -> float:
        return self.k / self.fps


class Pacer:
    """Send a stream of 30 fps source frames to several outputs, each at its own rate, on the wall clock.

    Args:
        outputs: the :class:`Output` objects (at least one).
        source_fps: rate of the source frames (frame ``i`` is at ``i / source_fps`` seconds).
        delay_s: seconds between ``t0``'s reference (see :meth:`run`) and audio time 0 on the clock;
            covers the generator's lookahead for live sources.
        max_late_s: a tick later than this is skipped (counted in :attr:`LatenessStats.skipped`).
        on_error: ``callback(output name, message)`` for each transmit that raised ``OSError`` (the
            pacer carries on: UDP receivers may come and go).
        clock, sleep: injectable for tests (default :func:`time.perf_counter`, :func:`time.sleep`).
    """

    def __init__(self, outputs: Sequence[Output], *, source_fps: float = MODEL_FPS, delay_s: float = 0.0,
                 max_late_s: float = DEFAULT_MAX_LATE_S, on_error: Callable[[str, str], None] | None = None,
                 clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], None] = time.sleep):
        if not outputs:
            raise ChatAnyoneError("nothing to stream to: give at least one output (--vmc, --livelink or --ws)")
        self.source_fps = float(source_fps)
        self.delay_s = float(delay_s)
        self.max_late_s = float(max_late_s)
        self.clock, self.sleep = clock, sleep
        self.on_error = on_error
        self._tracks = [_Track(o, self.source_fps) for o in outputs]
        self._stop = threading.Event()
        #: ``t0`` of the last run (perf_counter seconds of audio time 0), ``None`` before the first frame.
        self.t0: float | None = None

    @property
    def stats(self) -> dict[str, LatenessStats]:
        return {t.output.name: t.stats for t in self._tracks}

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current tick (thread-safe)."""
        self._stop.set()

    def run(self, frames: Iterable[MotionFrame], *, start: float | Callable[[], float] | None = None,
            on_start: Callable[[float], None] | None = None) -> dict[str, LatenessStats]:
        """Pace ``frames`` (consumed in a background thread) to every output; returns the statistics.

        Args:
            frames: source frames in order (``index`` 0, 1, ...); may block (live sources).
            start: the clock time of the audio's start: a number, a callable evaluated when the first
                frame arrives (live sources know it only then), or ``None`` for "when the first frame
                arrives". Audio time 0 is then at ``t0 = start + delay_s``.
            on_start: called with ``t0`` before the first tick (e.g. to start local audio playback).
        Raises:
            Whatever the source raised (e.g. ``ChatAnyoneError``); ``KeyboardInterrupt`` passes through.
        """
        buf = FrameBuffer()
        self._stop.clear()

        def produce() -> None:
            try:
                for f in frames:
                    if self._stop.is_set():
                        break
                    buf.append(f)
                buf.finish()
            except BaseException as e:   # re-raised in the pacer thread by buf.get
                buf.finish(e)

        threading.Thread(target=produce, name="chatanyone-source", daemon=True).start()
        first = self._get(buf, 0)
        if first is None:
            return self.stats
        if start is None:
            ref = self.clock()
        elif callable(start):
            ref = float(start())
        else:
            ref = float(start)
        self.t0 = t0 = ref + self.delay_s
        if on_start is not None:
            on_start(t0)
        while not self._stop.is_set():
            live = [t for t in self._tracks if not t.done]
            if not live:
                break
            t_next = min(t.time() for t in live)
            group = [t for t in live if t.time() - t_next < 1e-9]     # outputs due at the same instant
            self._tick(group, buf, t0 + t_next)
            if group[0].k % 64 == 0:                    # every output is past these source frames
                buf.drop_before(int(min(t.time() for t in live) * self.source_fps) - 1)
        return self.stats

    def _get(self, buf: FrameBuffer, i: int) -> MotionFrame | None:
        while True:                                     # short waits keep Ctrl-C responsive
            if self._stop.is_set():
                return None
            try:
                return buf.get(i, timeout=0.1)
            except TimeoutError:
                continue

    def _prepare(self, track: _Track, buf: FrameBuffer, deadline: float):
        """Interpolate and encode ``track``'s next frame; ``None`` when skipped or finished."""
        t = track.time()
        pos = t * self.source_fps
        i = int(math.floor(pos + 1e-9))
        alpha = pos - i
        if alpha < 1e-6:
            alpha = 0.0
        f0 = self._get(buf, i)
        f1 = self._get(buf, i + 1) if (alpha > 0 and f0 is not None) else f0
        if f0 is None or f1 is None:                    # past the last source frame: this output is done
            track.done = True
            return None
        if self.clock() - deadline > self.max_late_s:
            track.stats.skipped += 1
            track.k += 1
            return None
        return track.output.encode(interpolate_frames(f0, f1, alpha, track.k, t))

    def _tick(self, group: list[_Track], buf: FrameBuffer, deadline: float) -> None:
        """Encode every output due at ``deadline`` first, sleep, then transmit them back to back."""
        ready = [(track, payload) for track in group
                 if (payload := self._prepare(track, buf, deadline)) is not None]
        left = deadline - self.clock()
        if left > 0:
            self.sleep(left)
        for track, payload in ready:
            lateness = self.clock() - deadline
            try:
                track.output.transmit(payload)
            except OSError as e:
                msg = f"{e.strerror or e}"
                if not (track.counts_refusals and isinstance(e, ConnectionRefusedError)):
                    track.stats.errors += 1        # (a counted refusal is in stats.refused instead)
                    if track.stats.first_error is None:
                        track.stats.first_error = msg
                if self.on_error is not None:
                    self.on_error(track.output.name, msg)
            if track.counts_refusals:
                track.stats.refused = track.output.refused - track.refused_before
            track.stats.samples_ms.append(lateness * 1000.0)
            track.stats.sent += 1
            track.k += 1
