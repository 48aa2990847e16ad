"""BVH (Biovision Hierarchy) export and import of the SMPL-X skeleton.

Format (Biovision BVH, as read by Blender, MotionBuilder and most mocap tools)::

    HIERARCHY
    ROOT pelvis
    {
      OFFSET x y z
      CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
      JOINT left_hip
      { OFFSET ... CHANNELS 3 Zrotation Xrotation Yrotation ... End Site { OFFSET ... } }
    }
    MOTION
    Frames: T
    Frame Time: 1/fps
    <one line per frame: the channels of every joint, in hierarchy (depth-first) order>

Conventions of the files we write:

* Units: centimetres for OFFSETs and root positions; rotations in degrees.
* Axes: ours (right-handed, +Y up, the avatar facing +Z), as SMPL-X; Blender's BVH importer maps +Y up
  to its +Z up with its default "Up: Y" setting.
* Skeleton: the 55 SMPL-X joints (:data:`motion.conventions.SMPLX_JOINT_NAMES`, fingers included) with
  their parents, named by SMPL-X (default) or by Mixamo (``bone_names="mixamo"``:
  :data:`motion.conventions.SMPLX_TO_MIXAMO`, ``mixamorig:Hips`` ...; the jaw, which Mixamo lacks, keeps
  its SMPL-X name); OFFSETs are :func:`motion.conventions.rest_offsets` * 100 (the T-pose rest, so a frame of
  zero rotations is the T-pose). Leaves get an ``End Site`` continuing their own bone direction (0.8 of
  the joint's offset for fingertips, 0.5 for feet, jaw and eyes).
* Root: 6 channels. The position channels hold the **absolute** root position (rest position + clip
  translation), as Blender and MotionBuilder interpret them; the root OFFSET holds its rest position.
* Rotations: channel order ``Zrotation Xrotation Yrotation`` (default ``euler_order="ZXY"``) means the
  local rotation matrix is ``R = Rz @ Rx @ Ry`` (intrinsic rotations about the listed axes, left to right);
  this is scipy's uppercase (intrinsic) sequence ``Rotation.from_euler("ZXY", [z, x, y])``.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from motion.clip import MotionClip
from motion.conventions import (
    ARKIT_NAMES, JOINT_INDEX, NUM_JOINTS, SMPLX_JOINT_NAMES, SMPLX_PARENTS, SMPLX_TO_MIXAMO, children_of,
    rest_offsets,
)
from motion.errors import ChatAnyoneError

from motion.fileio import atomic_output

CM_PER_M = 100.0
_DECIMALS = 6
_POS_CHANNELS = ("Xposition", "Yposition", "Zposition")
_ROT_AXIS = {"Xrotation": "X", "Yrotation": "Y", "Zrotation": "Z"}
_POS_AXIS = {"Xposition": 0, "Yposition": 1, "Zposition": 2}
BONE_NAME_OPTIONS = ("smplx", "mixamo")
#: Mixamo bone name -> SMPL-X joint name (for reading Mixamo-named files back).
_MIXAMO_TO_SMPLX = {m: n for n, m in SMPLX_TO_MIXAMO.items() if m is not None}


@dataclass
class BvhData:
    """What a BVH file holds, in our units.

    Attributes:
        fps: frames per second (``1 / Frame Time``, snapped to an integer within 1e-6 relative).
        joint_names: ``J`` joint names in file order, which is the depth-first hierarchy order (for our
            files: SMPL-X joints, each subtree in SMPL-X index order); End Sites excluded.
        parents: ``[J]`` int parent indices into ``joint_names`` (``-1`` for the root).
        offsets_m: ``[J, 3]`` float64 OFFSETs converted to metres (the root's: its rest position).
        rotations: ``[T, J, 4]`` float64 local rotations, unit quaternions ``(x, y, z, w)``; joints
            without rotation channels are identity.
        root_translation: ``[T, 3]`` float64 metres, the root position channels minus the root OFFSET
            (zeros when the root has no position channels).
    """

    fps: float
    joint_names: list[str]
    parents: np.ndarray
    offsets_m: np.ndarray
    rotations: np.ndarray
    root_translation: np.ndarray


def _check_order(euler_order: str) -> str:
    order = str(euler_order).upper()
    if len(order) != 3 or sorted(order) != ["X", "Y", "Z"]:
        raise ChatAnyoneError(f"euler_order must be a permutation of 'XYZ' (e.g. 'ZXY'), got {euler_order!r}")
    return order


def _fmt(v: np.ndarray) -> str:
    return " ".join(f"{x:.{_DECIMALS}f}" for x in v)


def joint_names(bone_names: str = "smplx") -> list[str]:
    """The 55 joint names written for ``bone_names`` (``"smplx"`` or ``"mixamo"``), in SMPL-X order.

    Raises:
        ChatAnyoneError: an unknown ``bone_names``.
    """
    if bone_names == "smplx":
        return list(SMPLX_JOINT_NAMES)
    if bone_names == "mixamo":
        return [SMPLX_TO_MIXAMO[n] or n for n in SMPLX_JOINT_NAMES]
    raise ChatAnyoneError(f"bone_names must be one of {BONE_NAME_OPTIONS}, got {bone_names!r}")


def write(clip: MotionClip, path: str | os.PathLike, *, euler_order: str = "ZXY",
          bone_names: str = "smplx") -> Path:
    """Write ``clip``'s skeleton motion as BVH (the face is not part of BVH).

    Args:
        clip: the motion; ``rotations [T, 55, 4]`` (xyzw) and ``translation [T, 3]`` metres are written.
        path: destination file (``.bvh``); its folder must exist.
        euler_order: rotation channel order for every joint, a permutation of ``"XYZ"``; ``"ZXY"`` writes
            ``Zrotation Xrotation Yrotation`` meaning ``R = Rz @ Rx @ Ry`` (intrinsic).
        bone_names: ``"smplx"`` (SMPL-X joint names) or ``"mixamo"`` (``mixamorig:Hips`` ...).
    Returns:
        The written path.
    Raises:
        ChatAnyoneError: bad ``euler_order`` or ``bone_names``, ``clip`` not a MotionClip, or an unwritable
            destination.
            The file is written atomically (no partial file on failure).
    """
    if not isinstance(clip, MotionClip):
        raise ChatAnyoneError(f"bvh.write needs a MotionClip, got {type(clip).__name__}")
    order = _check_order(euler_order)
    names = joint_names(bone_names)
    path = Path(path)
    header = _hierarchy_text(order, names)
    with atomic_output(path) as tmp:
        with open(tmp, "w", encoding="ascii", newline="\n") as f:
            f.write(header)
            f.write("MOTION\n")
            f.write(f"Frames: {clip.num_frames}\n")
            f.write(f"Frame Time: {1.0 / clip.fps:.10f}\n")
            for a in range(0, clip.num_frames, _BLOCK_FRAMES):   # bounded memory on hours of motion
                _write_frames(f, _motion_values(clip, order, a, a + _BLOCK_FRAMES))
    return path


def _dfs_order() -> list[int]:
    kids, out, stack = children_of(SMPLX_PARENTS), [], [0]
    while stack:
        j = stack.pop()
        out.append(j)
        stack.extend(reversed(kids[j]))
    return out


def _hierarchy_text(order: str, names: list[str]) -> str:
    off_cm = rest_offsets().astype(np.float64) * CM_PER_M
    kids = children_of(SMPLX_PARENTS)
    rot_channels = " ".join(f"{a}rotation" for a in order)
    lines = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        ind = "  " * depth
        name = SMPLX_JOINT_NAMES[j]
        lines.append(f"{ind}{'ROOT' if j == 0 else 'JOINT'} {names[j]}")
        lines.append(f"{ind}{{")
        lines.append(f"{ind}  OFFSET {_fmt(off_cm[j])}")
        if j == 0:
            lines.append(f"{ind}  CHANNELS 6 {' '.join(_POS_CHANNELS)} {rot_channels}")
        else:
            lines.append(f"{ind}  CHANNELS 3 {rot_channels}")
        for c in kids[j]:
            emit(c, depth + 1)
        if not kids[j]:
            # End Site: continue the bone's direction (fingertips, toes, head, eyes, jaw).
            end = off_cm[j] * (0.8 if "_" in name and name[-1].isdigit() else 0.5)
            if not np.linalg.norm(end) > 1e-6:
                end = np.array([0.0, 2.0, 0.0])
            lines.append(f"{ind}  End Site")
            lines.append(f"{ind}  {{")
            lines.append(f"{ind}    OFFSET {_fmt(end)}")
            lines.append(f"{ind}  }}")
        lines.append(f"{ind}}}")

    emit(0, 0)
    return "\n".join(lines) + "\n"


_BLOCK_FRAMES = 9000   # frames converted and written at a time (5 min at 30 fps)


def _motion_values(clip: MotionClip, order: str, a: int = 0, b: int | None = None) -> np.ndarray:
    """``[T, 6 + 3 * 54]`` float64 channel values of frames ``[a, b)`` in hierarchy order (cm, degrees)."""
    b = clip.num_frames if b is None else min(b, clip.num_frames)
    T = b - a
    rest_root = rest_offsets()[0].astype(np.float64)
    dfs = _dfs_order()
    q = clip.rotations[a:b, dfs].astype(np.float64).reshape(-1, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # gimbal lock: still a valid decomposition
        eul = Rotation.from_quat(q).as_euler(order, degrees=True).reshape(T, NUM_JOINTS * 3)
    pos = (rest_root + clip.translation[a:b].astype(np.float64)) * CM_PER_M
    return np.concatenate([pos, eul], axis=1)


def _write_frames(f, values: np.ndarray) -> None:
    np.savetxt(f, values, fmt=f"%.{_DECIMALS}f", delimiter=" ")


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------
def read(path: str | os.PathLike) -> BvhData:
    """Parse a BVH file (any hierarchy, any channel order per joint).

    Rotation channels of a joint are composed in the order listed (intrinsic): ``Zrotation Xrotation
    Yrotation`` gives ``R = Rz @ Rx @ Ry``. Position channels are read for the root only (metres =
    cm / 100); position channels on other joints are ignored.

    Returns:
        :class:`BvhData` (fps, joint names, parents, offsets in metres, ``[T, J, 4]`` xyzw rotations,
        ``[T, 3]`` root translation in metres).
    Raises:
        ChatAnyoneError: missing file or malformed BVH (the message says what and where).
    """
    path = Path(path)
    if not path.is_file():
        raise ChatAnyoneError(f"{path}: no such BVH file")
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except (UnicodeDecodeError, OSError) as e:
        raise ChatAnyoneError(f"{path}: not a readable BVH text file ({e.__class__.__name__})") from None
    try:
        return _parse(text)
    except _BvhSyntax as e:
        raise ChatAnyoneError(f"{path}: malformed BVH: {e}") from None


class _BvhSyntax(Exception):
    pass


class _Tokens:
    def __init__(self, text: str):
        self.tok = text.split()
        self.i = 0

    def next(self, what: str) -> str:
        if self.i >= len(self.tok):
            raise _BvhSyntax(f"unexpected end of file, expected {what}")
        t = self.tok[self.i]
        self.i += 1
        return t

    def expect(self, word: str) -> None:
        t = self.next(repr(word))
        if t.upper() != word.upper():
            raise _BvhSyntax(f"expected {word!r}, found {t!r} (token {self.i})")

    def number(self, what: str) -> float:
        t = self.next(what)
        try:
            v = float(t)
        except ValueError:
            raise _BvhSyntax(f"expected a number for {what}, found {t!r} (token {self.i})") from None
        if not np.isfinite(v):
            raise _BvhSyntax(f"non-finite number for {what} (token {self.i})")
        return v

    def peek(self) -> str | None:
        return self.tok[self.i] if self.i < len(self.tok) else None


def _parse(text: str) -> BvhData:
    tk = _Tokens(text)
    tk.expect("HIERARCHY")
    tk.expect("ROOT")
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[list[str]] = []

    def joint(parent: int) -> None:
        name = tk.next("a joint name")
        j = len(names)
        names.append(name)
        parents.append(parent)
        tk.expect("{")
        tk.expect("OFFSET")
        offsets.append([tk.number(f"{name} OFFSET") for _ in range(3)])
        chans: list[str] = []
        if (tk.peek() or "").upper() == "CHANNELS":
            tk.next("CHANNELS")
            n = tk.number(f"{name} channel count")
            if n != int(n) or not 0 <= n <= 6:
                raise _BvhSyntax(f"joint {name!r}: invalid channel count {n}")
            for _ in range(int(n)):
                c = tk.next(f"{name} channel name")
                c = c[0].upper() + c[1:].lower()
                if c not in _ROT_AXIS and c not in _POS_AXIS:
                    raise _BvhSyntax(f"joint {name!r}: unknown channel {c!r}")
                chans.append(c)
        channels.append(chans)
        while True:
            t = tk.next(f"'}}' closing joint {name!r}")
            u = t.upper()
            if u == "}":
                return
            if u == "JOINT":
                joint(j)
            elif u == "END":
                tk.expect("Site")
                tk.expect("{")
                tk.expect("OFFSET")
                for _ in range(3):
                    tk.number(f"{name} End Site OFFSET")
                tk.expect("}")
            else:
                raise _BvhSyntax(f"unexpected {t!r} inside joint {name!r} (token {tk.i})")

    joint(-1)
    tk.expect("MOTION")
    tk.expect("Frames:")
    n_frames = tk.number("frame count")
    if n_frames != int(n_frames) or n_frames < 0:
        raise _BvhSyntax(f"invalid frame count {n_frames}")
    T = int(n_frames)
    tk.expect("Frame")
    tk.expect("Time:")
    dt = tk.number("frame time")
    if dt <= 0:
        raise _BvhSyntax(f"frame time must be positive, got {dt}")
    n_ch = sum(len(c) for c in channels)
    rest = tk.tok[tk.i:]
    if len(rest) != T * n_ch:
        raise _BvhSyntax(f"expected {T} frames x {n_ch} channels = {T * n_ch} values, found {len(rest)}")
    try:
        data = np.asarray(rest, dtype=np.float64).reshape(T, n_ch)
    except ValueError:
        raise _BvhSyntax("motion data contains a value that is not a number") from None
    if not np.isfinite(data).all():
        raise _BvhSyntax("motion data contains non-finite values")

    J = len(names)
    offsets_m = np.asarray(offsets, dtype=np.float64) / CM_PER_M
    rotations = np.zeros((T, J, 4))
    rotations[..., 3] = 1
    root_translation = np.zeros((T, 3))
    col = 0
    for j, chans in enumerate(channels):
        rot_cols = [(col + k, _ROT_AXIS[c]) for k, c in enumerate(chans) if c in _ROT_AXIS]
        if j == 0:
            pos_cols = [(col + k, _POS_AXIS[c]) for k, c in enumerate(chans) if c in _POS_AXIS]
            for k, axis in pos_cols:
                root_translation[:, axis] = data[:, k] / CM_PER_M - offsets_m[0, axis]
        if rot_cols and T:
            seq = "".join(a for _, a in rot_cols)
            if len(set(seq)) != len(seq):
                raise _BvhSyntax(f"joint {names[j]!r}: repeated rotation axis in {seq!r}")
            ang = data[:, [k for k, _ in rot_cols]]
            rotations[:, j] = Rotation.from_euler(seq, ang, degrees=True).as_quat()
        col += len(chans)
    fps = 1.0 / dt
    if abs(fps - round(fps)) < 1e-6 * fps:      # "0.0333333333" is 30 fps, not 30.0000000003
        fps = float(round(fps))
    return BvhData(fps, names, np.asarray(parents, dtype=np.int64), offsets_m, rotations, root_translation)


def to_clip(data: BvhData, meta: dict | None = None) -> MotionClip:
    """Turn :class:`BvhData` with SMPL-X (or our Mixamo) joint names into a :class:`MotionClip` (face all
    zeros).

    Joints are matched by name (any file order; Mixamo names as :func:`write` writes them with
    ``bone_names="mixamo"`` are mapped back); SMPL-X joints missing from the file stay identity.
    Raises:
        ChatAnyoneError: a joint name that is not an SMPL-X joint, or the file's parents disagree with
            SMPL-X's.
    """
    smplx_names = [_MIXAMO_TO_SMPLX.get(n, n) for n in data.joint_names]
    unknown = [n for n in smplx_names if n not in JOINT_INDEX]
    if unknown:
        raise ChatAnyoneError(f"BVH joints are not SMPL-X joints: {unknown[:5]}")
    if len(set(smplx_names)) != len(smplx_names):
        raise ChatAnyoneError("BVH joint names repeat a joint")
    for j, n in enumerate(smplx_names):
        p = int(data.parents[j])
        want = SMPLX_PARENTS[JOINT_INDEX[n]]
        have = JOINT_INDEX[smplx_names[p]] if p >= 0 else -1
        if have != want:
            raise ChatAnyoneError(f"BVH joint {n!r} has parent {have}, SMPL-X says {want}")
    T = data.rotations.shape[0]
    rot = np.zeros((T, NUM_JOINTS, 4), np.float32)
    rot[..., 3] = 1
    rot[:, [JOINT_INDEX[n] for n in smplx_names]] = data.rotations
    face = np.zeros((T, len(ARKIT_NAMES)), np.float32)
    return MotionClip(data.fps, face, rot, data.root_translation, dict(meta or {}))
