"""Live Link Face: the one home of its conventions (the iPhone app's CSV takes and UDP packets).

* **Values** (:data:`LIVELINK_VALUE_COUNT` = 61, Unreal's ``EARFaceBlendShape``): the 52 ARKit blendshapes
  (:data:`motion.conventions.ARKIT_NAMES`, weights in [0, 1]) then the 9 angles
  :data:`LIVELINK_ANGLE_COLUMNS` = ``HeadYaw, HeadPitch, HeadRoll, LeftEyeYaw, LeftEyePitch, LeftEyeRoll,
  RightEyeYaw, RightEyePitch, RightEyeRoll`` (radians). The UDP packet keeps Apple's blendshape order; the
  app's CSV lists ``JawRight`` before ``JawLeft`` and ``MouthRight`` before ``MouthLeft``
  (:data:`LIVELINK_BLENDSHAPE_ORDER`, :data:`LIVELINK_CSV_COLUMNS`).
* **Timecodes** ``HH:MM:SS:FF.mmm`` (:data:`LIVELINK_TIMECODE`, :func:`format_timecodes`,
  :func:`timecode_seconds`): ``FF`` the frame within the second at the nominal rate ``round(fps)``, ``mmm``
  thousandths of a frame.
* **Angles** (axes, signs and the exact neck/head split live in :mod:`motion.conventions` beside the other
  axis conversions and are re-exported here): :func:`livelink_angles_to_quat` and its inverse
  :func:`quat_to_livelink_angles`; :func:`apply_livelink_head_eyes` writes a take's head angles into the neck
  and head joints (:func:`split_neck_head`, :data:`NECK_SHARE`) and its eye angles into the eye joints;
  :func:`livelink_head_eye_angles` reads them back (neck and head composed), so CSV -> clip -> CSV is the
  identity; :func:`take_rotations` turns a read take into joint rotations.
* **Reading**: :func:`parse_livelink_csv` is the project's one strict reader (columns by name, fps from the
  timecodes); the dataset adapters, ``prepare``, style references and :mod:`exporters.livelink_csv` call it.
  Writing a CSV is :mod:`exporters.livelink_csv`'s job, sending packets :mod:`bridge.livelink`'s.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .conventions import (ARKIT_NAMES, JOINT_INDEX, NECK_SHARE, NUM_JOINTS, apply_livelink_head_eyes, arkit_upper_camel,  # noqa: F401
                          livelink_angles_to_quat, livelink_head_eye_angles, quat_to_livelink_angles,
                          split_neck_head)
from .errors import ChatAnyoneError, ClipError

# --------------------------------------------------------------------------------------------------
# Columns and values
# --------------------------------------------------------------------------------------------------
#: Live Link Face head angle columns (radians), after the 52 blendshapes.
LIVELINK_HEAD_COLUMNS = ("HeadYaw", "HeadPitch", "HeadRoll")
#: Live Link Face eye angle columns (radians), after the head's.
LIVELINK_EYE_COLUMNS = ("LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                        "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
#: The 9 angles after the blendshapes, in order (CSV columns and UDP values 52..60).
LIVELINK_ANGLE_COLUMNS = LIVELINK_HEAD_COLUMNS + LIVELINK_EYE_COLUMNS
#: Values per frame: 52 blendshapes + 9 head/eye angles (the CSV's ``BlendshapeCount``, the packet's count).
LIVELINK_VALUE_COUNT = 61
#: Live Link Face's CSV lists these pairs swapped relative to Apple's order.
LIVELINK_SWAPS = {"jawLeft": "jawRight", "jawRight": "jawLeft", "mouthLeft": "mouthRight", "mouthRight": "mouthLeft"}
#: The 52 ARKit names (lowerCamel) in the order of the Live Link Face CSV columns.
LIVELINK_BLENDSHAPE_ORDER: tuple[str, ...] = tuple(LIVELINK_SWAPS.get(n, n) for n in ARKIT_NAMES)
#: Every column of the app's CSV, in order (63 = Timecode, BlendshapeCount, 52 blendshapes, 9 angles).
LIVELINK_CSV_COLUMNS: tuple[str, ...] = (
    ("Timecode", "BlendshapeCount") + tuple(arkit_upper_camel(n) for n in LIVELINK_BLENDSHAPE_ORDER)
    + LIVELINK_ANGLE_COLUMNS)


# --------------------------------------------------------------------------------------------------
# Timecodes
# --------------------------------------------------------------------------------------------------
#: ``HH:MM:SS:FF.mmm`` (also ``;`` separators and ``HH:MM:SS:FF`` without sub-frame) of Live Link Face's
#: ``Timecode`` column: ``FF`` the frame within the second at the nominal rate, ``mmm`` thousandths of a frame.
LIVELINK_TIMECODE = re.compile(r"^(\d+)[:;](\d{1,2})[:;](\d{1,2})[:;.](\d+)(?:\.(\d+))?$")
#: Frame rates a Live Link take is snapped to when its timecodes give one within 1 %.
LIVELINK_STANDARD_RATES = (24, 25, 30, 48, 50, 60, 72, 90, 100, 120)


def _timecode_fields(timecode: str) -> tuple[int, int, float] | None:
    """``(whole seconds since 00:00:00, FF, sub-frame in [0, 1))`` of a timecode, ``None`` if malformed."""
    m = LIVELINK_TIMECODE.match(timecode.strip())
    if not m:
        return None
    sub = float("0." + m.group(5)) if m.group(5) else 0.0
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3)), int(m.group(4)), sub


def _nominal_rate(fps: float) -> int:
    return max(1, int(round(fps)))


def format_timecodes(times_s: np.ndarray, fps: float) -> list[str]:
    """Seconds ``[T]`` -> ``"HH:MM:SS:FF.mmm"`` at nominal rate ``round(fps)`` (hours wrap at 24)."""
    rate = _nominal_rate(fps)
    milli = np.rint(np.asarray(times_s, np.float64) * rate * 1000).astype(np.int64)   # thousandths of frames
    frames, sub = np.divmod(milli, 1000)
    secs, ff = np.divmod(frames, rate)
    hh, rem = np.divmod(secs, 3600)
    mm, ss = np.divmod(rem, 60)
    return [f"{h % 24:02d}:{m:02d}:{s:02d}:{f:02d}.{u:03d}" for h, m, s, f, u in zip(
        hh.tolist(), mm.tolist(), ss.tolist(), ff.tolist(), sub.tolist())]


def timecode_seconds(timecode: str, fps: float) -> float:
    """``"HH:MM:SS:FF.mmm"`` -> seconds since 00:00:00:00 at nominal rate ``round(fps)``.

    Raises:
        ChatAnyoneError: not a timecode.
    """
    fields = _timecode_fields(timecode)
    if fields is None:
        raise ChatAnyoneError(f"not a Live Link timecode (HH:MM:SS:FF.mmm): {timecode!r}")
    secs, ff, sub = fields
    return secs + (ff + sub) / _nominal_rate(fps)


# --------------------------------------------------------------------------------------------------
# The reader
# --------------------------------------------------------------------------------------------------
@dataclass
class LiveLinkCSV:
    """Contents of a Live Link Face CSV (:func:`parse_livelink_csv`).

    Attributes:
        face: ``[T, 52]`` float32 ARKit weights in [0, 1], :data:`ARKIT_NAMES` order (missing columns 0).
        head: ``[T, 3]`` float32 radians ``(HeadYaw, HeadPitch, HeadRoll)``.
        eyes: ``[T, 6]`` float32 radians ``(LeftEyeYaw, LeftEyePitch, LeftEyeRoll, RightEyeYaw,
            RightEyePitch, RightEyeRoll)``.
        fps: frame rate (float), see :func:`parse_livelink_csv`.
        present: ``[52]`` bool, ARKit channels found in the header.
        timecodes: ``[T]`` the ``Timecode`` cells as written (``""`` when the file has no such column).
        columns: the header's column names (stripped), in file order.
    """

    face: np.ndarray
    head: np.ndarray
    eyes: np.ndarray
    fps: float
    present: np.ndarray
    timecodes: list[str]
    columns: list[str]


def parse_livelink_csv(path, *, fps: float | None = None) -> LiveLinkCSV:
    """Read a Live Link Face CSV (the app's takes and :mod:`exporters.livelink_csv`'s): the project's one
    Live Link reader (the training adapters, ``prepare``, style references and the CSV exporter's
    ``read`` all call it).

    Columns are matched **by name** (case-insensitive), which handles the app's swapped ``JawLeft/JawRight``
    and ``MouthLeft/MouthRight`` positions; missing blendshape or angle columns read 0, extra columns are
    ignored, blank lines skipped, weights clipped to [0, 1].

    Args:
        path: the ``.csv`` file.
        fps: the take's frame rate when known. ``None`` reads it from the ``Timecode`` column: when ``FF``
            rolls over within the take the nominal rate is the largest ``FF`` + 1 and the rate is the nominal
            rate over the median step between rows (in frames), snapped to a standard rate
            (:data:`LIVELINK_STANDARD_RATES`) within 1 % (so a 30 fps take reads 30 and a 60 fps take
            with nominal 30 and ``.500`` sub-frames reads 60). A take shorter than a second falls back to a
            ``<N>fps`` in the file name, else the smallest standard rate above the largest ``FF`` (60
            without a Timecode column).
    Returns:
        :class:`LiveLinkCSV`.
    Raises:
        ClipError: missing/unreadable file, no ARKit columns, no frames, a row with the wrong number of
            cells, a non-numeric or non-finite value, a malformed timecode, or a bad ``fps`` (the message
            names the line or column).
    """
    path = Path(path)
    if path.is_dir():
        raise ClipError(f"{path}: is a folder, not a Live Link CSV file")
    if not path.is_file():
        raise ClipError(f"{path}: no such Live Link CSV file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ClipError(f"{path}: not a readable CSV file ({e.__class__.__name__})") from None
    if not rows:
        raise ClipError(f"{path}: empty file")
    header = [h.strip() for h in rows[0]]
    col = {h.lower(): i for i, h in enumerate(header)}
    body = []
    for line, r in enumerate(rows[1:], start=2):
        if not r or all(not c.strip() for c in r):
            continue
        if len(r) != len(header):
            raise ClipError(f"{path}: line {line} has {len(r)} cells, the header has {len(header)}")
        body.append(r)
    face_cols = [col.get(arkit_upper_camel(n).lower()) for n in ARKIT_NAMES]
    if all(c is None for c in face_cols):
        raise ClipError(f"{path}: no ARKit blendshape columns (EyeBlinkLeft, ...) in the header")
    if not body:
        raise ClipError(f"{path}: no frames")
    T = len(body)

    def numbers(cols) -> np.ndarray:
        out = np.zeros((T, len(cols)), np.float64)
        for j, c in enumerate(cols):
            if c is None:
                continue
            try:
                out[:, j] = [float(r[c]) for r in body]
            except ValueError:
                bad = next(k for k, r in enumerate(body) if not _is_float(r[c]))
                raise ClipError(f"{path}: non-numeric value {body[bad][c]!r} in column {header[c]} "
                                f"(data row {bad + 1})") from None
            if not np.isfinite(out[:, j]).all():
                raise ClipError(f"{path}: non-finite value in column {header[c]}")
        return out

    face = np.clip(numbers(face_cols), 0.0, 1.0).astype(np.float32)
    present = np.array([c is not None for c in face_cols])
    head = numbers([col.get(n.lower()) for n in LIVELINK_HEAD_COLUMNS]).astype(np.float32)
    eyes = numbers([col.get(n.lower()) for n in LIVELINK_EYE_COLUMNS]).astype(np.float32)
    tc_col = col.get("timecode")
    timecodes = [r[tc_col].strip() for r in body] if tc_col is not None else [""] * T
    if fps is None:
        fps = _livelink_fps(path, timecodes if tc_col is not None else None)
    else:
        try:
            fps = float(fps)
        except (TypeError, ValueError):
            raise ClipError(f"fps must be a positive number, got {fps!r}") from None
        if not np.isfinite(fps) or fps <= 0:
            raise ClipError(f"fps must be a positive number, got {fps}")
    return LiveLinkCSV(face, head, eyes, float(fps), present, timecodes, header)


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _livelink_fps(path: Path, timecodes: list[str] | None) -> float:
    """Frame rate of a take from its timecodes (see :func:`parse_livelink_csv`)."""
    parts = []
    for k, tc in enumerate(timecodes or []):
        fields = _timecode_fields(tc)
        if fields is None:
            raise ClipError(f"{path}: malformed timecode {tc!r} (data row {k + 1}); expected HH:MM:SS:FF.mmm")
        parts.append(fields)
    if parts:
        secs, ff, sub = (np.asarray(x, np.float64) for x in zip(*parts))
        if len(ff) > 1 and (np.diff(ff) < 0).any():               # FF rolled over: the nominal rate is exact
            nominal = float(ff.max() + 1)
            steps = np.diff(secs * nominal + ff + sub)
            steps = steps[steps > 0]
            fps = nominal / float(np.median(steps)) if len(steps) else nominal
            snap = next((r for r in LIVELINK_STANDARD_RATES if abs(fps / r - 1) < 0.01), None)
            return float(snap) if snap is not None else round(fps, 3)
    m = re.search(r"(\d+(?:\.\d+)?)\s*fps", path.name, re.IGNORECASE)
    if m and float(m.group(1)) > 0:
        return float(m.group(1))
    if parts:
        top = int(max(p[1] for p in parts))
        return float(next((r for r in LIVELINK_STANDARD_RATES if r > top), top + 1))
    return 60.0


def take_rotations(take: LiveLinkCSV, *, head: bool = True, eyes: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A take's head and eye angles as joint rotations: ``(rotations [T, 55, 4] float32 xyzw, joint_mask
    [55] bool)``, identity everywhere except the neck and head (the head angles split exactly,
    :func:`apply_livelink_head_eyes`) and the two eye joints.

    Angles go in only when they are real: asked for (``head``/``eyes``) and not all zero (some value above
    1e-6 rad; a capture without head tracking, like the NeuroSync take, writes zeros, and a missing column
    reads 0). ``joint_mask`` marks the joints they went into (neck + head, the two eyes): the dataset
    adapters' joint masks.
    """
    T = len(take.face)
    rotations = np.zeros((T, NUM_JOINTS, 4), np.float32)
    rotations[..., 3] = 1.0
    head_real = bool(head and T and np.abs(take.head).max() > 1e-6)
    eyes_real = bool(eyes and T and np.abs(take.eyes).max() > 1e-6)
    apply_livelink_head_eyes(rotations, take.head if head_real else None, take.eyes if eyes_real else None)
    mask = np.zeros(NUM_JOINTS, bool)
    mask[[JOINT_INDEX["neck"], JOINT_INDEX["head"]]] = head_real
    mask[[JOINT_INDEX["left_eye_smplhf"], JOINT_INDEX["right_eye_smplhf"]]] = eyes_real
    return rotations, mask


def read_livelink_csv(path) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """``(face [T, 52], head [T, 3], eyes [T, 6], fps)`` of a Live Link Face CSV (:func:`parse_livelink_csv`).

    Head and eye angles are radians as stored by Live Link (the NeuroSync eye columns span -0.31..0.29 and
    track the eyeLook* shapes at ~0.6 rad per unit). Live Link's signs: yaw > 0 looks/turns to the face's
    **right**, pitch > 0 looks **down** (measured on the eyes: r = -0.99 between LeftEyeYaw and looking to
    the face's left, r = -0.97 between pitch and eyeLookUp - eyeLookDown).

    Raises:
        ClipError (a ``ValueError``): see :func:`parse_livelink_csv`.
    """
    d = parse_livelink_csv(path)
    return d.face, d.head, d.eyes, d.fps
