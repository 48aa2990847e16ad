"""Offline inference: speech audio -> ``MotionClip`` with the two-stage model.

Long audio is sampled in windows of ``window`` frames that overlap by ``overlap`` frames; the overlap of
each window is inpainted from its neighbours' results (:mod:`motion.windows`, shared with streaming), so
windows join without seams. The face stage runs over the whole audio first, then the body stage, which is
conditioned on the audio and on the face stage's output (ChatAnyone's hierarchy).
"""
from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation as R
from tqdm.auto import tqdm

from .audio import SAMPLE_RATE, load_audio
from .checkpoint import StageModels, load_models
from .clip import MotionClip
from .conventions import ARKIT_MOUTH, BODY_STAGE_JOINTS, EYE_JOINTS, HEAD_JOINTS
from .errors import AudioError, ChatAnyoneError, CheckpointError
from .face_idle import IDLE_MASK, FaceIdleModel
from .posture import checkpoint_posture_correction, upright
from .features import extract_features
from .representation import assemble, body_vector, face_vector
from .rotations import axis_angle_to_quat, quat_to_axis_angle, sixd_to_quat
from .windows import (CROSSFADE_FRAMES, MAX_BATCH_WINDOWS, StageRun, WindowPlan, _Rows, crossfade_weights,  # noqa: F401
                      rng_states, sample_windows, smooth_frames, smooth_radius, window_joins, window_starts)
from .options import (BODY_ETA, BODY_GUIDANCE, BODY_GUIDANCE_RESCALE, BODY_SMOOTH_SIGMA, BODY_STEPS,  # noqa: F401
                      FACE_ETA, FACE_GUIDANCE, FACE_GUIDANCE_RESCALE, FACE_SMOOTH_SIGMA, FACE_STEPS, STYLE_GUIDANCE,
                      Intensity, OptionError, SamplingOptions, StageSampling, check_float, checkpoint_sampling,
                      FPS_RANGE)

from .conventions import MODEL_FPS  # noqa: E402,F401  (re-exported: the model's frame rate, one home)
# The sampling defaults (FACE_STEPS, FACE_GUIDANCE, ...) live in motion.options, with SamplingOptions;
# what they were measured to do: docs/sampling_experiments.md.
#: Offline default for pocketsphinx all-phone recognition for checkpoints without a phone source of their own.
RECOGNISE_PHONES = False
#: Shortest style reference clip (frames at 30 fps).
MIN_REFERENCE_FRAMES = 15
#: Frames of audio features computed per call on long audio (60 s at 30 fps): the feature extractor's
#: memory grows with its input (librosa's YIN and STFT frame matrices: ~150 MB per minute).
FEATURE_CHUNK_FRAMES = 1800
#: Audio context (frames, each side) of a chunk's pocketsphinx all-phone decoding in :func:`chunked_conditions`.
PHONE_CONTEXT_FRAMES = 90
_FEATURE_MARGIN = 6                   # frames of audio before a chunk that its features read (> 64 ms)
_FEATURE_LOOKAHEAD_SAMPLES = 1024     # samples after a chunk's last frame that its features read (64 ms)
#: Audio files longer than this (seconds) are decoded block by block into a temporary file and read back
#: per feature chunk, instead of being held in memory (3 h of 16 kHz float32 would be 690 MB).
LONG_AUDIO_S = 600.0
#: Frames (5 min at 30 fps) of the blink/brow/gaze model drawn at once on long audio: a clip up to this long
#: is one draw (the whole-clip path); a longer one gets an independent draw per block, each with its
#: energy coupling standardised over its own block (as :mod:`motion.streaming` does).
IDLE_BLOCK_FRAMES = 9000
_DECODE_BLOCK_S = 30.0
_FIXED_LAYOUTS = {"face": "fixed", "body": "fixed", "phones": "none"}   # checkpoints up to 0.4.0


class AudioReader:
    """16 kHz mono float32 audio read by sample range: ``read(a, b) -> [b - a]`` (zeros outside the audio).

    Built from an array (:meth:`from_array`) or from a file decoded block by block into an unnamed
    temporary file (:meth:`decode_file`), so that hours of audio need no memory.
    """

    def __init__(self, num_samples: int, read):
        self.num_samples = int(num_samples)
        self._read = read
        self.closers: list = []

    @classmethod
    def from_array(cls, y: np.ndarray) -> "AudioReader":
        y = np.asarray(y, np.float32)
        return cls(len(y), lambda a, b: y[a:b])

    @classmethod
    def decode_file(cls, path: str | os.PathLike) -> "AudioReader":
        """Decode ``path`` (anything :func:`motion.audio.load_audio` reads) to 16 kHz mono float32 in blocks
        of 30 s (channels averaged, rate converted by ``soxr.ResampleStream``, quality ``HQ``).

        Raises:
            AudioError: the file cannot be decoded or holds NaN/inf samples.
        """
        import tempfile

        import soundfile as sf
        import soxr
        tmp = tempfile.TemporaryFile(prefix="chatanyone-audio-")    # unlinked: gone even after SIGKILL
        n = 0
        try:
            with sf.SoundFile(str(path)) as f:
                rate = f.samplerate
                rs = None if rate == SAMPLE_RATE else soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32",
                                                                         quality="HQ")
                blocks = f.blocks(blocksize=int(_DECODE_BLOCK_S * rate), dtype="float32", always_2d=True)
                for block in blocks:
                    if not np.isfinite(block).all():
                        raise AudioError(f"Audio file {path}: audio contains NaN or infinite samples.")
                    mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
                    y = mono if rs is None else rs.resample_chunk(mono)
                    tmp.write(np.ascontiguousarray(y, np.float32).tobytes())
                    n += len(y)
                if rs is not None:
                    y = rs.resample_chunk(np.zeros(0, np.float32), last=True)
                    tmp.write(np.ascontiguousarray(y, np.float32).tobytes())
                    n += len(y)
        except (sf.SoundFileError, RuntimeError, ValueError, TypeError, OSError) as exc:
            tmp.close()
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise AudioError(f"Cannot decode audio file {path} (wav/flac/ogg/mp3 expected): {reason}") from None
        except BaseException:
            tmp.close()
            raise
        tmp.flush()
        fd = tmp.fileno()

        def read(a: int, b: int) -> np.ndarray:
            return np.frombuffer(os.pread(fd, 4 * (b - a), 4 * a), np.float32)
        reader = cls(n, read)
        reader.closers.append(tmp.close)
        return reader

    def read(self, a: int, b: int) -> np.ndarray:
        """Samples ``[a, b)`` as float32 ``[b - a]``; zeros where the range leaves the audio."""
        out = np.zeros(max(0, b - a), np.float32)
        lo, hi = max(a, 0), min(b, self.num_samples)
        if hi > lo:
            out[lo - a:hi - a] = self._read(lo, hi)
        return out

    def close(self) -> None:
        for c in self.closers:
            c()
        self.closers = []


def chunked_conditions(audio: AudioReader, num_frames: int, layouts: list[str], phones: str = "none",
                       chunk_frames: int = FEATURE_CHUNK_FRAMES, progress: bool = False):
    """The model inputs ``extract_features(audio, 16000, 30, num_frames=T, phones=phones).stack(layout)``
    for each of ``layouts``, computed :data:`FEATURE_CHUNK_FRAMES` frames at a time (bounded memory).

    Each chunk's features are computed on its audio from a frame on the 0.1 s grid (so the 100 Hz analysis
    frames fall where the whole-clip ones do) at least 6 frames before the chunk to 64 ms after it; the
    running normalisation (:class:`motion.phone_features.RunningNorm`) is carried from chunk to chunk and the
    phone classifier reads its 13 + 3 frames of context across chunk edges. A clip of at most
    ``chunk_frames`` frames is one call, the same as the whole-clip extractor.

    Args:
        audio: :class:`AudioReader`; num_frames: T; layouts: :meth:`motion.features.AudioFeatures.stack`
            layouts; phones: ``"none"``, ``"classifier"``, ``"pocketsphinx"`` or ``"hama"`` (decoding of each
            chunk's audio with :data:`PHONE_CONTEXT_FRAMES` frames of context on both sides; a clip of one
            chunk is decoded whole, as :func:`motion.features.extract_features` does).
    Returns:
        ``(conds, energy, phone_source)``: ``{layout: [T, FEATURE_DIM] float32}``, the ``[T]`` log-RMS
        energy, and the phone source used.
    """
    from .features import AudioFeatures
    T = int(num_frames)
    n_needed = int(round(T / MODEL_FPS * SAMPLE_RATE))
    need_rel = phones == "classifier" or "running" in layouts
    conds: dict[str, np.ndarray] = {}
    energy = np.zeros(T, np.float32)
    rel_all = None
    norm = None
    if need_rel:
        from .phone_features import RunningNorm, classifier_input
        norm = RunningNorm()
    bounds = list(range(0, T, chunk_frames))
    for f0 in tqdm(bounds, desc="features", disable=not progress or len(bounds) < 2, unit="min", leave=False):
        f1 = min(T, f0 + chunk_frames)
        fs = max(0, ((f0 - _FEATURE_MARGIN) // 3) * 3)
        a = fs * 1600 // 3
        b = min(n_needed, (f1 * 1600 + 2) // 3 + _FEATURE_LOOKAHEAD_SAMPLES)
        f = extract_features(audio.read(a, b), SAMPLE_RATE, MODEL_FPS, phones=False, relative=False)
        r = slice(f0 - fs, f1 - fs)
        rows = AudioFeatures(mel=f.mel[r], energy=f.energy[r], pitch=f.pitch[r], voiced=f.voiced[r],
                             phones=f.phones[r], fps=MODEL_FPS)
        if need_rel:
            rows.relative = classifier_input(*norm.normalise(rows.mel, rows.energy, rows.pitch, rows.voiced),
                                             rows.voiced)
            if phones == "classifier":
                if rel_all is None:
                    rel_all = np.zeros((T, rows.relative.shape[1]), np.float32)
                rel_all[f0:f1] = rows.relative
        energy[f0:f1] = rows.energy
        for k in layouts:
            x = rows.stack() if k == "fixed" else rows.stack(k)
            if k not in conds:
                conds[k] = np.zeros((T, x.shape[1]), np.float32)
            conds[k][f0:f1] = x
    source = "none"
    if phones in ("pocketsphinx", "hama"):
        from .features import HOP_100HZ, PHONES, _phone_posteriors, hama_segments, phone_segments
        decode = phone_segments if phones == "pocketsphinx" else hama_segments
        for f0 in tqdm(bounds, desc="phones", disable=not progress or len(bounds) < 2, unit="min", leave=False):
            f1 = min(T, f0 + chunk_frames)
            g0 = max(0, ((f0 - PHONE_CONTEXT_FRAMES) // 3) * 3) if len(bounds) > 1 else 0
            g1 = min(T, f1 + PHONE_CONTEXT_FRAMES) if len(bounds) > 1 else T
            a, b = g0 * 1600 // 3, n_needed if g1 == T else (g1 * 1600 + 2) // 3
            y = audio.read(a, min(b, audio.num_samples))
            y = np.pad(y, (0, max(0, (b - a) - len(y)))).astype(np.float32)
            post = _phone_posteriors(decode(y), 1 + len(y) // HOP_100HZ, g1 - g0, MODEL_FPS)[f0 - g0:f1 - g0]
            for k in layouts:
                if k != "fixed-sil":
                    conds[k][f0:f1, -len(PHONES):] = post
        source = phones
    if phones == "classifier":
        from .features import PHONES
        from .phone_features import CLASSIFIER_LEFT_FRAMES, CLASSIFIER_LOOKAHEAD_FRAMES, phone_posteriors
        for f0 in bounds:
            f1 = min(T, f0 + chunk_frames)
            lo, hi = max(0, f0 - CLASSIFIER_LEFT_FRAMES), min(T, f1 + CLASSIFIER_LOOKAHEAD_FRAMES)
            post = phone_posteriors(rel_all[lo:hi])[f0 - lo:f1 - lo]
            for k in layouts:
                if k != "fixed-sil":
                    conds[k][f0:f1, -len(PHONES):] = post
        source = "classifier"
    return conds, energy, source


class MotionGenerator:
    """Speech -> ``MotionClip`` with the hierarchical motion diffusion model.

    Args:
        checkpoint: path of a ``.safetensors`` checkpoint (default: the shipped one).
        idle: the stochastic blink/brow/gaze model (default: the shipped fit, see :mod:`motion.face_idle`).
        mouth_scale: map the mouth to iPhone ARKit scale with the checkpoint's fit (:mod:`motion.face_scale`,
            checkpoints >= 0.5.1; older ones have none and keep their scale); ``False``: the model's own scale
            (that of its training capture), as the lip-sync evaluation against capture uses.
    Raises:
        CheckpointError: missing or mismatched checkpoint, or invalid ``sampling`` metadata (``mouth_scale``,
            stage defaults).
    """

    def __init__(self, checkpoint: str | os.PathLike | None = None, idle: FaceIdleModel | None = None,
                 mouth_scale: bool = True):
        # OMP_NUM_THREADS, when set, is honoured (as train does): on a busy machine two threads that wait
        # for each other make each small op milliseconds slower (the streaming tests: ~6x)
        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS") or min(4, os.cpu_count() or 1))))
        self.models: StageModels = load_models(checkpoint)
        self.idle = idle or FaceIdleModel.default()
        #: apply the checkpoint's body variance compensation (False: the raw model, an ablation)
        self.variance_compensation = True
        info = self.models.info
        self.window = int(info.get("window", 120))
        self.overlap = int(info.get("overlap", 30))
        self.styles: list[str] = list(info.get("styles", []))
        self.version = str(info.get("version", "unknown"))
        tr = info.get("training", {})
        trained = set(tr.get("train_seconds", {}))
        body_datasets = set(tr.get("config", {}).get("body_datasets", ["beat2"]))
        #: style presets each stage was trained with (others have untrained embeddings)
        self.face_styles = [s for s in self.styles if s in trained]
        self.body_styles = [s for s in self.face_styles if s in body_datasets]
        #: model-input layout per stage (:meth:`motion.features.AudioFeatures.stack`) and the default phone
        #: source; checkpoints before 0.5.0 have none: the fixed layout, no phones unless asked for
        self.feature_layouts = _FIXED_LAYOUTS | dict(info.get("features", {}))
        try:   #: the body stage's posture correction (motion.posture.checkpoint_posture_correction)
            self.posture_correction = checkpoint_posture_correction(info)
        except ValueError as e:
            raise CheckpointError(f"{checkpoint or 'default checkpoint'}: {e}") from None
        #: the mouth's map to iPhone ARKit scale (:class:`motion.face_scale.MouthScale`); ``None``: none
        self.mouth_scale = None
        ms = info.get("sampling", {}).get("mouth_scale")
        if ms is not None:
            from .face_scale import MouthScale
            try:
                scale = MouthScale.from_info(ms)
            except (ValueError, KeyError, TypeError) as e:
                raise CheckpointError(f"{checkpoint or 'default checkpoint'}: sampling.mouth_scale is invalid "
                                      f"({e})") from None
            self.mouth_scale = scale if mouth_scale else None
        #: default sampling (:class:`SamplingOptions`, every sampling value set): the checkpoint's
        #: ``sampling.face`` / ``sampling.body`` / ``sampling.style_guidance`` metadata, else
        #: :data:`motion.options.DEFAULT_FACE`, :data:`motion.options.DEFAULT_BODY`, :data:`STYLE_GUIDANCE`
        try:
            self.sampling: SamplingOptions = checkpoint_sampling(info)
        except (OptionError, TypeError) as e:
            raise CheckpointError(f"{checkpoint or 'default checkpoint'}: sampling metadata is invalid ({e})") from None

    def phone_source(self, phones: bool | None) -> str:
        """The phone source for ``generate(phones=...)``: ``None`` -> the checkpoint's own source (or
        pocketsphinx when :data:`RECOGNISE_PHONES`, else ``"none"``); ``True`` -> the checkpoint's source,
        else pocketsphinx; ``False`` -> ``"none"``."""
        own = self.feature_layouts["phones"]
        on = (RECOGNISE_PHONES or own != "none") if phones is None else bool(phones)
        return (own if own != "none" else "pocketsphinx") if on else "none"

    def style_id(self, style: str | None, stage: str = "face") -> int:
        """Style preset name -> id for ``stage``; ``None`` -> the "no style" id. The body stage falls back
        to "no style" for a preset it was not trained with.

        Raises:
            ChatAnyoneError: a preset the face stage was not trained with.
        """
        none = self.models.face.config.num_styles
        if style is None:
            return none
        if style not in self.face_styles:
            raise ChatAnyoneError(f"unknown style {style!r}; choose one of {self.face_styles}")
        if stage == "body" and style not in self.body_styles:
            return none
        return self.styles.index(style)

    def style_vectors(self, reference: MotionClip | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Style vectors ``([1, d_model] face, [1, d_model] body)`` of a reference ``MotionClip``.

        The reference is resampled to 30 fps and turned into each stage's vector; a channel counts as
        real when it moves (range over the clip > 1e-5, e.g. a face-only capture has no body), and a stage with no real channel gets ``None`` (no reference for that stage).

        Raises:
            ChatAnyoneError: the checkpoint has no style encoder, or the reference is shorter than
                :data:`MIN_REFERENCE_FRAMES` frames.
        """
        if reference is None:
            return None, None
        m = self.models
        if m.face.style_enc is None or m.body.style_enc is None:
            raise ChatAnyoneError(f"checkpoint {self.version} has no style encoder; use a named style "
                                  f"preset ({', '.join(self.face_styles)}) or a checkpoint >= 0.3.0")
        clip = reference if abs(reference.fps - MODEL_FPS) < 1e-9 else reference.resample(MODEL_FPS)
        if clip.num_frames < MIN_REFERENCE_FRAMES:
            raise ChatAnyoneError(f"style reference too short: {clip.num_frames} frames at 30 fps, need "
                                  f">= {MIN_REFERENCE_FRAMES}")
        out = []
        for model, vec, mean, std in ((m.face, face_vector(clip), m.face_mean, m.face_std),
                                      (m.body, body_vector(clip), m.body_mean, m.body_std)):
            real = np.ptp(vec, axis=0) > 1e-5
            if not real.any():
                out.append(None)
                continue
            x = (torch.from_numpy(vec) - mean) / std
            mask = torch.from_numpy(np.broadcast_to(real, vec.shape).copy())
            with torch.no_grad():
                out.append(model.encode_style(x[None], mask[None]))
        return out[0], out[1]

    def options(self, options: SamplingOptions | None = None, **overrides) -> SamplingOptions:
        """``options`` (default: all defaults) with ``overrides`` (the keyword arguments of :meth:`generate`,
        :meth:`SamplingOptions.from_arguments`) applied and every value left ``None`` taken from this
        checkpoint's defaults (:attr:`sampling`): a fully specified :class:`SamplingOptions`.

        Raises:
            OptionError: a value out of range; TypeError: an unknown keyword.
        """
        return SamplingOptions.from_arguments(options, **overrides).resolved(self.sampling)

    def stage_runs(self, o: SamplingOptions) -> tuple["StageRun", "StageRun"]:
        """The face and the body stage's :class:`StageRun` for resolved options ``o`` (:meth:`options`):
        style ids (a preset the body stage was not trained with is "no style" there), reference style
        vectors, and the style guidance each stage applies (``o.style_guidance`` when the stage has a style
        or a reference, else 1 = off).

        Raises:
            ChatAnyoneError: an unknown style preset, or a reference the checkpoint cannot read.
        """
        m = self.models
        none = m.face.config.num_styles
        ids = (self.style_id(o.style), self.style_id(o.style, "body"))
        vecs = self.style_vectors(o.style_reference)
        return tuple(StageRun(model, sid, sv, float(o.style_guidance) if (sid != none or sv is not None) else 1.0,
                              o.stage(name))
                     for name, model, sid, sv in zip(("face", "body"), (m.face, m.body), ids, vecs))

    def sample_normalised(self, audio: np.ndarray, options: SamplingOptions | None = None, *,
                          progress: bool = False, face_to_body: bool = True, **overrides):
        """Both stages' smoothed outputs in normalised units, before :meth:`finish`, sampling the whole clip
        at once (arguments as in :meth:`generate`).

        Returns:
            ``(face_n [T, FACE_DIM], body_n [T, BODY_DIM], features, (face_steps, body_steps))``, float32.
        Raises:
            AudioError: audio shorter than 2 frames.
        """
        o = self.options(options, **overrides)
        T = int(round(len(audio) / SAMPLE_RATE * MODEL_FPS))
        if T < 2:
            raise AudioError(f"audio too short: {len(audio) / SAMPLE_RATE:.3f} s")
        m = self.models
        face, body = self.stage_runs(o)
        gen = torch.Generator().manual_seed(o.seed)
        layouts = self.feature_layouts
        feats = extract_features(audio, SAMPLE_RATE, MODEL_FPS, num_frames=T, transcript=o.transcript,
                                 phones=self.phone_source(o.phones), relative="running" in layouts.values())
        cond, body_feats = feats.stack(layouts["face"]), feats.stack(layouts["body"])
        sched = m.diffusion.scheduler()
        face_n = face.sample_windows(sched, cond, self.window, self.overlap, gen, progress, "face stage")
        body_cond = np.concatenate([body_feats, face_n if face_to_body else np.zeros_like(face_n)], axis=1)
        body_n = body.sample_windows(sched, body_cond, self.window, self.overlap, gen, progress, "body stage")
        face_n = smooth_frames(face_n, face.sampling.smoothing_sigma)
        body_n = smooth_frames(body_n, body.sampling.smoothing_sigma)
        return face_n, body_n, feats, (o.face.steps, o.body.steps)

    def generate(self, audio, options: SamplingOptions | None = None, *, fps: float = MODEL_FPS,
                 progress: bool = False, audio_source: str | None = None, audio_offset_s: float = 0.0,
                 face_to_body: bool = True, batch_windows: int | None = None,
                 feature_chunk_frames: int = FEATURE_CHUNK_FRAMES, **overrides) -> MotionClip:
        """Generate motion for 16 kHz mono float32 ``audio`` ``[N]`` (or an :class:`AudioReader`).

        ``options``: :class:`motion.options.SamplingOptions` (seed, style preset and/or style reference,
        style guidance, :class:`Intensity`, phones, transcript, and per stage steps, guidance, guidance rescale,
        eta, smoothing); values left ``None`` are this checkpoint's defaults (:attr:`sampling`).
        ``overrides``: the same as keyword arguments, applied over ``options``
        (:meth:`SamplingOptions.from_arguments`: ``seed``, ``style``, ``style_reference``, ``style_guidance``,
        ``intensity``, ``phones``, ``transcript``, ``steps`` (both stages), ``face_guidance``,
        ``body_guidance``, ``face_eta``, ``body_eta``, ``face_guidance_rescale``, ...). ``phones``: ``None``
        the checkpoint's phone source (or :data:`RECOGNISE_PHONES`); a ``transcript`` always force-aligns
        phones. ``face_to_body=False`` is an ablation for evaluation: the body stage sees the mean face
        instead of the face stage's output.

        Memory: the audio features are computed :data:`FEATURE_CHUNK_FRAMES` frames at a time
        (:func:`chunked_conditions`), the sampling batches (``batch_windows`` windows,
        :data:`MAX_BATCH_WINDOWS`) run as soon as what they read is final (:class:`WindowPlan`; each from the
        random state it has in :func:`sample_windows`, so the result is the same as sampling the whole clip
        at once), and frames are smoothed and finished as soon as no batch can change them; what stays is
        about 1-2 kB per frame (the features, the result, its copies while the clip is built) plus the
        model: peak RSS 1.5 GB for 3 h of audio (``benchmarks/long_audio_memory.py``). A transcript (forced alignment) needs the whole
        clip at once (the unchunked path).

        Returns:
            ``MotionClip`` at ``fps`` (the model runs at 30 fps; other rates are resampled, slerp for
            rotations) with ``round(N / 16000 * 30)`` frames at 30 fps.
        Raises:
            AudioError: audio shorter than 2 frames; ChatAnyoneError (OptionError): bad options.
        """
        o = self.options(options, **overrides)
        fps = check_float("--fps", fps, FPS_RANGE)
        reader = audio if isinstance(audio, AudioReader) else AudioReader.from_array(audio)
        n = reader.num_samples
        T = int(round(n / SAMPLE_RATE * MODEL_FPS))
        if T < 2:
            raise AudioError(f"audio too short: {n / SAMPLE_RATE:.3f} s")
        if o.transcript:     # forced alignment over the whole clip
            face_n, body_n, feats, _ = self.sample_normalised(reader.read(0, n), o, progress=progress,
                                                              face_to_body=face_to_body)
            idle = self.idle.sample(T, MODEL_FPS, seed=o.seed, energy=feats.energy)
            face, rot = self.finish(face_n, body_n, idle.face, idle.eye_rotations, o.intensity)
            phone_source = feats.phone_source    # "aligned", or the source used when alignment failed
        else:
            face, rot, phone_source = self._generate_chunked(reader, T, o, progress, face_to_body, batch_windows,
                                                             feature_chunk_frames)
        meta = {
            "model_version": self.version, "seed": o.seed, "style": o.style,
            "style_reference": None if o.style_reference is None else str(o.style_reference.meta.get("source", "clip")),
            "style_guidance": o.style_guidance,
            "intensity": asdict(o.intensity), "steps": {"face": o.face.steps, "body": o.body.steps},
            "guidance": {"face": o.face.guidance, "body": o.body.guidance, "face_rescale": o.face.guidance_rescale},
            "audio_source": audio_source, "audio_offset_s": float(audio_offset_s),
            "audio_sample_rate": SAMPLE_RATE, "audio_duration_s": n / SAMPLE_RATE,
            "root": "locked", "phones": phone_source,
        }
        out = MotionClip(MODEL_FPS, face, rot, None, meta)
        del face, rot
        return out if abs(fps - MODEL_FPS) < 1e-9 else out.resample(fps)

    def _generate_chunked(self, audio: AudioReader, T: int, o: SamplingOptions, progress: bool, face_to_body: bool,
                          batch_windows: int | None, feature_chunk_frames: int):
        """:meth:`generate` in bounded memory for resolved options ``o``: ``(face [T, 52], rotations [T, 55, 4],
        phone source)``."""
        m = self.models
        seed = o.seed
        runs = self.stage_runs(o)
        gen = torch.Generator().manual_seed(seed)
        layouts = self.feature_layouts
        conds, energy, source = chunked_conditions(audio, T, sorted({layouts["face"], layouts["body"]}),
                                                   self.phone_source(o.phones), feature_chunk_frames, progress)
        face_cond, body_feats = conds[layouts["face"]], conds[layouts["body"]]
        sched = m.diffusion.scheduler()
        plans = [WindowPlan(T, self.window, self.overlap, m.face.config.motion_dim, None, batch_windows),
                 WindowPlan(T, self.window, self.overlap, m.body.config.motion_dim, None, batch_windows)]
        states = rng_states(gen, [(plan, r.sampling.steps, r.sampling.eta) for plan, r in zip(plans, runs)])
        outs = [_Rows(plans[0].D), _Rows(plans[1].D)]
        idle_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

        def idle_rows(a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
            """Blink/brow/gaze face and eye rotations of frames [a, b): the whole clip in one draw up to
            IDLE_BLOCK_FRAMES frames (as the whole-clip path), else independent draws per block."""
            blocks = range(a // IDLE_BLOCK_FRAMES, (b - 1) // IDLE_BLOCK_FRAMES + 1)
            faces, eyes = [], []
            for k in blocks:
                if k not in idle_cache:
                    lo, hi = k * IDLE_BLOCK_FRAMES, min(T, (k + 1) * IDLE_BLOCK_FRAMES)
                    smp = self.idle.sample(hi - lo, MODEL_FPS, seed=seed if T <= IDLE_BLOCK_FRAMES else
                                         int(seed) * 100_003 + k, energy=energy[lo:hi])
                    idle_cache.clear()                  # keep one block
                    idle_cache[k] = (smp.face, smp.eye_rotations)
                f, e = idle_cache[k]
                lo = k * IDLE_BLOCK_FRAMES
                faces.append(f[max(a, lo) - lo:min(b, lo + IDLE_BLOCK_FRAMES) - lo])
                eyes.append(e[max(a, lo) - lo:min(b, lo + IDLE_BLOCK_FRAMES) - lo])
            return np.concatenate(faces), np.concatenate(eyes)

        def face_rows(a: int, b: int) -> np.ndarray:
            return face_cond[np.minimum(np.arange(a, b), T - 1)]

        def body_rows(a: int, b: int) -> np.ndarray:
            idx = np.minimum(np.arange(a, b), T - 1)
            f = outs[0].a[idx - outs[0].base] if face_to_body else np.zeros((b - a, plans[0].D), np.float32)
            return np.concatenate([body_feats[idx], f], axis=1)

        rows_of = (face_rows, body_rows)
        done = [[0, 0], [0, 0]]

        def ready(st: int, p: int) -> bool:
            plan, g = plans[st], done[st][p]
            if g >= len(plan.groups[p]) or (p == 1 and done[st][0] < plan.needs_even(g)):
                return False
            return st == 0 or plans[0].frontier(*done[0]) >= min(T, plan.groups[p][g][-1] + plan.W)

        face = np.empty((T, 52), np.float32)
        rot = np.empty((T, 55, 4), np.float32)
        sf, sb = runs[0].sampling.smoothing_sigma, runs[1].sampling.smoothing_sigma
        rf, rb = smooth_radius(sf), smooth_radius(sb)
        finished = 0
        bar = tqdm(total=plans[0].num_groups + plans[1].num_groups, desc="face and body stages", unit="batch",
                   disable=not progress or plans[0].num_groups < 2, leave=False)
        while True:
            # the body stage (which lags) first, so that little is kept
            todo = next(((st, p) for st, p in ((1, 1), (1, 0), (0, 1), (0, 0)) if ready(st, p)), None)
            if todo is None:
                break
            st, p = todo
            gen.set_state(states[st][p][done[st][p]])
            runs[st].sample_group(plans[st], p, done[st][p], outs[st], rows_of[st], sched, gen)
            done[st][p] += 1
            bar.update()
            fronts = [plans[k].frontier(*done[k]) for k in (0, 1)]
            upto = min(T if fronts[0] >= T else fronts[0] - rf, T if fronts[1] >= T else fronts[1] - rb)
            if upto > finished:
                a, b = finished, upto
                lo, hi = max(0, a - rf), min(T, b + rf)
                fs = smooth_frames(outs[0].get(lo, hi), sf)[a - lo:b - lo]
                lo, hi = max(0, a - rb), min(T, b + rb)
                bs = smooth_frames(outs[1].get(lo, hi), sb)[a - lo:b - lo]
                face[a:b], rot[a:b] = self.finish(fs, bs, *idle_rows(a, b), o.intensity)
                finished = b
                pending = [plans[k].groups[q][done[k][q]][0] for k in (0, 1) for q in (0, 1)
                           if done[k][q] < len(plans[k].groups[q])]
                keep = min([finished - max(rf, rb)] + pending)
                outs[0].trim(keep)
                outs[1].trim(keep)
        bar.close()
        if finished != T:
            raise RuntimeError(f"chunked generation finished {finished} of {T} frames")
        return face, rot, source

    def finish(self, face_n: np.ndarray, body_n: np.ndarray, idle_face: np.ndarray, eye_rotations: np.ndarray,
               intensity: Intensity, variance_compensation: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Normalised stage outputs -> final ``face [T, 52]`` and ``rotations [T, 55, 4]``.

        Applies the checkpoint's body variance compensation (when it has one and ``variance_compensation``,
        default :attr:`variance_compensation`, is on: ``center + gain * (body_n - center)`` per channel, see
        :func:`motion.train.fit_body_gain`; fitted for the offline sampler, the streaming API turns it off),
        de-normalises both stage vectors, fills the channels the model
        does not make (blinks, brows, gaze, squint, cheeks, nose) from ``idle_face`` ``[T, 52]`` and
        ``eye_rotations`` ``[T, 2, 4]`` (a :class:`FaceIdleModel` sample), maps the mouth to iPhone ARKit
        scale (:attr:`mouth_scale`), then applies ``intensity`` and
        the captured standing posture (:func:`motion.posture.upright`: a constant pelvis rotation, legs kept).
        Frame-local, so the streaming API can use it chunk by chunk.
        """
        m = self.models
        vc = self.variance_compensation if variance_compensation is None else variance_compensation
        if vc and m.body_gain is not None:
            c = m.body_gain_center.numpy()
            body_n = c + m.body_gain.numpy() * (body_n - c)
        face_vec = face_n * m.face_std.numpy() + m.face_mean.numpy()
        body_vec = body_n * m.body_std.numpy() + m.body_mean.numpy()
        clip = assemble(face_vec, body_vec, MODEL_FPS)
        face = clip.face.copy()
        fill = IDLE_MASK.copy()
        fill[list(ARKIT_MOUTH)] = False
        face[:, fill] = idle_face[:, fill]
        if self.mouth_scale is not None:  # iPhone ARKit scale (motion.face_scale), before --expression
            mouth = list(ARKIT_MOUTH)
            face[:, mouth] = self.mouth_scale.apply(face[:, mouth])
        rot = clip.rotations.copy()
        rot[:, list(EYE_JOINTS)] = eye_rotations
        face, rot = _apply_intensity(face, rot, intensity, self.reference_pose)
        return face, upright(rot, self.posture_correction)  # stand as the captured speaker stood (motion.posture)

    @property
    def reference_pose(self) -> np.ndarray:
        """``[41, 4]`` quaternions of ``BODY_STAGE_JOINTS``: the training data's mean pose (the body
        normalisation mean, orthonormalised), about which ``Intensity.gesture`` scales the motion."""
        if not hasattr(self, "_reference_pose"):
            mean = self.models.body_mean.numpy().reshape(len(BODY_STAGE_JOINTS), 6)
            self._reference_pose = sixd_to_quat(mean).astype(np.float32)
        return self._reference_pose

    def animate_file(self, path: str | os.PathLike, options: SamplingOptions | None = None, **kwargs) -> MotionClip:
        """Load an audio file (any common format, rate, channels) and :meth:`generate` for it. A file longer
        than :data:`LONG_AUDIO_S` is decoded block by block into a temporary file
        (:meth:`AudioReader.decode_file`) instead of memory."""
        try:
            import soundfile as sf
            long = Path(path).is_file() and sf.info(str(path)).duration > LONG_AUDIO_S
        except Exception:                       # load_audio reports what is wrong with the file
            long = False
        audio = AudioReader.decode_file(path) if long else load_audio(path)
        try:
            return self.generate(audio, options, audio_source=str(Path(path).resolve()), **kwargs)
        finally:
            if long:
                audio.close()


def load_style_reference(path: str | os.PathLike) -> MotionClip:
    """A style reference from a file: a ``MotionClip`` ``.npz`` (``chatanyone animate`` output, or any of
    our clips) or a Live Link Face ``.csv`` capture (52 ARKit weights and head angles; eyes dropped).

    Raises:
        ChatAnyoneError: missing file, unknown extension, or a file that cannot be read as motion.
    """
    from .errors import ClipError
    p = Path(path)
    if not p.is_file():
        raise ChatAnyoneError(f"style reference {p} does not exist")
    try:
        if p.suffix.lower() == ".npz":
            return MotionClip.load(p)
        if p.suffix.lower() == ".csv":
            from .livelink import parse_livelink_csv, take_rotations
            take = parse_livelink_csv(p)
            return MotionClip(take.fps, take.face, take_rotations(take, eyes=False)[0], None, {"source": str(p)})
    except (ValueError, OSError, KeyError, ClipError) as e:
        raise ChatAnyoneError(f"cannot read style reference {p}: {e}") from None
    raise ChatAnyoneError(f"style reference {p}: use a MotionClip .npz or a Live Link Face .csv")


def _scale_about(q: np.ndarray, ref: np.ndarray, k: float) -> np.ndarray:
    """Scale rotations ``q [T, J, 4]`` about reference rotations ``ref [J, 4]`` by factor ``k``."""
    T, J, _ = q.shape
    r_ref = R.from_quat(np.broadcast_to(ref, (T, J, 4)).reshape(-1, 4))
    delta = (r_ref.inv() * R.from_quat(q.reshape(-1, 4))).as_rotvec() * k
    return (r_ref * R.from_rotvec(delta)).as_quat().reshape(T, J, 4).astype(np.float32)


def _apply_intensity(face: np.ndarray, rot: np.ndarray, it: Intensity,
                     reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    face = np.clip(face * it.expression, 0.0, 1.0)
    rot = rot.copy()
    if it.head != 1.0:
        head = list(HEAD_JOINTS)
        aa = quat_to_axis_angle(rot[:, head]) * it.head
        rot[:, head] = axis_angle_to_quat(aa)
    if it.gesture != 1.0:
        body = list(BODY_STAGE_JOINTS)
        rot[:, body] = _scale_about(rot[:, body], reference, it.gesture)
    return face, rot

