"""``chatanyone stream``: speech in, live avatar motion out, in real time and in sync with the audio.

Inputs (exactly one):

* ``AUDIO`` file: generated with the streaming API, paced from the moment the audio starts (``--play``
  plays it locally, sample 0 at the same instant as frame 0);
* ``CLIP.npz``: a saved :class:`motion.clip.MotionClip`, streamed as is (``--play`` plays the clip's
  ``meta["audio_source"]`` from ``meta["audio_offset_s"]``);
* ``--mic``: a live microphone (optional dependency, see :mod:`bridge.audio_io`);
* ``--ws-audio``: PCM16 16 kHz chunks pushed by a WebSocket client (:mod:`bridge.ws_server`); each
  ``audio`` ... ``audio_end`` run is one utterance, followed by an ``end`` message; the next one restarts
  ``seq`` at 0. The server keeps running between utterances.

Outputs (any number, at least one): ``--vmc HOST:PORT`` (:mod:`bridge.vmc`), ``--livelink HOST:PORT``
(:mod:`bridge.livelink`), ``--ws PORT`` (:mod:`bridge.ws_server`), all driven by one
:class:`bridge.pacing.Pacer`: VMC and Live Link at ``--fps`` (default 60, slerped from the model's 30),
the WebSocket stream at the model's rate.

Timing: audio time 0 is at ``t0 = start + delay``, where ``start`` is when the first frame is ready (file,
clip), the capture time of the first microphone sample (``--mic``) or the arrival of the first audio chunk
(``--ws-audio``), and ``delay`` (``--delay``, default :func:`default_delay`) covers the streaming model's
lookahead for live input. A WebSocket audio client that wants lip sync plays its audio ``delay`` seconds
after sending the first chunk.
"""
from __future__ import annotations

import collections
import functools
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from motion.conventions import MODEL_FPS, SAMPLE_RATE
from motion.errors import ChatAnyoneError
from motion.frames import MotionFrame, clip_frames

from .pacing import DEFAULT_MAX_LATE_S, LatenessStats, Pacer

CHUNK_S = 0.1                      # file audio is pushed to the streaming model in chunks of this length
FILE_PREROLL_S = 0.2               # margin between "first frame ready" and audio time 0 for files/clips
LIVE_MARGIN_S = 0.2                # added to the model's lookahead for --mic / --ws-audio
#: ``--ws-audio``: most seconds of audio a client may be ahead of real time (its utterance's audio received,
#: minus the time since the utterance's first chunk arrived). Beyond it the audio is refused and the client
#: closed with code 1013 (try again later): memory stays bounded (~4 MB of audio, ~2 MB of frames) and the
#: server is never busy for more than this after a client leaves.
MAX_AUDIO_AHEAD_S = 60.0


class AudioInbox:
    """``--ws-audio``: utterances between the WebSocket server thread and the model, bounded in time.

    The server calls :meth:`on_audio` (16 kHz float32 chunks), :meth:`on_audio_end`, and
    :meth:`on_abort` when the audio client vanishes (or was refused) in the middle of an utterance; the
    stream takes items ``(kind, samples, arrival perf_counter)`` with :meth:`get`, ``kind`` one of
    ``"audio"``, ``"end"`` or ``"abort"``.

    Args:
        max_ahead_s: see :data:`MAX_AUDIO_AHEAD_S`.
        clock: seconds (injectable for tests).
    """

    def __init__(self, max_ahead_s: float = MAX_AUDIO_AHEAD_S, clock: Callable[[], float] = time.perf_counter):
        self.max_ahead_s = float(max_ahead_s)
        self.clock = clock
        self._items: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._first: float | None = None     # arrival of the current utterance's first chunk
        self._received = 0                   # samples of the current utterance
        #: samples received but not yet taken by the model
        self.queued_samples = 0
        #: chunks refused (client too far ahead), samples dropped because their client left
        self.refused = 0
        self.dropped_samples = 0

    def on_audio(self, samples: np.ndarray) -> str | None:
        """Queue a chunk; returns the reason when it is refused (the server then closes the client)."""
        now = self.clock()
        with self._cond:
            if self._first is None:
                self._first, self._received = now, 0
            ahead = (self._received + len(samples)) / SAMPLE_RATE - (now - self._first)
            if ahead > self.max_ahead_s:
                self.refused += 1
                return (f"audio more than {self.max_ahead_s:g} s ahead of real time; send it no faster "
                        "than it plays")
            self._received += len(samples)
            self.queued_samples += len(samples)
            self._items.append(("audio", samples, now))
            self._cond.notify_all()
        return None

    def on_audio_end(self) -> None:
        with self._cond:
            self._first = None
            self._items.append(("end", None, self.clock()))
            self._cond.notify_all()

    def on_abort(self) -> None:
        """The audio client left mid-utterance: drop its audio not yet taken by the model, end the utterance."""
        with self._cond:
            kept = [it for it in self._items if it[0] != "audio"]
            self.dropped_samples += self.queued_samples
            self.queued_samples = 0
            self._items = collections.deque(kept)
            self._first = None
            self._items.append(("abort", None, self.clock()))
            self._cond.notify_all()

    def get(self, timeout: float | None = None):
        """The next item (blocking); ``None`` after ``timeout`` seconds."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._items, timeout):
                return None
            item = self._items.popleft()
            if item[0] == "audio":
                self.queued_samples -= len(item[1])
            return item


# --------------------------------------------------------------------------------------------------
# The one place where motion is produced from audio
# --------------------------------------------------------------------------------------------------
def _motion_stream_class():
    """The streaming model class (a seam for tests, which replace it by a stand-in)."""
    from motion.streaming import MotionStream
    return MotionStream


def motion_frames(generator, chunks: Iterable[np.ndarray], *, seed: int = 0, style: str | None = None,
                  intensity=None, style_reference=None, pacer: Pacer | None = None,
                  on_degrade: Callable[[str], None] | None = None, streams: list | None = None) -> Iterator[MotionFrame]:
    """Audio chunks (16 kHz mono float32, any lengths) -> 30 fps :class:`MotionFrame` s, as they become final.

    The single place where live motion is produced: ``motion.streaming.MotionStream``
    (``push(chunk) -> frames``, ``flush() -> frames``), same weights as the offline generator.

    With ``pacer`` (the :class:`Pacer` that sends these frames) the stream keeps up with the pacer's clock
    when the machine is too slow: fewer denoising steps while it is behind, back when it has caught up
    (:class:`motion.streaming.DegradePolicy`); ``on_degrade`` gets its one-line message. The stream object is
    appended to ``streams`` (its ``stats`` say how many steps ran degraded).

    Raises:
        AudioError / ChatAnyoneError: from the model (e.g. audio too short).
    """
    kw = {} if style_reference is None else {"style_reference": style_reference}
    if pacer is not None:
        kw.update(adaptive=True, on_degrade=on_degrade,
                  deadline=lambda i: None if pacer.t0 is None else pacer.t0 + i / MODEL_FPS)
    stream = _motion_stream_class()(generator, seed=seed, style=style, intensity=intensity, **kw)
    if streams is not None:
        streams.append(stream)
    for c in chunks:
        yield from stream.push(np.asarray(c, np.float32))
    yield from stream.flush()


def _reference(opts: "StreamOptions"):
    """The ``--style-reference`` clip (None without one), read once per path and kept for every utterance."""
    return _load_reference(opts.style_reference) if opts.style_reference else None


@functools.lru_cache(maxsize=1)
def _load_reference(path: str):
    from motion.inference import load_style_reference
    return load_style_reference(path)


def model_lookahead_s(generator) -> float:
    """Longest wait of a frame for its audio in the streaming model, compute excluded (seconds):
    ``MotionStream.max_wait_s`` (lookahead plus the wait for the next step)."""
    return float(_motion_stream_class()(generator, warm_up=False).max_wait_s)


def default_delay(live: bool, generator=None) -> float:
    """``--delay`` default: :data:`FILE_PREROLL_S` for files and clips; for live input the streaming
    model's longest wait (:func:`model_lookahead_s`) plus :data:`LIVE_MARGIN_S` for its compute."""
    if not live:
        return FILE_PREROLL_S
    return (model_lookahead_s(generator) if generator is not None else 0.0) + LIVE_MARGIN_S


def file_chunks(audio: np.ndarray, chunk_s: float = CHUNK_S) -> Iterator[np.ndarray]:
    n = max(1, int(round(chunk_s * SAMPLE_RATE)))
    for i in range(0, len(audio), n):
        yield audio[i:i + n]


# --------------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------------
def parse_hostport(text: str, default_host: str, what: str) -> tuple[str, int]:
    """``"HOST:PORT"``, ``":PORT"`` or ``"PORT"`` (``[::1]:PORT`` for IPv6) -> ``(host, port)``.

    Raises:
        ChatAnyoneError: not of that form, or a port outside 1..65535.
    """
    s = text.strip()
    host, _, port = s.rpartition(":")
    if not _:
        host, port = "", s
    host = host.strip("[]") or default_host
    try:
        p = int(port)
    except ValueError:
        raise ChatAnyoneError(f"{what}: expected HOST:PORT, got {text!r}") from None
    if not 0 < p < 65536:
        raise ChatAnyoneError(f"{what}: port must be 1..65535, got {p}")
    return host, p


@dataclass
class StreamOptions:
    """What ``chatanyone stream`` was asked to do (see the module docstring and ``--help``)."""

    input: str | None = None            # AUDIO file or CLIP.npz
    mic: bool = False
    ws_audio: bool = False
    vmc: str | None = None              # "HOST:PORT"
    livelink: str | None = None         # "HOST:PORT"
    ws: int | None = None               # port
    host: str = "127.0.0.1"             # WebSocket bind address
    token: str | None = None
    play: bool = False
    fps: float = 60.0                   # VMC and Live Link rate
    blendshapes: str = "vrm0"
    subject: str = "ChatAnyone"
    seed: int = 0
    style: str | None = None
    style_reference: str | None = None  # path: MotionClip .npz or Live Link Face .csv
    checkpoint: str | None = None
    mouth_scale: bool = True            # iPhone ARKit scale (motion.face_scale); False: the model's own
    delay: float | None = None          # None: default_delay
    device: str | None = None           # sounddevice device for --play / --mic
    max_utterances: int | None = None   # --ws-audio: stop after this many (tests); None: until Ctrl-C
    max_late_s: float = DEFAULT_MAX_LATE_S  # ticks later than this are skipped (stay in sync with the audio)
    max_audio_ahead_s: float = MAX_AUDIO_AHEAD_S  # --ws-audio: a client further ahead of real time is closed
    adaptive: bool = True               # fewer denoising steps while the machine is too slow (DegradePolicy)


@dataclass
class StreamResult:
    """Statistics of a finished ``stream`` run."""

    lateness: dict[str, LatenessStats] = field(default_factory=dict)
    utterances: int = 0
    ws: object | None = None             # ws_server.BroadcastStats
    inbox: AudioInbox | None = None      # --ws-audio: refused chunks, dropped samples
    model_steps: int = 0                 # streaming model steps run (all utterances)
    degraded_steps: int = 0              # ... of which with fewer denoising steps (DegradePolicy)
    degraded_to: tuple[int, int] | None = None   # fewest (face, body) denoising steps used
    degrade_warned: bool = False
    streams: list = field(default_factory=list)   # MotionStreams of the current run (see _collect)

    def summary_lines(self) -> list[str]:
        _collect(self)
        lines = [s.summary() for s in self.lateness.values()]
        if self.degraded_to is not None:
            f, b = self.degraded_to
            lines.append(f"model: {self.degraded_steps} of {self.model_steps} steps with fewer denoising steps "
                         f"(machine too slow for real time; at most down to face {f}, body {b})")
        if self.ws is not None:
            lines.append(self.ws.summary())
        if self.inbox is not None and (self.inbox.refused or self.inbox.dropped_samples):
            lines.append(f"ws audio: {self.inbox.refused} chunks refused (client more than "
                         f"{self.inbox.max_ahead_s:g} s ahead), {self.inbox.dropped_samples / SAMPLE_RATE:.1f} s "
                         "of audio dropped (client left mid-utterance)")
        return lines


# --------------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------------
def _check(opts: StreamOptions) -> None:
    sources = sum([opts.input is not None, opts.mic, opts.ws_audio])
    if sources != 1:
        raise ChatAnyoneError("give exactly one input: an AUDIO file, a CLIP.npz, --mic or --ws-audio")
    if not (opts.vmc or opts.livelink or opts.ws is not None):
        raise ChatAnyoneError("nothing to stream to: add --vmc HOST:PORT, --livelink HOST:PORT and/or --ws PORT")
    if opts.ws_audio and opts.ws is None:
        raise ChatAnyoneError("--ws-audio receives audio on the WebSocket server: add --ws PORT")
    if opts.play and (opts.mic or opts.ws_audio):
        raise ChatAnyoneError("--play plays the input file; it cannot be used with --mic or --ws-audio")
    if opts.token and opts.ws is None:
        raise ChatAnyoneError("--token protects the WebSocket server: add --ws PORT")
    if opts.input is not None and not Path(opts.input).is_file():
        raise ChatAnyoneError(f"{opts.input}: " + ("is a folder, not a file" if Path(opts.input).is_dir()
                                                   else "no such file"))
    if not np.isfinite(opts.fps) or opts.fps <= 0:
        raise ChatAnyoneError(f"--fps must be positive, got {opts.fps}")
    if opts.delay is not None and (not np.isfinite(opts.delay) or opts.delay < 0):
        raise ChatAnyoneError(f"--delay must be >= 0 seconds, got {opts.delay}")


def _open_outputs(opts: StreamOptions, on_audio=None, on_audio_end=None, log=None, ws_fps: float = MODEL_FPS) -> list:
    from .livelink import LiveLinkSender
    from .vmc import VMCSender
    from .ws_server import FrameBroadcaster
    outputs: list = []
    try:
        if opts.vmc:
            host, port = parse_hostport(opts.vmc, "127.0.0.1", "--vmc")
            outputs.append(VMCSender(host, port, blendshapes=opts.blendshapes, fps=opts.fps))
        if opts.livelink:
            host, port = parse_hostport(opts.livelink, "127.0.0.1", "--livelink")
            outputs.append(LiveLinkSender(host, port, subject=opts.subject, fps=opts.fps))
        if opts.ws is not None:
            kw = {"log": log} if log is not None else {}
            ws = FrameBroadcaster(opts.host, int(opts.ws), token=opts.token, fps=ws_fps, on_audio=on_audio,
                                  on_audio_end=on_audio_end, **kw)
            outputs.append(ws.start())
    except BaseException:
        for o in outputs:
            o.close()
        raise
    return outputs


def _describe(o) -> str:
    if o.name == "ws":
        return f"ws ws://{o.host}:{o.port}/ ({o.fps:g} fps)"
    return f"{o.name} {o.host}:{o.port} ({o.fps:g} fps)"


def run_stream(opts: StreamOptions, *, generator=None, log: Callable[[str], None] | None = None,
               ready: Callable[[list], None] | None = None) -> StreamResult:
    """Run ``chatanyone stream`` with ``opts``; returns the statistics when the input ends.

    Args:
        generator: a ``motion.inference.MotionGenerator`` (default: loaded from ``opts.checkpoint`` when
            the input is audio).
        log: one-line status/warning printer (default: stderr).
        ready: called with the open outputs once everything is listening (tests use it).
    Raises:
        ChatAnyoneError: bad options, unreadable input, missing optional dependency or device, port in use,
            unresolvable host. ``KeyboardInterrupt`` (Ctrl-C) ends ``--mic`` and ``--ws-audio`` normally
            (statistics returned); for files and clips it passes through, after a clean shutdown in both cases.
    """
    log = log or (lambda m: print(f"chatanyone: {m}", file=sys.stderr, flush=True))
    _check(opts)
    _reference(opts)                                  # a bad --style-reference fails before anything opens
    clip = None
    audio = None
    if opts.input is not None and opts.input.lower().endswith(".npz"):
        from motion.clip import MotionClip
        clip = MotionClip.load(opts.input)
    elif opts.input is not None:
        from motion.audio import load_audio
        audio = load_audio(opts.input)
    player = _make_player(opts, clip, audio)          # optional dependencies and devices: fail early
    mic = None
    if opts.mic:
        from .audio_io import MicSource
        mic = MicSource(device=opts.device)
    if clip is None and generator is None:
        from motion.inference import MotionGenerator
        generator = MotionGenerator(opts.checkpoint, mouth_scale=opts.mouth_scale)
    live = opts.mic or opts.ws_audio
    delay = opts.delay if opts.delay is not None else default_delay(live, generator)
    utterances = AudioInbox(opts.max_audio_ahead_s)
    outputs = _open_outputs(opts, on_audio=utterances.on_audio if opts.ws_audio else None,
                            on_audio_end=utterances.on_audio_end if opts.ws_audio else None, log=log,
                            ws_fps=clip.fps if clip is not None else MODEL_FPS)
    ws = next((o for o in outputs if o.name == "ws"), None)
    if opts.ws_audio:
        ws.on_audio_abort = utterances.on_abort
    pacer_log = _first_error_logger(log)
    result = StreamResult(ws=ws.stats if ws is not None else None, inbox=utterances if opts.ws_audio else None)
    try:
        log("streaming to " + ", ".join(_describe(o) for o in outputs) + " (Ctrl-C to stop)")
        if ready is not None:
            ready(outputs)
        if clip is not None or audio is not None:
            if clip is not None:
                frames, fps = clip_frames(clip), clip.fps
            else:
                fps = MODEL_FPS
            pacer = Pacer(outputs, source_fps=fps, delay_s=delay, max_late_s=opts.max_late_s,
                          on_error=pacer_log)
            if clip is None:
                frames = motion_frames(generator, file_chunks(audio), seed=opts.seed, style=opts.style,
                                       style_reference=_reference(opts), **_adapt(opts, pacer, log, result))
            result.lateness = pacer.run(frames, on_start=player.start if player else None)
            result.utterances = 1
            if ws is not None:
                ws.publish_end(max((s.sent for n, s in result.lateness.items() if n == "ws"), default=0))
        elif mic is not None:
            mic.start()
            pacer = Pacer(outputs, source_fps=MODEL_FPS, delay_s=delay, max_late_s=opts.max_late_s,
                          on_error=pacer_log)
            frames = motion_frames(generator, iter(mic), seed=opts.seed, style=opts.style,
                                   style_reference=_reference(opts), **_adapt(opts, pacer, log, result))
            try:
                result.lateness = pacer.run(frames, start=mic.wait_start)
            except KeyboardInterrupt:                  # Ctrl-C is how a live stream ends
                result.lateness = pacer.stats
                log("stopped")
            result.utterances = 1
        else:
            log(f"waiting for audio from WebSocket clients on port {ws.port} "
                f"(motion for audio time t leaves at first chunk + {delay:.2f} s + t)")
            try:
                _serve_utterances(opts, generator, outputs, ws, utterances, delay, pacer_log, result, log)
            except KeyboardInterrupt:                  # Ctrl-C is how a live server ends
                log("stopped")
    finally:
        if player is not None:
            player.stop()
        if mic is not None:
            mic.stop()
        for o in outputs:
            o.close()
        _collect(result)
    return result


def _serve_utterances(opts, generator, outputs, ws, utterances: AudioInbox, delay, pacer_log, result, log) -> None:
    """``--ws-audio``: one paced run per utterance, until ``opts.max_utterances`` (or Ctrl-C). Every
    utterance ends with an ``end`` message: one without audio (``audio_end`` alone) gets ``end`` with 0
    frames; one whose client left (or was refused) stops at once, its queued audio dropped."""
    while opts.max_utterances is None or result.utterances < opts.max_utterances:
        first = _next_utterance(utterances)
        if first[0] != "audio":                    # an utterance without audio still gets its end
            result.utterances += 1
            ws.publish_end(0)
            log(f"utterance {result.utterances}: no audio")
            continue
        pacer = Pacer(outputs, source_fps=MODEL_FPS, delay_s=delay, max_late_s=opts.max_late_s,
                      on_error=pacer_log)
        aborted: list[bool] = []

        def on_abort() -> None:
            aborted.append(True)
            pacer.stop()
        chunks = _utterance_chunks(first, utterances, on_abort)
        frames = motion_frames(generator, chunks, seed=opts.seed, style=opts.style,
                               style_reference=_reference(opts), **_adapt(opts, pacer, log, result))
        try:
            stats = pacer.run(frames, start=first[2])
        except ChatAnyoneError as e:           # e.g. an utterance too short: report, keep serving
            result.utterances += 1
            log(f"utterance skipped: {e}")
            ws.publish_end(0)
            continue
        result.utterances += 1
        _merge(result.lateness, stats)
        _collect(result)
        ws.publish_end(stats["ws"].sent if "ws" in stats else 0)
        note = " (stopped: the audio client left)" if aborted else ""
        log(f"utterance {result.utterances}{note}: " + "; ".join(s.summary() for s in stats.values()))


def _adapt(opts: StreamOptions, pacer: Pacer, log, result: StreamResult) -> dict:
    """``motion_frames`` options that let the model keep up with ``pacer`` (unless ``opts.adaptive`` is
    off); the degrade warning is printed once per run."""
    if not opts.adaptive:
        return {"streams": result.streams}

    def warn(message: str) -> None:
        if not result.degrade_warned:
            result.degrade_warned = True
            log(f"warning: {message}")
    return {"pacer": pacer, "on_degrade": warn, "streams": result.streams}


def _collect(result: StreamResult) -> None:
    """Fold the statistics of the finished MotionStreams into ``result`` (so a server that runs for days
    keeps no stream objects)."""
    for st in result.streams:
        stats, policy = getattr(st, "stats", None), getattr(st, "policy", None)
        if stats is None or not hasattr(stats, "compute_s"):
            continue
        result.model_steps += len(stats.compute_s)
        result.degraded_steps += getattr(stats, "degraded_steps", 0)
        if policy is not None and getattr(stats, "max_level", 0):
            low = policy.ladder[stats.max_level]
            result.degraded_to = low if result.degraded_to is None else min(result.degraded_to, low)
    result.streams.clear()


def _make_player(opts: StreamOptions, clip, audio):
    if not opts.play:
        return None
    from .audio_io import AudioPlayer
    if clip is not None:
        src = clip.meta.get("audio_source")
        if not src or not Path(src).is_file():
            raise ChatAnyoneError(f"--play: the clip's audio ({src or 'meta.audio_source not set'}) is not available")
        from motion.audio import load_audio
        a = load_audio(src)
        offset = int(round(float(clip.meta.get("audio_offset_s", 0.0) or 0.0) * SAMPLE_RATE))
        audio = a[offset:]
    return AudioPlayer(audio, SAMPLE_RATE, device=opts.device)


def _first_error_logger(log):
    seen: set[str] = set()

    def on_error(name: str, message: str) -> None:
        if name not in seen:
            seen.add(name)
            log(f"warning: {name}: cannot send ({message}); still trying, errors are counted")
    return on_error


def _next_utterance(inbox: AudioInbox):
    while True:                                    # short waits keep Ctrl-C responsive
        item = inbox.get(timeout=0.2)
        if item is not None:
            return item


def _utterance_chunks(first, inbox: AudioInbox, on_abort: Callable[[], None] | None = None) -> Iterator[np.ndarray]:
    yield first[1]
    while True:
        kind, samples, _ = inbox.get()
        if kind == "abort" and on_abort is not None:
            on_abort()
        if kind != "audio":
            return
        yield samples


def _merge(total: dict[str, LatenessStats], part: dict[str, LatenessStats]) -> None:
    for name, s in part.items():
        t = total.setdefault(name, LatenessStats(name))
        t.sent += s.sent
        t.skipped += s.skipped
        t.errors += s.errors
        t.first_error = t.first_error or s.first_error
        t.refused += s.refused
        t.destination = t.destination or s.destination
        t.samples_ms.extend(s.samples_ms)
