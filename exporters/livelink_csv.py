"""Live Link Face CSV export and import (the take files the Live Link Face iPhone app records).

Layout (as the app writes it; checked against ``neurosync_face_only/livelinkface_60fps_no_audio.csv``)::

    Timecode,BlendshapeCount,EyeBlinkLeft,...,TongueOut,HeadYaw,HeadPitch,HeadRoll,LeftEyeYaw,...,RightEyeRoll
    19:18:11:20.002,61,0.0374431610,...

* **Columns** (:data:`LIVELINK_CSV_COLUMNS`): ``Timecode``, ``BlendshapeCount`` (always 61), the 52 ARKit
  blendshapes in UpperCamel (``EyeBlinkLeft``), then ``HeadYaw, HeadPitch, HeadRoll, LeftEyeYaw,
  LeftEyePitch, LeftEyeRoll, RightEyeYaw, RightEyePitch, RightEyeRoll``. The blendshape order is Apple's
  (:data:`motion.conventions.ARKIT_NAMES`) except that the app lists ``JawRight`` before ``JawLeft`` and
  ``MouthRight`` before ``MouthLeft``; we write that exact order, and the reader maps columns **by name**
  (case-insensitive), so any order reads correctly.
* **Values**: weights in [0, 1]; angles in radians; 10 decimals, as the app writes them. Line ends ``\\n``.
* **Timecode** ``HH:MM:SS:FF.mmm``: ``FF`` is the frame within the second at the nominal rate
  ``round(fps)`` (0..59 at 60 fps) and ``mmm`` the sub-frame in thousandths of a frame. We write frame ``i``
  at ``meta["audio_offset_s"] + i / fps`` seconds (0 when the clip has no offset), so timecodes line up with
  the clip's audio file. Drop-frame timecode (29.97) is not written: 29.97 fps writes nominal rate 30.
* **Head and eyes** (axis/sign convention: :func:`motion.conventions.livelink_angles_to_quat`, whose exact
  inverse is :func:`motion.conventions.quat_to_livelink_angles`): Live Link yaw > 0 turns/looks to the face's **right**
  (our rotation ``-yaw`` about +Y), pitch > 0 looks **down** (``+pitch`` about +X), roll ``-roll`` about
  +Z, composed intrinsic Y, X, Z. ``Head*`` is the neck and head joints composed
  (``R_neck @ R_head``: the head's rotation relative to the upper chest; :func:`motion.conventions.split_neck_head`
  splits it back 40/60 between neck and head, exactly); ``LeftEye*``/``RightEye*`` come from
  ``left_eye_smplhf``/``right_eye_smplhf``. Body, fingers and root translation are not part of the format.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from motion.clip import MotionClip
from motion.conventions import ARKIT_NAMES
from motion.errors import ChatAnyoneError
from motion.fileio import atomic_output
# The format's conventions (columns, timecodes, angles) and its reader live in motion.livelink; re-exported.
from motion.livelink import (LIVELINK_BLENDSHAPE_ORDER, LIVELINK_CSV_COLUMNS, LIVELINK_VALUE_COUNT,  # noqa: F401
                             format_timecodes, livelink_head_eye_angles, parse_livelink_csv, timecode_seconds)

# --------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------
BLENDSHAPE_COUNT = LIVELINK_VALUE_COUNT  # the BlendshapeCount column: 52 blendshapes + 9 head/eye angles
_DECIMALS = 10
_BY_ARKIT = np.array([ARKIT_NAMES.index(n) for n in LIVELINK_BLENDSHAPE_ORDER])
#: Frames converted and written at a time by :func:`write` (about 0.85 MB of text each): the writer's memory
#: does not grow with the clip (3 h at 30 fps is 324,000 rows, ~270 MB of text).
CHUNK_ROWS = 1024


class LiveLinkTake(NamedTuple):
    """What :func:`read` returns (a tuple: ``face, head, eyes, fps, timecodes = read(path)``).

    Attributes:
        face: ``[T, 52]`` float32 ARKit weights in [0, 1], :data:`motion.conventions.ARKIT_NAMES` order.
        head: ``[T, 3]`` float32 radians ``(HeadYaw, HeadPitch, HeadRoll)``.
        eyes: ``[T, 6]`` float32 radians ``(LeftEyeYaw, LeftEyePitch, LeftEyeRoll, RightEyeYaw,
            RightEyePitch, RightEyeRoll)``.
        fps: frame rate (float), see :func:`read`.
        timecodes: ``[T]`` the ``Timecode`` cells as written (``"HH:MM:SS:FF.mmm"``); convert with
            :func:`timecode_seconds`.
    """

    face: np.ndarray
    head: np.ndarray
    eyes: np.ndarray
    fps: float
    timecodes: list[str]


# --------------------------------------------------------------------------------------------------
# Angles
# --------------------------------------------------------------------------------------------------
def head_eye_angles(clip: MotionClip) -> tuple[np.ndarray, np.ndarray]:
    """``(head [T, 3], eyes [T, 6])`` float64 Live Link angles (radians) of ``clip``: head from the neck
    and head joints composed, eyes from the eye joints (:func:`motion.livelink.livelink_head_eye_angles`)."""
    return livelink_head_eye_angles(clip.rotations)


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------
def write(clip: MotionClip, path: str | os.PathLike, *, fps: float | None = None) -> Path:
    """Write ``clip`` as a Live Link Face CSV (see the module docstring for columns, units and axes).

    Args:
        clip: ``MotionClip`` with ``T >= 1`` frames; ``face [T, 52]`` and the neck, head and eye joints of
            ``rotations [T, 55, 4]`` are written (one row per frame).
        path: destination ``.csv``; its folder must exist.
        fps: output frame rate (e.g. 60, Live Link's usual rate): the clip is resampled with
            :meth:`MotionClip.resample` (linear face, slerp rotations); ``None`` keeps ``clip.fps``.
    Returns:
        The written path.
    Raises:
        ChatAnyoneError: ``clip`` is not a MotionClip or is empty, ``fps`` is not positive, or the
            destination is missing/unwritable. Written atomically: no partial file on failure.
    Memory: rows are formatted and written :data:`CHUNK_ROWS` frames at a time, so what the writer holds
    beyond the clip does not grow with its length (a 60-min clip: +462 MB before, see the README).
    """
    if not isinstance(clip, MotionClip):
        raise ChatAnyoneError(f"livelink_csv.write needs a MotionClip, got {type(clip).__name__}")
    if clip.num_frames < 1:
        raise ChatAnyoneError("cannot export an empty clip (0 frames) to a Live Link CSV")
    if fps is not None:
        clip = clip.resample(fps)              # ClipError (a ChatAnyoneError) on a bad fps
    path = Path(path)
    with atomic_output(path) as tmp:
        with open(tmp, "w", encoding="ascii", newline="\n") as f:
            f.write(",".join(LIVELINK_CSV_COLUMNS) + "\n")
            for a in range(0, clip.num_frames, CHUNK_ROWS):
                f.write(_csv_rows(clip, a, min(clip.num_frames, a + CHUNK_ROWS)))
    return path


def _csv_rows(clip: MotionClip, a: int, b: int) -> str:
    """The text of frames ``[a, b)`` (one line each, ``\\n``-terminated); the same characters as those lines
    of the whole file (every cell depends on its own frame only)."""
    head, eyes = livelink_head_eye_angles(clip.rotations[a:b])
    values = np.concatenate([clip.face[a:b, _BY_ARKIT].astype(np.float64), head, eyes], axis=1)
    offset = float(clip.meta.get("audio_offset_s", 0.0) or 0.0)
    tcs = format_timecodes(offset + np.arange(a, b) / clip.fps, clip.fps)
    # "%.10f" per cell, as np.savetxt(fmt="%.10f", delimiter=",") formats a row (savetxt itself leaves a
    # reference cycle per call that kept each chunk's text alive until the garbage collector ran)
    row = f"%s,{BLENDSHAPE_COUNT}," + ",".join([f"%.{_DECIMALS}f"] * values.shape[1]) + "\n"
    return "".join(row % (tc, *v) for tc, v in zip(tcs, values.tolist()))


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------
def read(path: str | os.PathLike, *, fps: float | None = None) -> LiveLinkTake:
    """Read a Live Link Face CSV (ours or the app's) with the project's one Live Link reader,
    :func:`motion.livelink.parse_livelink_csv` (columns by name, case-insensitive; missing blendshape or
    angle columns read 0; weights clipped to [0, 1]).

    Args:
        path: the ``.csv`` file.
        fps: the take's frame rate when known; ``None`` reads it from the timecodes (see
            :func:`motion.livelink.parse_livelink_csv`: a 30 fps file of ours reads 30, the app's 60 fps takes 60).
    Returns:
        :class:`LiveLinkTake` ``(face [T, 52], head [T, 3], eyes [T, 6], fps, timecodes [T])``.
    Raises:
        ChatAnyoneError (:class:`motion.errors.ClipError`): missing/unreadable file, no ARKit columns, no
            frames, a row with the wrong number of cells, a non-numeric or non-finite value, or a malformed
            timecode (the message says which line and column).
    """
    d = parse_livelink_csv(path, fps=fps)
    return LiveLinkTake(d.face, d.head, d.eyes, d.fps, d.timecodes)
