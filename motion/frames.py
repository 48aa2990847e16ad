"""``MotionFrame``: one frame of motion, the unit the streaming API yields and the live bridge sends.

A ``MotionClip`` is a stack of frames; :func:`clip_frames` walks one frame by frame (used by
``chatanyone stream CLIP.npz`` and the tests), :class:`motion.streaming.MotionStream` produces them live.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .clip import MotionClip


@dataclass(frozen=True)
class MotionFrame:
    """One frame of avatar motion.

    Attributes:
        index: frame number from the start of the stream (int, 0-based).
        time_s: time of the frame in seconds from the start of the audio (``index / fps``).
        face: ``[52]`` float32 ARKit blendshape weights in [0, 1] (``motion.conventions.ARKIT_NAMES`` order).
        rotations: ``[55, 4]`` float32 SMPL-X local joint rotations relative to the rest pose, unit
            quaternions ``(x, y, z, w)``, right-handed, +Y up, facing +Z (same as ``MotionClip``).
        translation: ``[3]`` float32 root translation in metres.
    """

    index: int
    time_s: float
    face: np.ndarray
    rotations: np.ndarray
    translation: np.ndarray


def clip_frames(clip: MotionClip, start: int = 0) -> Iterator[MotionFrame]:
    """Yield the frames of ``clip`` from frame ``start`` on, with ``time_s = index / clip.fps``."""
    for i in range(start, clip.num_frames):
        yield MotionFrame(i, i / clip.fps, clip.face[i], clip.rotations[i], clip.translation[i])
