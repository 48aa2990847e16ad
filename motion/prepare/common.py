"""What every part of :mod:`motion.prepare` shares: the output rate, QA thresholds, smoothing and licence
tables, :class:`PrepareError`, the :class:`Job` / :class:`Prepared` records and small audio/file helpers."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..conventions import MODEL_FPS, NUM_JOINTS
from ..conventions import SAMPLE_RATE as SAMPLE_RATE  # the model's 16 kHz, the rate of every written wav
from ..errors import ChatAnyoneError

if TYPE_CHECKING:
    from ..clip import MotionClip

#: Frame rate of every prepared clip: the model's (:data:`motion.conventions.MODEL_FPS`).
FPS = MODEL_FPS
MANIFEST = "dataset.json"
MANIFEST_VERSION = 1
PREPARE_VERSION = 1
MIN_FACE_RATE = 0.5
LAG_WARN_FRAMES = 2
MAX_LAG_FRAMES = 5

#: Temporal smoothing (recorded in the manifest). Applied at 30 fps on each run of valid frames; runs
#: shorter than the window are left as tracked.
SMOOTHING: dict[str, Any] = {
    "filter": "scipy.signal.savgol_filter",
    "face_blendshapes": {"window_length": 5, "polyorder": 2},
    "head_rotvec": {"window_length": 5, "polyorder": 2},
    "pose_and_hand_landmarks": {"window_length": 7, "polyorder": 2},
    "torso_rotvec": {"window_length": 15, "polyorder": 2},
    "applied_to": "video tracker outputs only, after resampling to 30 fps, per contiguous valid run",
}

#: Recorded for inputs that are not tracked (mocap, artist animation, Live Link capture): no filter applied.
NO_SMOOTHING: dict[str, Any] = {"filter": None, "reason": "not tracker output (mocap / artist animation / Live Link)"}

#: Licence notes by source folder name (../shared/data; see each folder's PROVENANCE.txt / LICENSE).
LICENCES = {
    "grid": "CC BY 4.0 (GRID corpus, Cooke et al. 2006)",
    "obama_weekly_address_sentences": "US federal work, public domain (Obama weekly addresses)",
    "styletalk": "US federal work, public domain (Obama weekly addresses, styletalk crops)",
    "edtalk": "Obama: US federal work, public domain; Lieu/Klobuchar: HDTF clips, likely US-gov work, NOT checked",
    "sadtalker": "HDTF clips (weekly Democratic addresses), likely US-gov work, NOT checked; HDTF is research-only",
    "vexpress": "HDTF clip (Rep. Ocasio-Cortez address), likely US-gov work, NOT checked",
    "beat2": "CC BY-NC 4.0 (BEAT2)",
    "paired": "MIT (FACEGOOD)",
}


class PrepareError(ChatAnyoneError):
    """An input cannot be prepared (no audio, no face, corrupt file, missing CSV columns, ...)."""


@dataclass
class Job:
    """One input to prepare: ``kind`` in ``video | beat2 | facegood | livelink``."""

    kind: str
    path: Path
    name: str


@dataclass
class Prepared:
    """A prepared clip in memory (before writing).

    Attributes:
        clip: the 30 fps motion (root locked).
        audio: ``[N]`` float32 16 kHz mono aligned with frame 0, ``N ~= T * 16000 / 30``.
        face_valid: ``[T, 52]`` bool. joint_valid: ``[T, 55]`` bool.
        entry: manifest fields (source, licence, qa, ...).
        curves: named ``[T]`` arrays for the contact sheet.
    """

    clip: MotionClip
    audio: np.ndarray
    face_valid: np.ndarray
    joint_valid: np.ndarray
    entry: dict[str, Any]
    curves: dict[str, np.ndarray] = field(default_factory=dict)


def _audio_frames(n_samples: int) -> int:
    return int(np.floor(n_samples * FPS / SAMPLE_RATE + 1e-6))


def _samples(T: int) -> int:
    return int(round(T * SAMPLE_RATE / FPS))


def _identity(T: int) -> np.ndarray:
    q = np.zeros((T, NUM_JOINTS, 4), np.float32)
    q[..., 3] = 1
    return q


def _find_upwards(start: Path, name: str, levels: int = 3) -> Path | None:
    d = start.resolve().parent
    for _ in range(levels):
        if (d / name).is_file():
            return d / name
        d = d.parent
    return None


def _beside_wav(path: Path, stem: str) -> Path | None:
    w = path.with_name(stem + ".wav")
    return w if w.is_file() else None


def _load_wav(path: Path) -> np.ndarray:
    from ..audio import load_audio
    from ..errors import AudioError

    try:
        return load_audio(path)
    except AudioError as e:
        raise PrepareError(str(e)) from None
