"""Bounds of the user-facing generation options, and the checks that enforce them.

The command line checks every option against these bounds before it loads the model or reads more than
its inputs (so a bad value fails in well under a second), and the library's entry points may call the
same checks. Each bound is a closed interval ``[lo, hi]``.

Why these bounds:

* ``steps`` 1..50: DDIM steps per stage. The checkpoint was trained for 8 and samples with 4 (face) and 6
  (body) by default (:data:`motion.inference.FACE_STEPS`, :data:`motion.inference.BODY_STEPS`); 50 costs
  about 10x the default's time (1000 took 10 minutes for 4 s of speech). 0 is not "the default".
* ``fps`` 1..240: output frame rate in frames per second (the model runs at 30; other rates are resampled).
  240 covers every engine and display rate; a higher rate only inflates files (1e5 fps wrote 1.4 GB
  for 4 s of speech).
* intensities (expression, head, gesture) 0..2: factors, 1 = as generated (:class:`motion.inference.Intensity`).
* guidance 0..10: classifier-free guidance scales (1 = off, 0 = unconditional). Defaults are 2 (face) and
  1 (body, style); beyond ~5 the samples leave the training distribution.
* ``seed`` 0..2**64-1: what ``torch.Generator.manual_seed`` and ``numpy.random.default_rng`` both accept.
* audio with a ``transcript``: at most :data:`TRANSCRIPT_MAX_S` (3 minutes). Forced alignment (pocketsphinx)
  searches the whole utterance at once and its memory grows with the square of the length, and generation
  with phones takes the whole-clip path: peak RSS 682 / 1046 / 1604 MB at 1.1 / 2.1 / 3.2 min
  (``benchmarks/transcript_memory.py``), over 6 GB (and still growing when stopped) at 10.7 min. Without a transcript any
  length runs in bounded memory.
"""
from __future__ import annotations

import math

from .errors import ChatAnyoneError

__all__ = ["OptionError", "STEPS_RANGE", "FPS_RANGE", "INTENSITY_RANGE", "GUIDANCE_RANGE", "SEED_RANGE",
           "DELAY_RANGE", "TRANSCRIPT_MAX_S", "check_int", "check_float", "check_generation_options",
           "check_transcript_length"]

STEPS_RANGE = (1, 50)
FPS_RANGE = (1.0, 240.0)
INTENSITY_RANGE = (0.0, 2.0)
GUIDANCE_RANGE = (0.0, 10.0)
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


def check_generation_options(*, seed=0, fps=30.0, steps=None, expression=1.0, head=1.0, gesture=1.0,
                             face_guidance=None, body_guidance=None, style_guidance=None) -> None:
    """Check the options of :meth:`motion.inference.MotionGenerator.generate` against this module's
    bounds; ``None`` (a default) always passes.

    Raises:
        OptionError: the first option out of range, named as on the command line (``--steps``).
    """
    check_int("--seed", seed, SEED_RANGE)
    check_float("--fps", fps, FPS_RANGE)
    if steps is not None:
        check_int("--steps", steps, STEPS_RANGE)
    for name, v in (("--expression", expression), ("--head", head), ("--gesture", gesture)):
        check_float(name, v, INTENSITY_RANGE)
    for name, v in (("--face-guidance", face_guidance), ("--body-guidance", body_guidance),
                    ("--style-guidance", style_guidance)):
        if v is not None:
            check_float(name, v, GUIDANCE_RANGE)


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
