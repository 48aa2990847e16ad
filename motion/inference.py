"""Offline inference: speech audio -> ``MotionClip`` with the two-stage model.

Long audio is sampled in windows of ``window`` frames that overlap by ``overlap`` frames; the overlap of
each window is inpainted from the previous window's result (see :func:`motion.diffusion.sample`), so
windows join without seams. The face stage runs over the whole audio first, then the body stage, which is
conditioned on the audio and on the face stage's output (ChatAnyone's hierarchy).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation as R
from tqdm.auto import tqdm

from .audio import SAMPLE_RATE, load_audio
from .checkpoint import StageModels, load_models
from .clip import MotionClip
from .conventions import ARKIT_MOUTH, BODY_STAGE_JOINTS, EYE_JOINTS, HEAD_JOINTS
from .errors import AudioError, ChatAnyoneError
from .face_idle import IDLE_MASK, FaceIdleModel
from .posture import upright
from .features import extract_features
from .model import MotionDenoiser
from .representation import assemble, body_vector, face_vector
from .rotations import axis_angle_to_quat, quat_to_axis_angle, sixd_to_quat
from . import diffusion

MODEL_FPS = 30.0
#: Classifier-free guidance on audio for the face stage. Measured on checkpoint 0.3.0 (sample speech /
#: held-out FACEGOOD / held-out BEAT2 tail; jawOpen-energy r offline, and the largest jawOpen inside
#: pauses): 2.0 gives r 0.854 / 0.722 / 0.750 with pause jaw 0.065 / 0.007 / 0.078 and FACEGOOD mouth MAE
#: 0.017; 2.5 gives r 0.849 / 0.663 / 0.745, pause jaw 0.031 / 0.005 / 0.065, MAE 0.019. (Checkpoint 0.2.0
#: needed 2.5 to close the mouth in pauses.)
FACE_GUIDANCE = 2.0
#: Offline default for pocketsphinx all-phone recognition when no transcript is given. The model is
#: trained with phone dropout and works without phones (as streaming always does). Off: on the held-out
#: clips, jawOpen-energy r without / with recognised phones was 0.866 / 0.847 (sample), 0.676 / 0.662
#: (FACEGOOD 1114_3_16), 0.801 / 0.790 (BEAT2 tail), and recognition costs about 2 s per minute of audio.
RECOGNISE_PHONES = False
#: Temporal Gaussian smoothing of the sampled stage vectors (sigma in frames at 30 fps; kernel cut at 2
#: sigma). Measured on the held-out BEAT2 tail: the raw body samples jitter (mean joint jerk 693 m/s^3
#: against 68 in the real capture); sigma 1.0 / 1.5 gives 98 / 49 with L1 diversity unchanged (1.45 / 1.44).
#: Face 0.7 raised held-out FACEGOOD jawOpen-energy r from 0.676 to 0.705.
FACE_SMOOTH_SIGMA = 0.7
BODY_SMOOTH_SIGMA = 1.2


def smooth_frames(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian low-pass of ``x [T, D]`` along time (``scipy.ndimage.gaussian_filter1d``, sigma in frames,
    truncated at 2 sigma, edges repeat the end frames); ``sigma <= 0`` returns ``x``."""
    if sigma <= 0 or len(x) < 2:
        return x
    return gaussian_filter1d(x, sigma, axis=0, mode="nearest", truncate=2.0).astype(np.float32)


def smooth_radius(sigma: float) -> int:
    """Frames on each side that :func:`smooth_frames` reads."""
    return int(2.0 * sigma + 0.5) if sigma > 0 else 0


#: Guidance for the body stage (1 = off: gestures keep the amplitude of the training data).
BODY_GUIDANCE = 1.0
#: DDIM steps per stage when ``steps`` is not given (the checkpoint was trained for 8). Measured on 0.3.0
#: (face guidance 2; jawOpen-energy r offline sample / FACEGOOD / BEAT2; FACEGOOD mouth MAE; body Hellinger
#: and jerk on the BEAT2 tail; real-time factor on 60 s, 2 CPU cores): 8 steps r 0.854 / 0.722 / 0.750,
#: MAE 0.017, Hellinger 0.212, jerk 65, 34x; 6 steps 0.864 / 0.732 / 0.763, 0.016, 0.221, 69, 48x; 4 steps
#: 0.876 / 0.743 / 0.781, 0.016, 0.247, 75, 64x. Fewer steps help the face and cost the body a little.
FACE_STEPS = 4
BODY_STEPS = 6
#: Classifier-free guidance on the style (a preset or a reference clip; 1 = off), both stages. Off: on
#: checkpoint 0.3.0 guidance 2 did not lower the Table 4 errors (FACEGOOD mouth MAE 0.015 with and without a
#: reference; BEAT2 head angle MAE 0.062 with, 0.057 without).
STYLE_GUIDANCE = 1.0
#: Guidance rescale of the face stage (:func:`motion.diffusion.sample`; 0 = off). Guidance 2 inflated the
#: jaw (held-out FACEGOOD mean jawOpen 0.25 vs the capture's 0.14); rescaling it to the conditional
#: prediction's std, on checkpoint 0.3.1 at guidance 2, 0 -> 1: jawOpen-energy r sample / FACEGOOD / BEAT2
#: 0.876 / 0.743 / 0.781 -> 0.885 / 0.771 / 0.803, FACEGOOD mouth MAE 0.0156 -> 0.0140, same pause jaw;
#: checked on 35 talking-video clips never trained on (runs/prepared, MediaPipe jaw): median r to the
#: tracked jaw 0.285 -> 0.312, jaw MAE 0.124 -> 0.110.
FACE_GUIDANCE_RESCALE = 1.0
#: DDIM stochasticity per stage (:func:`motion.diffusion.sample`; 0 = deterministic). Off: on 0.3.0 body
#: eta 0.5 / 1 moved the held-out BEAT2 Hellinger by < 0.03 and lowered L1 diversity (4 seeds).
FACE_ETA = 0.0
BODY_ETA = 0.0
#: Shortest style reference clip (frames at 30 fps).
MIN_REFERENCE_FRAMES = 15


@dataclass
class Intensity:
    """Amplitude controls, each a factor (1 = as generated, 0 = still, up to 2).

    expression: scales every face blendshape weight (then clipped to [0, 1]).
    head: scales the neck/head rotation angles.
    gesture: scales upper-body and finger rotations about the training data's mean pose
        (:attr:`MotionGenerator.reference_pose`; a fixed pose, so streaming and offline agree).
    """

    expression: float = 1.0
    head: float = 1.0
    gesture: float = 1.0

    def __post_init__(self):
        for k, v in asdict(self).items():
            if not (0.0 <= float(v) <= 2.0):
                raise ChatAnyoneError(f"intensity {k} must be in [0, 2], got {v}")


def window_starts(num_frames: int, window: int, overlap: int) -> list[int]:
    """First frames of the sampling windows: a regular grid ``k * (window - overlap)``, ``k = 0 .. n - 1``,
    with the fewest windows that reach ``num_frames``. The last window may run past the end: the
    condition is padded (:func:`sample_windows`). A clip no longer than ``window`` is one window."""
    if num_frames <= window:
        return [0]
    hop = window - overlap
    n = 1 + -(-(num_frames - window) // hop)
    return [k * hop for k in range(n)]


def window_joins(num_frames: int, window: int, overlap: int, crossfade: int | None = None) -> list[int]:
    """Frames where :func:`sample_windows` switches source: both ends of every cross-fade (the edges of
    the inpainted frames and of the freshly generated ones), for seam measurements."""
    cf = max(0, min(CROSSFADE_FRAMES if crossfade is None else int(crossfade), overlap - 1))
    starts = window_starts(num_frames, window, overlap)
    joins = []
    for k in range(1, len(starts), 2):
        s = starts[k]
        joins += [s + overlap - cf, s + overlap]
        if k + 1 < len(starts):
            joins += [s + window - overlap, s + window - overlap + cf]
    return sorted(j for j in set(joins) if 0 < j < num_frames)


#: Frames at each end of the overlap between neighbouring windows that are generated afresh and cross-faded
#: (raised cosine) instead of inpainted; the rest of the overlap is inpainted. A hard switch from
#: inpainted to generated frames left a jerk spike at every join (``chatanyone evaluate``, seams).
CROSSFADE_FRAMES = 12
#: Windows per batched forward pass of :func:`sample_windows` (bounds memory on long audio).
MAX_BATCH_WINDOWS = 32


def crossfade_weights(n: int) -> np.ndarray:
    """``[n]`` weights of the new window over a cross-fade of ``n`` frames: raised cosine from 0 to 1,
    both ends excluded (``0.5 - 0.5 cos(pi (i + 1) / (n + 1))``)."""
    return (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 1) / (n + 1))).astype(np.float32)


def sample_windows(model: MotionDenoiser, scheduler, cond: np.ndarray, style: int, steps: int,
                   window: int, overlap: int, generator: torch.Generator, guidance_scale: float = 1.0,
                   progress: bool = False, desc: str = "", style_vec: torch.Tensor | None = None,
                   style_guidance: float = 1.0, crossfade: int | None = None, eta: float = 0.0,
                   guidance_rescale: float = 0.0) -> np.ndarray:
    """Sample ``[T, D]`` normalised motion for a ``[T, C]`` condition in overlapping windows, two passes.

    The windows sit on the grid of :func:`window_starts` (the condition is padded at the end by repeating
    its last frame, and the result trimmed). Pass 1 samples the even windows, which do not overlap each
    other, as one batch. Pass 2 samples the odd windows as one batch, each inpainting the frames it shares
    with its neighbours on both sides (ChatAnyone's overlap inpainting, from the previous and the next
    window), except the ``crossfade`` frames (default :data:`CROSSFADE_FRAMES`) nearest its own interior,
    which it generates and cross-fades with the neighbour (:func:`crossfade_weights`). Every window is
    a full ``window`` frames long, as in training, and the two passes batch all windows of a clip (up to
    :data:`MAX_BATCH_WINDOWS` per forward): long audio costs two sequential samplings, not one per window.

    ``style_vec`` ``[1, d_model]``/``style_guidance``: reference style; ``eta``: DDIM stochasticity;
    ``guidance_rescale``: see :func:`motion.diffusion.sample`.
    """
    T = cond.shape[0]
    D = model.config.motion_dim
    cf = max(0, min(CROSSFADE_FRAMES if crossfade is None else int(crossfade), overlap - 1))
    starts = window_starts(T, window, overlap)
    W = min(window, T)
    Tp = starts[-1] + W
    if Tp > T:
        cond = np.concatenate([cond, np.repeat(cond[-1:], Tp - T, 0)])
    out = np.zeros((Tp, D), np.float32)
    null_style = model.config.num_styles
    passes = [starts[0::2], starts[1::2]]
    groups = [(k, p[i:i + MAX_BATCH_WINDOWS]) for k, p in enumerate(passes) for i in range(0, len(p), MAX_BATCH_WINDOWS)]
    w = crossfade_weights(cf)[:, None]
    for odd, group in tqdm(groups, desc=desc, disable=not progress or len(groups) < 2, unit="batch", leave=False):
        c = torch.from_numpy(np.stack([cond[s:s + W] for s in group]))
        known = mask = None
        if odd:
            known = torch.from_numpy(np.stack([out[s:s + W] for s in group]))
            mask = torch.zeros((len(group), W, D), dtype=torch.bool)
            for i, s in enumerate(group):
                mask[i, :overlap - cf] = True
                if s + W < Tp:  # a next window exists
                    mask[i, W - overlap + cf:] = True
        sv = None if style_vec is None else style_vec.expand(len(group), -1)
        x0 = diffusion.sample(model, scheduler, c, torch.full((len(group),), style), steps, generator, known,
                              mask, guidance_scale, style_vec=sv, style_guidance=style_guidance,
                              null_style=null_style, eta=eta, guidance_rescale=guidance_rescale).numpy()
        for i, s in enumerate(group):
            if odd and cf:
                a, b = overlap - cf, W - overlap
                x0[i, a:overlap] = (1 - w) * out[s + a:s + overlap] + w * x0[i, a:overlap]
                if s + W < Tp:
                    x0[i, b:b + cf] = w * out[s + b:s + b + cf] + (1 - w) * x0[i, b:b + cf]
            out[s:s + W] = x0[i]
    return out[:T]


class MotionGenerator:
    """Speech -> ``MotionClip`` with the hierarchical motion diffusion model.

    Args:
        checkpoint: path of a ``.safetensors`` checkpoint (default: the shipped one).
        idle: the stochastic blink/brow/gaze model (default: the shipped fit, see :mod:`motion.face_idle`).
    Raises:
        CheckpointError: missing or mismatched checkpoint.
    """

    def __init__(self, checkpoint: str | os.PathLike | None = None, idle: FaceIdleModel | None = None):
        torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
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

    def sample_normalised(self, audio: np.ndarray, *, seed: int = 0, style: str | None = None,
                          style_reference: MotionClip | None = None, style_guidance: float = STYLE_GUIDANCE,
                          steps: int | None = None, transcript: str | None = None,
                          face_guidance: float = FACE_GUIDANCE, body_guidance: float = BODY_GUIDANCE,
                          progress: bool = False, phones: bool | None = None, face_to_body: bool = True,
                          face_eta: float = FACE_ETA, body_eta: float = BODY_ETA,
                          face_guidance_rescale: float | None = None):
        """Both stages' smoothed outputs in normalised units, before :meth:`finish` (arguments as in
        :meth:`generate`).

        Returns:
            ``(face_n [T, FACE_DIM], body_n [T, BODY_DIM], features, (face_steps, body_steps))``, float32.
        Raises:
            AudioError: audio shorter than 2 frames.
        """
        T = int(round(len(audio) / SAMPLE_RATE * MODEL_FPS))
        if T < 2:
            raise AudioError(f"audio too short: {len(audio) / SAMPLE_RATE:.3f} s")
        m = self.models
        face_steps, body_steps = (int(steps), int(steps)) if steps else (FACE_STEPS, BODY_STEPS)
        style_id, body_style_id = self.style_id(style), self.style_id(style, "body")
        gen = torch.Generator().manual_seed(int(seed))
        phones = RECOGNISE_PHONES if phones is None else bool(phones)
        feats = extract_features(audio, SAMPLE_RATE, MODEL_FPS, num_frames=T, transcript=transcript,
                                 phones=phones or bool(transcript))
        cond = feats.stack().astype(np.float32)
        sched = m.diffusion.scheduler()
        face_sv, body_sv = self.style_vectors(style_reference)
        none = m.face.config.num_styles
        sg = float(style_guidance) if (style_id != none or face_sv is not None) else 1.0
        body_sg = float(style_guidance) if (body_style_id != none or body_sv is not None) else 1.0
        face_n = sample_windows(m.face, sched, cond, style_id, face_steps, self.window, self.overlap, gen,
                                face_guidance, progress, "face stage", face_sv, sg, eta=face_eta,
                                guidance_rescale=FACE_GUIDANCE_RESCALE if face_guidance_rescale is None
                                else face_guidance_rescale)
        body_cond = np.concatenate([cond, face_n if face_to_body else np.zeros_like(face_n)], axis=1)
        body_n = sample_windows(m.body, sched, body_cond, body_style_id, body_steps, self.window, self.overlap, gen,
                                body_guidance, progress, "body stage", body_sv, body_sg, eta=body_eta)
        face_n, body_n = smooth_frames(face_n, FACE_SMOOTH_SIGMA), smooth_frames(body_n, BODY_SMOOTH_SIGMA)
        return face_n, body_n, feats, (face_steps, body_steps)

    def generate(self, audio: np.ndarray, *, seed: int = 0, fps: float = MODEL_FPS,
                 intensity: Intensity | None = None, style: str | None = None,
                 style_reference: MotionClip | None = None, style_guidance: float = STYLE_GUIDANCE,
                 steps: int | None = None,
                 transcript: str | None = None, face_guidance: float = FACE_GUIDANCE,
                 body_guidance: float = BODY_GUIDANCE, progress: bool = False,
                 audio_source: str | None = None, audio_offset_s: float = 0.0,
                 phones: bool | None = None, face_to_body: bool = True,
                 face_eta: float = FACE_ETA, body_eta: float = BODY_ETA) -> MotionClip:
        """Generate motion for 16 kHz mono float32 ``audio`` ``[N]``.

        ``style``: a named preset (:attr:`face_styles`); ``style_reference``: a ``MotionClip`` whose
        manner the motion should take (:meth:`style_vectors`; checkpoints >= 0.3.0); both may be given.
        ``style_guidance``: classifier-free guidance on the style (only when a style is given).
        ``phones``: run pocketsphinx phone recognition for the phone features (default
        :data:`RECOGNISE_PHONES`); a ``transcript`` always force-aligns phones. ``face_to_body=False`` is
        an ablation for evaluation: the body stage sees the mean face instead of the face stage's output.
        ``face_eta``/``body_eta``: DDIM stochasticity per stage (:data:`FACE_ETA`, :data:`BODY_ETA`).

        Returns:
            ``MotionClip`` at ``fps`` (the model runs at 30 fps; other rates are resampled, slerp for
            rotations) with ``round(N / 16000 * 30)`` frames at 30 fps.
        Raises:
            AudioError: audio shorter than 2 frames; ChatAnyoneError: bad options.
        """
        from .options import check_generation_options  # the CLI's bounds (motion.options), for library callers too
        check_generation_options(seed=seed, fps=fps, steps=steps, face_guidance=face_guidance,
                                 body_guidance=body_guidance, style_guidance=style_guidance)
        intensity = intensity or Intensity()
        face_n, body_n, feats, (face_steps, body_steps) = self.sample_normalised(
            audio, seed=seed, style=style, style_reference=style_reference, style_guidance=style_guidance,
            steps=steps, transcript=transcript, face_guidance=face_guidance, body_guidance=body_guidance,
            progress=progress, phones=phones, face_to_body=face_to_body, face_eta=face_eta, body_eta=body_eta)
        T = len(face_n)
        idle = self.idle.sample(T, MODEL_FPS, seed=seed, energy=feats.energy)
        face, rot = self.finish(face_n, body_n, idle.face, idle.eye_rotations, intensity)
        meta = {
            "model_version": self.version, "seed": int(seed), "style": style,
            "style_reference": None if style_reference is None else str(style_reference.meta.get("source", "clip")),
            "style_guidance": float(style_guidance),
            "intensity": asdict(intensity), "steps": {"face": face_steps, "body": body_steps},
            "guidance": {"face": face_guidance, "body": body_guidance, "face_rescale": FACE_GUIDANCE_RESCALE},
            "audio_source": audio_source, "audio_offset_s": float(audio_offset_s),
            "audio_sample_rate": SAMPLE_RATE, "audio_duration_s": len(audio) / SAMPLE_RATE,
            "root": "locked", "phones": "aligned" if transcript else ("recognised" if phones else "none"),
        }
        out = MotionClip(MODEL_FPS, face, rot, None, meta)
        return out if abs(fps - MODEL_FPS) < 1e-9 else out.resample(fps)

    def finish(self, face_n: np.ndarray, body_n: np.ndarray, idle_face: np.ndarray, eye_rotations: np.ndarray,
               intensity: Intensity, variance_compensation: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Normalised stage outputs -> final ``face [T, 52]`` and ``rotations [T, 55, 4]``.

        Applies the checkpoint's body variance compensation (when it has one and ``variance_compensation``,
        default :attr:`variance_compensation`, is on: ``center + gain * (body_n - center)`` per channel, see
        :func:`motion.train.fit_body_gain`; fitted for the offline sampler, the streaming API turns it off),
        de-normalises both stage vectors, fills the channels the model
        does not make (blinks, brows, gaze, squint, cheeks, nose) from ``idle_face`` ``[T, 52]`` and
        ``eye_rotations`` ``[T, 2, 4]`` (a :class:`FaceIdleModel` sample), then applies ``intensity`` and
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
        rot = clip.rotations.copy()
        rot[:, list(EYE_JOINTS)] = eye_rotations
        face, rot = _apply_intensity(face, rot, intensity, self.reference_pose)
        return face, upright(rot)  # stand as the captured speaker stood (motion.posture)

    @property
    def reference_pose(self) -> np.ndarray:
        """``[41, 4]`` quaternions of ``BODY_STAGE_JOINTS``: the training data's mean pose (the body
        normalisation mean, orthonormalised), about which ``Intensity.gesture`` scales the motion."""
        if not hasattr(self, "_reference_pose"):
            mean = self.models.body_mean.numpy().reshape(len(BODY_STAGE_JOINTS), 6)
            self._reference_pose = sixd_to_quat(mean).astype(np.float32)
        return self._reference_pose

    def animate_file(self, path: str | os.PathLike, **kwargs) -> MotionClip:
        """Load an audio file (any common format, rate, channels) and :meth:`generate` for it."""
        audio = load_audio(path)
        return self.generate(audio, audio_source=str(Path(path).resolve()), **kwargs)


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
            from .conventions import apply_livelink_head_eyes
            from .datasets import read_livelink_csv
            face, head, _eyes, fps = read_livelink_csv(p)
            rot = np.zeros((len(face), 55, 4), np.float32)
            rot[..., 3] = 1
            apply_livelink_head_eyes(rot, head if np.abs(head).max() > 1e-6 else None, None)
            return MotionClip(fps, face, rot, None, {"source": str(p)})
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

