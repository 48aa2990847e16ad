"""Streaming speech -> motion: audio chunks of any size in, final frames out, with a fixed lookahead.

:class:`MotionStream` runs the same two-stage model (same weights) as :class:`motion.inference.MotionGenerator`,
on short windows that slide with the audio:

* every ``hop_frames`` frames (a *step*), one window of ``context_frames`` frames ending ``lookahead_frames``
  frames after the newest frame to emit is sampled, face stage then body stage;
* the window's frames already emitted are inpainted (kept fixed), so the motion continues them without a
  seam (the overlap-inpainting of ChatAnyone §3.1 / offline :func:`motion.windows.sample_windows`);
* the newest ``hop_frames`` frames are emitted, after the same temporal smoothing as offline
  (:func:`motion.windows.smooth_frames`, which reads 2 frames on each side); the last
  ``lookahead_frames`` frames of the window are only a look ahead and are sampled again by the next step,
  which cross-fades from that earlier sample into its own over those frames (raised cosine,
  :func:`motion.windows.crossfade_weights`: temporal ensembling at the hop join).

A frame at time ``t`` is therefore final once the audio up to ``t + lookahead_s`` has arrived
(:attr:`MotionStream.lookahead_s`: ``lookahead_frames / 30`` s plus 64 ms the audio features look ahead),
and it leaves at the next step, at most ``hop_frames - 1`` frames later.

Determinism: a step runs as soon as the audio it needs is there, and its noise is seeded by ``(seed,
step)``, so the output depends on the audio and the seed only, not on how the audio was cut into chunks:
20 ms chunks and the whole file in one :meth:`MotionStream.push` give identical frames.
:func:`stream_clip` is that offline use of the streaming path.

Streaming differs from the offline default in three documented ways: the phones (checkpoints >= 0.5.0:
pocketsphinx decodes each window's audio, so the newest frames' phones are decided without the later audio
the offline decoding of the whole clip sees; older checkpoints: none, all 'SIL'), shorter windows, and the
blink/brow/gaze model sampled without its speech-energy coupling, in blocks of 5 minutes. The running
normalisation of the features (:class:`motion.phone_features.RunningNorm`) is carried across steps and matches
offline frame for frame.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .audio import SAMPLE_RATE
from .clip import MotionClip
from .errors import AudioError, ChatAnyoneError
from .features import StreamingFeatures, extract_features
from .frames import MotionFrame
from .representation import FACE_MOUTH_DIM
from .inference import MODEL_FPS, MotionGenerator
from .windows import crossfade, crossfade_weights, smooth_frames, smooth_radius
from .options import SamplingOptions

#: Samples of audio the features of a frame need after the frame's time: YIN's centred 64 ms frame
#: (32 ms), the 10 ms box smoothing and the 100 Hz -> 30 fps interpolation (20 ms), rounded up to 64 ms.
FEATURE_LOOKAHEAD_SAMPLES = 1024
_SAMPLES_PER_3_FRAMES = 1600          # 3 frames at 30 fps = 0.1 s = 1600 samples at 16 kHz
_MARGIN = 6                           # frames of audio before a window that its features need
#: Time constant (frames) of the streaming path's causal low-pass on head and body (group delay ~ this);
#: see :meth:`MotionStream._causal_low_pass`
STREAM_BODY_TAU_FRAMES = 2.0
#: Frames over which a step's new body motion is shifted onto the previous step's look-ahead: the offset
#: between them at the first new frame is added to the new frames, fading linearly to 0 over this many
#: frames, before the look-ahead cross-fade (0 = off). The 3-frame cross-fade alone left a 5 Hz ripple
#: (held-out BEAT2 tail, checkpoint 0.4.0: body jerk 127 m/s^3, worst hop phase 1.78x the mean); 6 frames:
#: jerk 94, worst phase 1.32, Hellinger 0.077 -> 0.085, BC 0.968 -> 0.949; 9 / 12: jerk 85 / 82, Hellinger
#: 0.111 / 0.126. Body only: on the face it cost streaming lip-sync r ~0.01 on every clip.
STREAM_OFFSET_FRAMES = 6
_IDLE_BLOCK = 9000                    # frames (5 min) per independently sampled blink/gaze block


@dataclass(frozen=True)
class StreamConfig:
    """Window schedule of :class:`MotionStream` (frames at 30 fps).

    Attributes:
        context_frames: window length W (multiple of 3, <= 120); 48 = 1.6 s.
        hop_frames: frames emitted per step H (>= 1); 6 = 200 ms. A step (both stages, 8 DDIM steps each, a
            48-frame window) took 171-177 ms median on the 2-core CPU machine under load, so a hop of 3
            frames (100 ms) does not keep up with live audio there; 6 does.
        lookahead_frames: frames of audio after the last emitted frame that a step waits for L (>= 0).
        steps: denoising steps per window, both stages, in place of the options' (default ``None``: the
            :class:`motion.options.SamplingOptions` given to the stream, else the checkpoint's defaults).
        torch_threads: torch's thread count while a step runs (restored after it; ``None``: leave it as
            :class:`motion.inference.MotionGenerator` set it). A step's window is small (48 frames, d_model
            128), so more threads mostly wait for each other: on the 2-core machine a step took 134 ms
            median with 2 threads and 61 ms with 1 (``python benchmarks/stream_latency.py``, frame latency
            436 -> 371 ms), while offline generation wants both (22x real time against 15x). torch's
            thread count is process-wide: torch work in other threads runs with it while a step runs.

    Raises:
        ChatAnyoneError: a schedule that does not fit (W not a multiple of 3, H + L >= W, ...).
    """

    context_frames: int = 48
    hop_frames: int = 6
    lookahead_frames: int = 3
    steps: int | None = None
    torch_threads: int | None = 1

    def __post_init__(self):
        W, H, L = self.context_frames, self.hop_frames, self.lookahead_frames
        if self.torch_threads is not None and self.torch_threads < 1:
            raise ChatAnyoneError(f"torch_threads must be >= 1 or None, got {self.torch_threads}")
        if W % 3 or not 12 <= W <= 120:
            raise ChatAnyoneError(f"context_frames must be a multiple of 3 in [12, 120], got {W}")
        if H < 1 or L < 0 or H + L >= W:
            raise ChatAnyoneError(f"need hop_frames >= 1, lookahead_frames >= 0 and hop + lookahead < "
                                  f"context_frames; got {H}, {L}, {W}")


def _frame_samples(frames: int) -> int:
    """Sample index (16 kHz) of frame ``frames`` (30 fps); exact when ``frames`` is a multiple of 3."""
    return (frames * _SAMPLES_PER_3_FRAMES + 2) // 3


@dataclass
class StreamStats:
    """Timing of a stream: ``compute_s`` per step (seconds of wall time), frames emitted, and what the
    :class:`DegradePolicy` did: ``degraded_steps`` (steps run with fewer denoising steps), ``max_level``,
    ``level_changes`` ``[(step, level), ...]`` (the level used from that step on)."""

    compute_s: list[float] = field(default_factory=list)
    frames: int = 0
    degraded_steps: int = 0
    max_level: int = 0
    level_changes: list[tuple[int, int]] = field(default_factory=list)


#: Denoising steps (face, body) of the degraded levels of :class:`DegradePolicy`, cheapest last (each
#: capped by the stream's own steps). Level 1 costs ~0.4x of the default (4, 6) step, level 2 ~0.2x.
DEGRADE_LEVELS: tuple[tuple[int, int], ...] = ((2, 2), (1, 1))
DEGRADE_UP = 0.9          # degrade when a step's (smoothed) compute exceeds this fraction of its budget ...
DEGRADE_DOWN = 0.6        # ... and go back up when the richer level would take less than this fraction
DEGRADE_CALM_STEPS = 10   # ... for this many steps in a row (2 s at the default hop)


class DegradePolicy:
    """Fewer denoising steps while a live stream cannot keep up with real time, and back when it can.

    A step must finish within its budget, ``hop_frames / 30`` s (the audio time it emits), or the stream
    falls behind the clock and never catches up. After each step, with ``c`` the step's compute time
    smoothed over steps (mean of the last value and the new one) and ``slack`` the time left until the next
    frame to emit is due (when the caller knows the schedule):

    * ``c > DEGRADE_UP * budget`` or ``slack < c`` (the next frames would be late): one level down the
      ladder ``[the stream's steps] + DEGRADE_LEVELS`` (face and body denoising steps);
    * at a degraded level, when the richer level is predicted (by the ratio of model forward passes) to take
      less than ``DEGRADE_DOWN * budget`` and ``slack`` exceeds 4 such steps, for
      :data:`DEGRADE_CALM_STEPS` steps in a row: one level up.

    The cost of a level is its number of denoiser forward passes: ``face_steps * face_passes +
    body_steps * body_passes`` (2 passes with classifier-free guidance, 3 with style guidance).

    Args:
        base_steps: the stream's ``(face, body)`` denoising steps (level 0).
        passes: forward passes per denoising step ``(face, body)``.
        budget_s: seconds of compute a step may take.
    """

    def __init__(self, base_steps: tuple[int, int], passes: tuple[int, int], budget_s: float):
        ladder = [tuple(base_steps)]
        for f, b in DEGRADE_LEVELS:
            lv = (min(base_steps[0], f), min(base_steps[1], b))
            if lv != ladder[-1]:
                ladder.append(lv)
        self.ladder: list[tuple[int, int]] = ladder
        self.cost = [f * passes[0] + b * passes[1] for f, b in ladder]
        self.budget_s = float(budget_s)
        self.level = 0
        self._c: float | None = None
        self._calm = 0

    @property
    def steps(self) -> tuple[int, int]:
        """``(face, body)`` denoising steps of the current level."""
        return self.ladder[self.level]

    def update(self, compute_s: float, slack_s: float | None = None) -> bool:
        """Account one step (``compute_s`` seconds; ``slack_s``: seconds until the next frame is due, or
        ``None``); returns True when the level changed."""
        c = self._c = compute_s if self._c is None else 0.5 * (self._c + compute_s)
        behind = slack_s is not None and slack_s < c
        if (c > DEGRADE_UP * self.budget_s or behind) and self.level < len(self.ladder) - 1:
            self.level += 1
            self._c = c * self.cost[self.level] / self.cost[self.level - 1]
            self._calm = 0
            return True
        if self.level > 0:
            richer = c * self.cost[self.level - 1] / self.cost[self.level]
            ok = richer < DEGRADE_DOWN * self.budget_s and (slack_s is None or slack_s > 4 * richer)
            self._calm = self._calm + 1 if ok else 0
            if self._calm >= DEGRADE_CALM_STEPS:
                self.level -= 1
                self._c, self._calm = richer, 0
                return True
        return False


class MotionStream:
    """Push audio, get motion frames.

    Args:
        generator: a loaded :class:`MotionGenerator` (its weights are used as they are).
        options: :class:`motion.options.SamplingOptions`, as for :meth:`MotionGenerator.generate` (values left
            ``None``: the checkpoint's defaults); no transcript (a stream has no text).
        **overrides: the same as keyword arguments over ``options`` (``seed``, ``style``, ``style_reference``,
            ``style_guidance``, ``intensity``, ``face_guidance``, ``body_guidance``, ...;
            :meth:`motion.options.SamplingOptions.from_arguments`).
        config: :class:`StreamConfig` (window schedule; its ``steps``, when set, replace both stages' steps).
        warm_up: run one step on silence at construction, so the first real step does not pay PyTorch's
            first-call costs (default True; :func:`stream_clip` turns it off).
        adaptive: run a :class:`DegradePolicy`: fewer denoising steps while the steps take longer than the
            audio they emit (live use on a busy machine). Off by default: the output then depends on the
            audio and the seed only; with it, also on the machine's speed.
        deadline: ``deadline(i)`` -> the ``clock`` time at which external frame ``i`` is due (``None`` while
            unknown), for the policy's slack; optional.
        on_degrade: called with a one-line message the first time the stream degrades to each lower level.
        clock: seconds, for the step timing (default ``time.perf_counter``; tests inject a slow one).

    Attributes:
        fps: 30.0, the rate of the frames yielded.
        options: the resolved :class:`motion.options.SamplingOptions` (every sampling value set).
        steps: ``(face, body)`` denoising steps; ``active_steps``: those of the next step (fewer while degraded).
        lookahead_s: seconds of audio after a frame's time needed before the frame is final.
        max_wait_s: longest time a frame can wait for its audio and its step, compute excluded:
            ``(hop_frames - 1 + lookahead_frames) / 30 + 0.064`` s.
        stats: :class:`StreamStats`.
    """

    fps = MODEL_FPS

    def __init__(self, generator: MotionGenerator, options: SamplingOptions | None = None, *,
                 config: StreamConfig | None = None, warm_up: bool = True, adaptive: bool = False,
                 deadline: Callable[[int], float | None] | None = None,
                 on_degrade: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.perf_counter, **overrides):
        self.gen = generator
        self.config = cfg = config or StreamConfig()
        if cfg.steps:
            overrides["steps"] = cfg.steps
        self.options = o = generator.options(options, **overrides)
        if o.transcript:
            raise ChatAnyoneError("a stream takes no transcript (forced alignment needs the whole audio); "
                                  "use MotionGenerator.generate")
        lay = generator.feature_layouts  # model-input layout per stage
        self._layouts = (lay["face"], lay["body"])
        self._stream_features = StreamingFeatures(self._layouts, generator.phone_source(o.phones))
        if cfg.context_frames > generator.models.face.config.max_frames:
            raise ChatAnyoneError(f"context_frames {cfg.context_frames} exceeds the model's "
                                  f"{generator.models.face.config.max_frames}")
        self.seed = o.seed
        self.intensity = o.intensity
        #: the face and the body stage as sampled (:class:`motion.windows.StageRun`)
        self.runs = generator.stage_runs(o)
        self.steps = (o.face.steps, o.body.steps)
        #: denoising steps (face, body) of the next step: :attr:`steps`, or fewer while degraded
        self.active_steps = self.steps
        self.clock, self.deadline, self.on_degrade = clock, deadline, on_degrade
        passes = tuple((3 if r.style_guidance != 1.0 else 2 if r.sampling.guidance != 1.0 else 1) for r in self.runs)
        self.policy = DegradePolicy(self.steps, passes, cfg.hop_frames / MODEL_FPS) if adaptive else None
        self.scheduler = generator.models.diffusion.scheduler()
        W, H, L = cfg.context_frames, cfg.hop_frames, cfg.lookahead_frames
        self.lookahead_s = L / MODEL_FPS + FEATURE_LOOKAHEAD_SAMPLES / SAMPLE_RATE
        self.max_wait_s = (H - 1 + L) / MODEL_FPS + FEATURE_LOOKAHEAD_SAMPLES / SAMPLE_RATE
        self.stats = StreamStats()
        # Internal frame i = external frame i - PAD: the stream starts after PAD frames of silence, so every
        # window is a full W frames long, as in training.
        self._pad = W + _MARGIN
        self._audio = np.zeros(_frame_samples(self._pad), np.float32)   # internal samples from _audio_base
        self._audio_base = 0
        self._received = 0           # external samples pushed
        self._step = 0               # next step index
        self._emitted = 0            # external frames emitted
        self._motion_base = 0        # internal frame of _face_n[0]
        fd, bd = generator.models.face.config.motion_dim, generator.models.body.config.motion_dim
        self._face_n = np.zeros((0, fd), np.float32)
        self._body_n = np.zeros((0, bd), np.float32)
        self._idle: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._closed = False
        self._lp_state: dict[str, np.ndarray] = {}
        if warm_up:
            self._warm_up()

    # ---------------------------------------------------------------------------------------- public
    def push(self, samples: np.ndarray) -> list[MotionFrame]:
        """Add ``[N]`` float32 mono 16 kHz samples (any N >= 0); returns the frames that became final.

        Raises:
            AudioError: not 1-D, or NaN/inf samples. ChatAnyoneError: pushing after :meth:`flush`.
        """
        if self._closed:
            raise ChatAnyoneError("this stream was flushed; start a new MotionStream")
        y = np.asarray(samples, dtype=np.float32)
        if y.ndim != 1:
            raise AudioError(f"push mono samples of shape [N], got shape {y.shape}")
        if not np.isfinite(y).all():
            raise AudioError("audio chunk contains NaN or infinite samples")
        self._audio = np.concatenate([self._audio, y])
        self._received += len(y)
        out: list[MotionFrame] = []
        H, L = self.config.hop_frames, self.config.lookahead_frames
        while True:
            end = (self._step + 1) * H + L
            if _frame_samples(end) + FEATURE_LOOKAHEAD_SAMPLES > self._received:
                break
            out += self._run_step(end, (self._step + 1) * H)
        return out

    def flush(self) -> list[MotionFrame]:
        """End of the audio: emit every remaining frame (``round(samples / 16000 * 30)`` in all).

        Raises:
            AudioError: fewer than 2 frames of audio were pushed in all.
        """
        if self._closed:
            return []
        self._closed = True
        T = int(round(self._received / SAMPLE_RATE * MODEL_FPS))
        if T < 2 and self._emitted == 0:
            raise AudioError(f"audio too short: {self._received / SAMPLE_RATE:.3f} s")
        H, L = self.config.hop_frames, self.config.lookahead_frames
        out: list[MotionFrame] = []
        while self._emitted < T:
            end = min((self._step + 1) * H + L, T)
            out += self._run_step(end, T if end == T else min((self._step + 1) * H, T))
        return out

    # -------------------------------------------------------------------------------------- internals
    def _features(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """Face and body stage inputs ``[end - start, 123]`` (their checkpoint layouts) for internal frames
        [start, end); the running normalisation and the phone classifier's context carry across steps
        (:class:`motion.features.StreamingFeatures`).

        The features are computed on the audio from a frame on the 0.1 s grid (a multiple of 3 frames,
        so the 100 Hz analysis frames fall where the offline ones do) at least ``_MARGIN`` frames before
        ``start``, to ``FEATURE_LOOKAHEAD_SAMPLES`` after ``end``.
        """
        fs = ((start - _MARGIN) // 3) * 3
        a = _frame_samples(fs) - self._audio_base
        b = _frame_samples(end) + FEATURE_LOOKAHEAD_SAMPLES - self._audio_base
        buf = self._audio[a:b]
        if len(buf) < b - a:  # end of the stream: silence after the audio
            buf = np.pad(buf, (0, b - a - len(buf)))
        feats = extract_features(buf, SAMPLE_RATE, MODEL_FPS, phones=False, relative=False)
        rows = self._stream_features.rows(feats, fs, start, end, audio=buf)
        return rows[self._layouts[0]], rows[self._layouts[1]]

    def _idle_frames(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """Blink/brow/gaze face ``[b-a, 52]`` and eye rotations ``[b-a, 2, 4]`` for external frames [a, b)."""
        faces, eyes = [], []
        for blk in range(a // _IDLE_BLOCK, (b - 1) // _IDLE_BLOCK + 1):
            if blk not in self._idle:
                s = self.gen.idle.sample(_IDLE_BLOCK, MODEL_FPS, seed=self.seed * 100_003 + blk)
                self._idle = {blk: (s.face, s.eye_rotations)}  # keep one block
            f, e = self._idle[blk]
            lo, hi = max(a, blk * _IDLE_BLOCK) - blk * _IDLE_BLOCK, min(b, (blk + 1) * _IDLE_BLOCK) - blk * _IDLE_BLOCK
            faces.append(f[lo:hi])
            eyes.append(e[lo:hi])
        return np.concatenate(faces), np.concatenate(eyes)

    def _warm_up(self) -> None:
        """One throw-away step of both stages on a silent window (PyTorch's first calls of a shape are
        slow: allocator, kernel selection), with known frames so the inpainting path runs too."""
        m, W = self.gen.models, self.config.context_frames
        cond = extract_features(np.zeros(_frame_samples(W), np.float32), SAMPLE_RATE, MODEL_FPS,
                                num_frames=W, phones=False).stack().astype(np.float32)
        gen = torch.Generator().manual_seed(0)
        for st in range(2):
            face_n = self._sample_stage(0, cond, np.zeros((W, m.face.config.motion_dim), np.float32), W // 2 * st, gen)
            self._sample_stage(1, np.concatenate([cond, face_n], 1), np.zeros((W, m.body.config.motion_dim), np.float32),
                               W // 2 * st, gen)

    def _sample_stage(self, stage: int, cond: np.ndarray, known: np.ndarray, n_known: int,
                      gen: torch.Generator) -> np.ndarray:
        """``[W, D]`` normalised motion of stage ``stage`` (0 face, 1 body) for a ``[W, C]`` window, its first
        ``n_known`` frames inpainted from ``known``, with :attr:`active_steps`."""
        run = self.runs[stage]
        D = run.model.config.motion_dim
        W = cond.shape[0]
        mask = None
        kn = None
        if n_known > 0:
            kn = torch.zeros((1, W, D))
            kn[0, :n_known] = torch.from_numpy(known[:n_known])
            mask = torch.zeros((1, W, D), dtype=torch.bool)
            mask[:, :n_known] = True
        x0 = run.sample(self.scheduler, torch.from_numpy(cond)[None], gen, kn, mask, steps=self.active_steps[stage])
        return x0[0].numpy()

    def _causal_low_pass(self, key: str, x: np.ndarray) -> np.ndarray:
        """One-pole low-pass (time constant :data:`STREAM_BODY_TAU_FRAMES`) over the emitted frames of
        head and body: consecutive steps re-sample the frames near a hop join, and without it the joins
        jitter. Mean joint jerk on the held-out BEAT2 tail (offline 73 m/s^3, real capture 68): 1241
        without, 479 at 1.5 frames, 260 at 3 frames; 2 frames (~67 ms of lag on head and gestures, not on
        the mouth) is the compromise."""
        a = 1.0 - np.exp(-1.0 / STREAM_BODY_TAU_FRAMES)
        y = self._lp_state.get(key)
        out = np.empty_like(x)
        for i, v in enumerate(x):
            y = v if y is None else y + a * (v - y)
            out[i] = y
        self._lp_state[key] = y
        return out

    @staticmethod
    def _smoothed(x: np.ndarray, i0: int, i1: int, sigma: float) -> np.ndarray:
        """Rows [i0, i1) of ``x`` after the offline temporal smoothing, reading the stored neighbours (the
        committed past and the look-ahead frames of the current window)."""
        r = smooth_radius(sigma)
        a, b = max(0, i0 - r), min(len(x), i1 + r)
        return smooth_frames(x[a:b], sigma)[i0 - a:i1 - a]

    def _adapt(self, compute_s: float) -> None:
        """Let the :class:`DegradePolicy` see this step; switch the denoising steps for the next one."""
        if self.policy is None:
            return
        due = self.deadline(self._emitted) if self.deadline is not None else None
        slack = None if due is None else due - self.clock()
        if self.policy.level:
            self.stats.degraded_steps += 1
        if self.policy.update(compute_s, slack):
            lv = self.policy.level
            self.active_steps = self.policy.steps
            self.stats.level_changes.append((self._step, lv))
            if lv > self.stats.max_level:
                self.stats.max_level = lv
                if self.on_degrade is not None:
                    f, b = self.active_steps
                    why = (f"a step took {compute_s * 1000:.0f} ms of its {self.policy.budget_s * 1000:.0f} ms"
                           if slack is None or slack >= compute_s else f"frames due in {slack * 1000:.0f} ms")
                    self.on_degrade(f"this machine is too slow for real-time motion ({why}): using fewer "
                                    f"denoising steps (face {f}, body {b}) until it catches up")

    def _run_step(self, end_ext: int, emit_end_ext: int) -> list[MotionFrame]:
        n = self.config.torch_threads
        before = torch.get_num_threads()
        if n is None or n == before:
            return self._step_frames(end_ext, emit_end_ext)
        torch.set_num_threads(n)
        try:
            return self._step_frames(end_ext, emit_end_ext)
        finally:
            torch.set_num_threads(before)

    def _step_frames(self, end_ext: int, emit_end_ext: int) -> list[MotionFrame]:
        t0 = self.clock()
        W = self.config.context_frames
        e = end_ext + self._pad
        s = e - W
        committed = self._emitted + self._pad           # internal frames < committed are fixed
        if len(self._face_n) == 0:
            self._motion_base = s
        k0 = s - self._motion_base                      # >= 0: see the trimming below
        n_known = max(0, min(committed, self._motion_base + len(self._face_n)) - s)
        known_face = self._face_n[k0:k0 + n_known] if n_known else None
        known_body = self._body_n[k0:k0 + n_known] if n_known else None
        seed = int(np.random.SeedSequence([self.seed, self._step]).generate_state(1)[0])
        gen = torch.Generator().manual_seed(seed)
        cond, body_feats = self._features(s, e)
        # frames after the committed ones that the previous step sampled as its look ahead: cross-fade
        prev_end = self._motion_base + len(self._face_n)
        n_prev = max(0, min(prev_end, e) - committed) if n_known else 0
        w = crossfade_weights(n_prev)[:, None]
        j0 = committed - s

        def ensemble(new: np.ndarray, old_rows: np.ndarray, shift: bool = False) -> np.ndarray:
            if n_prev:
                if shift and STREAM_OFFSET_FRAMES:
                    k = np.arange(len(new) - j0)
                    decay = np.clip(1 - k / STREAM_OFFSET_FRAMES, 0, 1)[:, None]
                    new[j0:] += (old_rows[0] - new[j0]) * decay
                new[j0:j0 + n_prev] = crossfade(old_rows, new[j0:j0 + n_prev], w)
            return new
        old_face = self._face_n[k0 + j0:k0 + j0 + n_prev].copy()
        old_body = self._body_n[k0 + j0:k0 + j0 + n_prev].copy()
        face_n = ensemble(self._sample_stage(0, cond, known_face, n_known, gen), old_face)
        body_cond = np.concatenate([body_feats, face_n], axis=1)
        body_n = ensemble(self._sample_stage(1, body_cond, known_body, n_known, gen),
                          old_body, shift=True)
        # keep the window's motion (the committed part is unchanged by inpainting)
        self._face_n = np.concatenate([self._face_n[:k0], face_n])
        self._body_n = np.concatenate([self._body_n[:k0], body_n])
        # emit
        a_int, b_int = self._emitted + self._pad, emit_end_ext + self._pad
        i0, i1 = a_int - self._motion_base, b_int - self._motion_base
        idle_face, eye_rot = self._idle_frames(self._emitted, emit_end_ext)
        face_n = self._smoothed(self._face_n, i0, i1, self.runs[0].sampling.smoothing_sigma)
        body_n = self._smoothed(self._body_n, i0, i1, self.runs[1].sampling.smoothing_sigma)
        face_n[:, FACE_MOUTH_DIM:] = self._causal_low_pass("head", face_n[:, FACE_MOUTH_DIM:])
        body_n = self._causal_low_pass("body", body_n)
        # no body variance compensation: it is fitted for the offline sampler, and the short streaming
        # windows already vary more (held-out BEAT2 Hellinger 0.080 without it, 0.103 with it)
        face, rot = self.gen.finish(face_n, body_n, idle_face, eye_rot, self.intensity, variance_compensation=False)
        frames = [MotionFrame(i, i / MODEL_FPS, face[j], rot[j], np.zeros(3, np.float32))
                  for j, i in enumerate(range(self._emitted, emit_end_ext))]
        self._emitted = emit_end_ext
        self._step += 1
        # forget what no later window reaches: a later window ends at or after the last emitted frame,
        # so it starts at or after committed - W
        new_base = self._emitted + self._pad - W
        drop = new_base - self._motion_base
        if drop > 0:
            self._face_n, self._body_n = self._face_n[drop:], self._body_n[drop:]
            self._motion_base = new_base
        keep_from = _frame_samples(((new_base - _MARGIN) // 3) * 3) - self._audio_base
        if keep_from > 0:
            self._audio = self._audio[keep_from:]
            self._audio_base += keep_from
        self.stats.compute_s.append(self.clock() - t0)
        self.stats.frames += len(frames)
        self._adapt(self.stats.compute_s[-1])
        return frames


def stream_clip(generator: MotionGenerator, audio: np.ndarray, options: SamplingOptions | None = None,
                chunk_samples: int | None = None, **kwargs) -> MotionClip:
    """Run ``audio`` (``[N]`` float32, 16 kHz mono) through a :class:`MotionStream` and stack the frames.

    Args:
        options: :class:`motion.options.SamplingOptions` (``None``: the checkpoint's defaults).
        chunk_samples: push the audio in chunks of this many samples (default: all at once; the result
            is the same either way).
        **kwargs: :class:`MotionStream` keyword arguments (``config``, ... and option overrides such as ``seed``).
    Returns:
        ``MotionClip`` at 30 fps with ``round(N / 16000 * 30)`` frames; ``meta["streaming"]`` holds the
        schedule.
    """
    kwargs.setdefault("warm_up", False)
    stream = MotionStream(generator, options, **kwargs)
    frames: list[MotionFrame] = []
    step = chunk_samples or max(1, len(audio))
    for i in range(0, len(audio), step):
        frames += stream.push(audio[i:i + step])
    frames += stream.flush()
    cfg = stream.config
    meta = {"model_version": generator.version, "seed": stream.seed, "streaming": {
        "context_frames": cfg.context_frames, "hop_frames": cfg.hop_frames,
        "lookahead_frames": cfg.lookahead_frames, "steps": {"face": stream.steps[0], "body": stream.steps[1]}, "lookahead_s": stream.lookahead_s},
        "root": "locked", "audio_sample_rate": SAMPLE_RATE, "audio_duration_s": len(audio) / SAMPLE_RATE}
    return MotionClip(MODEL_FPS, np.stack([f.face for f in frames]), np.stack([f.rotations for f in frames]),
                      None, meta)
