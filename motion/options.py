"""Bounds of the user-facing generation options, and the checks that enforce them.

The command line checks every option against these bounds before it loads the model or reads more than
its inputs (so a bad value fails in well under a second), and the library's entry points may call the
same checks. Each bound is a closed interval ``[lo, hi]``.

Why these bounds:

* ``steps`` 1..50: DDIM steps per stage. The shipped checkpoint samples with 4 (face) and 6 (body) by default
  (:data:`FACE_STEPS`, :data:`BODY_STEPS`); 50 costs about 10x the default's time (1000 took 10 minutes for
  4 s of speech). 0 is not "the default".
* ``fps`` 1..240: output frame rate in frames per second (the model runs at 30; other rates are resampled).
  240 covers every engine and display rate; a higher rate only inflates files (1e5 fps wrote 1.4 GB
  for 4 s of speech).
* intensities (expression, head, gesture) 0..2: factors, 1 = as generated (:class:`Intensity`).
* guidance 0..10: classifier-free guidance scales (1 = off, 0 = unconditional). Defaults are 2 (face) and
  1 (body, style); beyond ~5 the samples leave the training distribution.
* guidance rescale and DDIM eta 0..1 (:func:`motion.diffusion.sample`); smoothing sigma 0..10 frames.
* ``seed`` 0..2**64-1: what ``torch.Generator.manual_seed`` and ``numpy.random.default_rng`` both accept.
* audio with a ``transcript``: at most :data:`TRANSCRIPT_MAX_S` (3 minutes). Forced alignment (pocketsphinx)
  searches the whole utterance at once and its memory grows with the square of the length, and generation
  with phones takes the whole-clip path: peak RSS 682 / 1046 / 1604 MB at 1.1 / 2.1 / 3.2 min
  (``benchmarks/transcript_memory.py``), over 6 GB (and still growing when stopped) at 10.7 min. Without a transcript any
  length runs in bounded memory.

It also holds the sampling options themselves: :class:`SamplingOptions` (seed, style, style reference and
style guidance, :class:`Intensity`, phones, transcript) with one :class:`StageSampling` per stage (DDIM
steps, guidance, guidance rescale, eta, smoothing), which :meth:`motion.inference.MotionGenerator.generate`
and :class:`motion.streaming.MotionStream` both take. A stage value left ``None`` is the checkpoint's
default (:func:`checkpoint_sampling`: its ``sampling.face`` / ``sampling.body`` metadata, else the
constants below). Importing this module imports no torch.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from .errors import ChatAnyoneError

if TYPE_CHECKING:
    from .clip import MotionClip

__all__ = ["OptionError", "STEPS_RANGE", "FPS_RANGE", "INTENSITY_RANGE", "GUIDANCE_RANGE", "SEED_RANGE",
           "DELAY_RANGE", "TRANSCRIPT_MAX_S", "check_int", "check_float",
           "check_transcript_length", "RESCALE_RANGE", "ETA_RANGE", "SIGMA_RANGE", "FACE_STEPS", "BODY_STEPS",
           "FACE_GUIDANCE", "BODY_GUIDANCE", "STYLE_GUIDANCE", "FACE_GUIDANCE_RESCALE", "BODY_GUIDANCE_RESCALE",
           "FACE_ETA", "BODY_ETA", "FACE_SMOOTH_SIGMA", "BODY_SMOOTH_SIGMA", "Intensity", "StageSampling",
           "SamplingOptions", "DEFAULT_FACE", "DEFAULT_BODY", "checkpoint_sampling", "sampling_info"]

STEPS_RANGE = (1, 50)
FPS_RANGE = (1.0, 240.0)
INTENSITY_RANGE = (0.0, 2.0)
GUIDANCE_RANGE = (0.0, 10.0)
#: guidance rescale (0 = off, 1 = fully rescaled) and DDIM eta (0 = deterministic, 1 = DDPM-like)
RESCALE_RANGE = (0.0, 1.0)
ETA_RANGE = (0.0, 1.0)
#: temporal smoothing sigma, frames at 30 fps (0 = off)
SIGMA_RANGE = (0.0, 10.0)
SEED_RANGE = (0, 2**64 - 1)
#: ``stream --delay`` seconds between the audio start and frame 0.
DELAY_RANGE = (0.0, 10.0)
#: Longest audio (seconds) that ``animate --transcript`` takes (see the module docstring).
TRANSCRIPT_MAX_S = 180.0


class OptionError(ChatAnyoneError, ValueError):
    """An option value outside its documented range (or not a number)."""


def _fmt(x) -> str:
    if isinstance(x, float):
        return f"{x:g}"
    return "2^64-1" if x == 2**64 - 1 else str(x)


def check_int(name: str, value, bounds: tuple[int, int]) -> int:
    """``value`` as an ``int`` in ``bounds`` (inclusive).

    Raises:
        OptionError: not an integer (a float with a fraction, a string that is not one) or out of range.
    """
    lo, hi = bounds
    try:
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError
            v = int(value)
        else:
            v = int(str(value).strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError, OverflowError):
        raise OptionError(f"{name} must be an integer in {_fmt(lo)}..{_fmt(hi)}, got {value!r}") from None
    if not lo <= v <= hi:
        raise OptionError(f"{name} must be an integer in {_fmt(lo)}..{_fmt(hi)}, got {v}")
    return v


def check_float(name: str, value, bounds: tuple[float, float]) -> float:
    """``value`` as a finite ``float`` in ``bounds`` (inclusive).

    Raises:
        OptionError: not a number, NaN or infinite, or out of range.
    """
    lo, hi = bounds
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise OptionError(f"{name} must be a number in {_fmt(lo)}..{_fmt(hi)}, got {value!r}") from None
    if not math.isfinite(v) or not lo <= v <= hi:
        raise OptionError(f"{name} must be a number in {_fmt(lo)}..{_fmt(hi)}, got {value}")
    return v


def check_transcript_length(transcript: str | None, duration_s: float) -> None:
    """Refuse a transcript for audio longer than :data:`TRANSCRIPT_MAX_S` seconds (forced alignment's memory
    grows with the square of the length; see the module docstring). ``None`` or an empty transcript passes.

    Raises:
        OptionError: a transcript with longer audio; the message says the limit, why, and what to do.
    """
    if transcript and transcript.strip() and duration_s > TRANSCRIPT_MAX_S:
        raise OptionError(
            f"--transcript works on audio of at most {TRANSCRIPT_MAX_S / 60:g} minutes, this is "
            f"{duration_s / 60:.1f}: forced alignment holds the whole audio at once and its memory grows with "
            f"the square of the length (1.6 GB at 3.2 minutes, over 6 GB at 10.7). Split the audio (and the "
            f"text) into parts of at most {TRANSCRIPT_MAX_S / 60:g} minutes, or leave --transcript out (any length "
            f"then runs in bounded memory)")


# ------------------------------------------------------------------------------------------------------
# Sampling options
# ------------------------------------------------------------------------------------------------------
# Sampling defaults for checkpoints whose metadata does not name them (``sampling.face`` / ``sampling.body`` /
# ``sampling.style_guidance``; no checkpoint up to 0.5.x stores them). What each value was measured to do,
# and the alternatives tried: docs/sampling_experiments.md.
#: DDIM steps of the face and the body stage (the checkpoint's ``diffusion.num_inference_steps``, 8, is
#: the training-time value: :class:`motion.diffusion.DiffusionConfig`).
FACE_STEPS = 4
BODY_STEPS = 6
#: Classifier-free guidance on audio (1 = off) of the face and the body stage, and on the style (both).
FACE_GUIDANCE = 2.0
BODY_GUIDANCE = 1.0
STYLE_GUIDANCE = 1.0
#: Guidance rescale (Lin et al. 2024; 0 = off) of the face and the body stage.
FACE_GUIDANCE_RESCALE = 1.0
BODY_GUIDANCE_RESCALE = 0.0
#: DDIM stochasticity (0 = deterministic) of the face and the body stage.
FACE_ETA = 0.0
BODY_ETA = 0.0
#: Temporal Gaussian smoothing of the sampled stage vectors: sigma in frames at 30 fps (kernel cut at 2 sigma).
FACE_SMOOTH_SIGMA = 0.7
BODY_SMOOTH_SIGMA = 1.2


@dataclass
class Intensity:
    """Amplitude controls, each a factor (1 = as generated, 0 = still, up to 2).

    expression: scales every face blendshape weight (then clipped to [0, 1]).
    head: scales the neck/head rotation angles.
    gesture: scales upper-body and finger rotations about the training data's mean pose
        (:attr:`motion.inference.MotionGenerator.reference_pose`; a fixed pose, so streaming and offline agree).

    Raises:
        ChatAnyoneError: a factor outside [0, 2].
    """

    expression: float = 1.0
    head: float = 1.0
    gesture: float = 1.0

    def __post_init__(self):
        for k, v in asdict(self).items():
            if not (0.0 <= float(v) <= 2.0):
                raise ChatAnyoneError(f"intensity {k} must be in [0, 2], got {v}")


#: (field, bounds, option name pattern) of :class:`StageSampling`; ``{stage}`` is ``face`` or ``body``.
_STAGE_FIELDS = (("steps", STEPS_RANGE, "--steps"), ("guidance", GUIDANCE_RANGE, "--{stage}-guidance"),
                 ("guidance_rescale", RESCALE_RANGE, "{stage}_guidance_rescale"),
                 ("eta", ETA_RANGE, "{stage}_eta"), ("smoothing_sigma", SIGMA_RANGE, "{stage}_smoothing_sigma"))


@dataclass(frozen=True)
class StageSampling:
    """How one stage (face or body) is sampled; a field left ``None`` takes the checkpoint's default
    (:func:`checkpoint_sampling`).

    Attributes:
        steps: DDIM denoising steps, 1..50.
        guidance: classifier-free guidance on audio, 0..10 (1 = off; otherwise a second forward pass).
        guidance_rescale: 0..1, rescale of the guided prediction to the conditional one's std
            (:func:`motion.diffusion.sample`; 0 = off).
        eta: DDIM stochasticity, 0..1 (0 = deterministic).
        smoothing_sigma: temporal Gaussian smoothing of the sampled stage vectors, sigma in frames at 30 fps
            (0..10; :func:`motion.inference.smooth_frames`, 0 = off).
    """

    steps: int | None = None
    guidance: float | None = None
    guidance_rescale: float | None = None
    eta: float | None = None
    smoothing_sigma: float | None = None

    def check(self, stage: str) -> "StageSampling":
        """This stage's values checked against the bounds above and typed (``int`` steps, ``float`` the
        rest), ``None`` kept.

        Raises:
            OptionError: a value out of range, named as on the command line where there is a flag
                (``--steps``, ``--face-guidance``) and by its keyword otherwise (``face_eta``).
        """
        out = {}
        for name, bounds, label in _STAGE_FIELDS:
            v = getattr(self, name)
            if v is not None:
                check = check_int if name == "steps" else check_float
                v = check(label.format(stage=stage), v, bounds)
            out[name] = v
        return StageSampling(**out)

    def filled(self, default: "StageSampling") -> "StageSampling":
        """This stage with each ``None`` field taken from ``default``."""
        return StageSampling(**{f.name: getattr(default, f.name) if getattr(self, f.name) is None
                                else getattr(self, f.name) for f in fields(self)})

    @property
    def complete(self) -> bool:
        """True when no field is ``None``."""
        return all(getattr(self, f.name) is not None for f in fields(self))


#: Stage defaults for checkpoints without ``sampling.face`` / ``sampling.body`` metadata.
DEFAULT_FACE = StageSampling(FACE_STEPS, FACE_GUIDANCE, FACE_GUIDANCE_RESCALE, FACE_ETA, FACE_SMOOTH_SIGMA)
DEFAULT_BODY = StageSampling(BODY_STEPS, BODY_GUIDANCE, BODY_GUIDANCE_RESCALE, BODY_ETA, BODY_SMOOTH_SIGMA)


@dataclass(frozen=True)
class SamplingOptions:
    """Everything that decides what :meth:`motion.inference.MotionGenerator.generate` and
    :class:`motion.streaming.MotionStream` sample, in one object that both take.

    Attributes:
        seed: random seed, 0..2**64-1 (``torch.Generator.manual_seed``).
        style: a style preset name (the checkpoint's training datasets, ``MotionGenerator.face_styles``).
        style_reference: a ``MotionClip`` whose manner the motion should take (checkpoints >= 0.3.0).
        style_guidance: classifier-free guidance on the style, 0..10 (1 = off; applies only when a style or
            a reference is given); ``None``: the checkpoint's default.
        intensity: :class:`Intensity` (``None``: all 1).
        phones: phone features: ``None`` the checkpoint's phone source, ``True`` on, ``False`` off.
        transcript: text of the speech: phones force-aligned to it (offline only; the whole clip at once).
        face, body: :class:`StageSampling` of each stage (fields left ``None``: the checkpoint's defaults).

    Build one directly, or from the keyword arguments of ``generate`` with :meth:`from_arguments`;
    :meth:`resolved` fills in the checkpoint's defaults.

    Raises:
        OptionError: a value out of range (checked on construction, each named as on the command line).
        ChatAnyoneError: an intensity outside [0, 2].
    """

    seed: int = 0
    style: str | None = None
    style_reference: "MotionClip | None" = None
    style_guidance: float | None = None
    intensity: Intensity | None = None
    phones: bool | None = None
    transcript: str | None = None
    face: StageSampling = StageSampling()
    body: StageSampling = StageSampling()

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "seed", check_int("--seed", self.seed, SEED_RANGE))
        if self.style_guidance is not None:
            set_(self, "style_guidance", check_float("--style-guidance", self.style_guidance, GUIDANCE_RANGE))
        set_(self, "intensity", Intensity() if self.intensity is None else self.intensity)
        if not isinstance(self.intensity, Intensity):
            raise OptionError(f"intensity must be an Intensity, got {type(self.intensity).__name__}")
        for stage in ("face", "body"):
            st = getattr(self, stage)
            if not isinstance(st, StageSampling):
                raise OptionError(f"{stage} must be a StageSampling, got {type(st).__name__}")
            set_(self, stage, st.check(stage))

    @classmethod
    def from_arguments(cls, options: "SamplingOptions | None" = None, *, seed=None, style=None,
                       style_reference=None, style_guidance=None, intensity=None, phones=None, transcript=None,
                       steps=None, face_guidance=None, body_guidance=None, face_guidance_rescale=None,
                       body_guidance_rescale=None, face_eta=None, body_eta=None, face_smoothing_sigma=None,
                       body_smoothing_sigma=None) -> "SamplingOptions":
        """``options`` (default: all defaults) with the given keyword arguments in place of its values;
        ``None`` leaves a value as it is. ``steps`` sets both stages' steps. These are the keyword
        arguments ``generate``, ``sample_normalised`` and ``MotionStream`` have always taken.

        Raises:
            OptionError: a value out of range.
        """
        base = options if options is not None else cls()
        top = {k: v for k, v in (("seed", seed), ("style", style), ("style_reference", style_reference),
                                 ("style_guidance", style_guidance), ("intensity", intensity),
                                 ("phones", phones), ("transcript", transcript)) if v is not None}
        stages = {}
        for stage, values in (("face", dict(steps=steps, guidance=face_guidance, guidance_rescale=face_guidance_rescale,
                                            eta=face_eta, smoothing_sigma=face_smoothing_sigma)),
                              ("body", dict(steps=steps, guidance=body_guidance, guidance_rescale=body_guidance_rescale,
                                            eta=body_eta, smoothing_sigma=body_smoothing_sigma))):
            given = {k: v for k, v in values.items() if v is not None}
            if given:
                stages[stage] = replace(getattr(base, stage), **given)
        return replace(base, **top, **stages) if top or stages else base

    def resolved(self, defaults: "SamplingOptions") -> "SamplingOptions":
        """These options with every ``None`` sampling value (``style_guidance``, the stages' fields) taken
        from ``defaults`` (a checkpoint's, :func:`checkpoint_sampling`)."""
        return replace(self, style_guidance=defaults.style_guidance if self.style_guidance is None
                       else self.style_guidance, face=self.face.filled(defaults.face),
                       body=self.body.filled(defaults.body))

    def stage(self, name: str) -> StageSampling:
        """:attr:`face` or :attr:`body` by name."""
        return {"face": self.face, "body": self.body}[name]


def checkpoint_sampling(info: dict) -> SamplingOptions:
    """A checkpoint's default sampling: ``info["sampling"]["face"]`` / ``["body"]`` (dicts of
    :class:`StageSampling` fields) and ``["style_guidance"]``, each value the checkpoint does not name from
    :data:`DEFAULT_FACE`, :data:`DEFAULT_BODY` and :data:`STYLE_GUIDANCE`. Every field of the result is set.

    Raises:
        OptionError: metadata that is not a dict of known fields, or a value out of range.
    """
    s = info.get("sampling") or {}
    stages = {}
    for stage, fallback in (("face", DEFAULT_FACE), ("body", DEFAULT_BODY)):
        d = s.get(stage) or {}
        names = {f.name for f in fields(StageSampling)}
        if not isinstance(d, dict) or set(d) - names:
            raise OptionError(f"sampling.{stage} must be an object with keys from {sorted(names)}, got {d!r}")
        stages[stage] = StageSampling(**d).filled(fallback)
    return SamplingOptions(style_guidance=s.get("style_guidance", STYLE_GUIDANCE), **stages)


def sampling_info(options: SamplingOptions) -> dict:
    """The sampling defaults of ``options`` as checkpoint metadata (the inverse of :func:`checkpoint_sampling`):
    ``{"face": {...}, "body": {...}, "style_guidance": g}``, to merge into ``info["sampling"]``."""
    out: dict[str, Any] = {k: {f: v for f, v in asdict(getattr(options, k)).items() if v is not None}
                           for k in ("face", "body")}
    if options.style_guidance is not None:
        out["style_guidance"] = options.style_guidance
    return out
