"""Audio loading: any common file (wav/flac/ogg/mp3, any rate, any channel count) -> 16 kHz mono float32.

Decoding is done by ``soundfile`` (libsndfile), resampling by ``soxr`` (quality ``'HQ'``).  Every problem
with the input is reported as :class:`motion.errors.AudioError` with a one-line message naming the source.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .conventions import SAMPLE_RATE
from .errors import AudioError

__all__ = ["SAMPLE_RATE", "MIN_DURATION_S", "load_audio", "prepare_audio", "probe_audio"]

"""Sample rate (Hz) of every array this module returns and the feature extractor expects."""

MIN_DURATION_S = 0.25
"""Shortest accepted clip, in seconds (shorter clips give too few 30 fps frames to animate)."""


def prepare_audio(samples: np.ndarray, sample_rate: int, *, name: str = "audio array") -> np.ndarray:
    """Check and convert in-memory audio to 16 kHz mono float32.

    Args:
        samples: ``[N]`` (mono) or ``[N, C]`` (C channels, frames first, as ``soundfile`` returns) array.
            Floating point samples are taken as full scale ``[-1, 1]``; integer PCM is scaled by its
            dtype's maximum (e.g. int16 / 32768).
        sample_rate: rate of ``samples`` in Hz (any positive value).
        name: how the source is named in error messages (a file name when called by :func:`load_audio`).

    Returns:
        ``[M]`` float32 mono samples at :data:`SAMPLE_RATE` Hz; channels are averaged, the rate is
        converted with ``soxr.resample(..., quality='HQ')`` (``M ~= N * 16000 / sample_rate``).
        Pure digital silence is valid and returns zeros.

    Raises:
        AudioError: bad rate or shape, zero samples, NaN/inf samples, or a clip shorter than
            :data:`MIN_DURATION_S` seconds.
    """
    arr = np.asarray(samples)
    if not (isinstance(sample_rate, (int, float, np.integer, np.floating)) and np.isfinite(sample_rate)
            and sample_rate > 0):
        raise AudioError(f"{name}: sample rate must be a positive number of Hz, got {sample_rate!r}.")
    if arr.ndim not in (1, 2):
        raise AudioError(f"{name}: audio must have shape [N] or [N, channels], got shape {arr.shape}.")
    if arr.ndim == 2 and arr.shape[1] == 0:
        raise AudioError(f"{name}: audio has no channels (shape {arr.shape}).")
    if arr.shape[0] == 0:
        raise AudioError(f"{name}: audio contains no samples.")
    if np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max + 1)
    elif np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32, copy=False)
    else:
        raise AudioError(f"{name}: audio samples must be numbers, got dtype {arr.dtype}.")
    if not np.isfinite(arr).all():
        raise AudioError(f"{name}: audio contains NaN or infinite samples.")
    duration = arr.shape[0] / float(sample_rate)
    if duration < MIN_DURATION_S:
        raise AudioError(f"{name}: audio is {duration:.3f} s long, shorter than the minimum "
                         f"{MIN_DURATION_S} s.")
    mono = arr.mean(axis=1, dtype=np.float32) if arr.ndim == 2 else arr
    if sample_rate != SAMPLE_RATE:
        mono = soxr.resample(mono, float(sample_rate), float(SAMPLE_RATE), quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def _check_path(p: Path) -> None:
    if not p.exists():
        raise AudioError(f"Audio file not found: {p}")
    if p.is_dir():
        raise AudioError(f"Audio path is a directory, not a file: {p}")
    if not p.is_file():
        raise AudioError(f"Audio path is not a regular file (a pipe or device?): {p}")
    if not os.access(p, os.R_OK):
        raise AudioError(f"Audio file is not readable (permission denied): {p}")
    if p.stat().st_size == 0:
        raise AudioError(f"Audio file is empty (0 bytes): {p}")


def probe_audio(path: str | os.PathLike) -> float:
    """Check that ``path`` is decodable audio of a usable length without decoding it (reads the header
    only, milliseconds even for hours of audio); returns its duration in seconds.

    Raises:
        AudioError: as :func:`load_audio`, except NaN/inf samples (only a full decode finds those).
    """
    p = Path(path)
    _check_path(p)
    try:
        info = sf.info(str(p))
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError, OSError) as exc:
        raise AudioError(f"Audio file {p} is not decodable audio (wav/flac/ogg/mp3 expected){_reason(exc)}") from None
    if info.frames <= 0 or info.channels <= 0 or info.samplerate <= 0:
        raise AudioError(f"Audio file {p}: audio contains no samples.")
    duration = info.frames / float(info.samplerate)
    if duration < MIN_DURATION_S:
        raise AudioError(f"Audio file {p}: audio is {duration:.3f} s long, shorter than the minimum "
                         f"{MIN_DURATION_S} s.")
    return duration


def load_audio(path: str | os.PathLike) -> np.ndarray:
    """Read an audio file and return it as 16 kHz mono float32.

    Args:
        path: a wav, flac, ogg (Vorbis/Opus) or mp3 file, anything libsndfile decodes, at any sample
            rate and channel count.

    Returns:
        ``[M]`` float32 samples in ``[-1, 1]`` at :data:`SAMPLE_RATE` Hz (see :func:`prepare_audio`).

    Raises:
        AudioError: the path is missing, is a directory or not a regular file, is unreadable or empty
            (0 bytes), is not decodable audio, holds zero samples or NaN/inf samples, or is shorter than
            :data:`MIN_DURATION_S` seconds.
            The message is one line and names the file.
    """
    p = Path(path)
    _check_path(p)
    try:
        data, rate = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError, OSError) as exc:
        raise AudioError(f"Audio file {p} is not decodable audio (wav/flac/ogg/mp3 expected){_reason(exc)}") from None
    return prepare_audio(data, rate, name=f"Audio file {p}")


def _reason(exc: BaseException) -> str:
    """``": <libsndfile's reason>"``, or nothing when the reason misleads: libsndfile reports a file it
    cannot open as MPEG as "File does not exist or is not a regular file" although it exists."""
    reason = " ".join(str(exc).split())
    reason = reason.split("': ", 1)[-1] if reason.startswith("Error opening") else reason
    if not reason or "does not exist" in reason or "System error" in reason:
        return ""
    return f": {reason}"
