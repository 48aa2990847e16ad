"""``MotionClip``: the one object the bridge, the exporters and the generator receive.

The ``.npz`` layout is a public format (DESIGN.md, "MotionClip"): keys ``fps`` (scalar), ``face``
``[T, 52]``, ``face_names`` ``[52]`` str, ``rotations`` ``[T, 55, 4]``, ``joint_names`` ``[55]`` str,
``parents`` ``[55]`` int, ``translation`` ``[T, 3]``, ``meta`` (JSON string). ``meta["format_version"]``
versions it.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .conventions import ARKIT_NAMES, NUM_ARKIT, NUM_JOINTS, SMPLX_JOINT_NAMES, SMPLX_PARENTS
from .errors import ClipError
from .fileio import atomic_output
from .rotations import canonical_quat, slerp_resample

FORMAT_VERSION = 1
NPZ_KEYS = ("fps", "face", "face_names", "rotations", "joint_names", "parents", "translation", "meta")


@dataclass
class MotionClip:
    """Audio-driven avatar motion at a fixed frame rate.

    Attributes:
        fps: frames per second (float, > 0).
        face: ``[T, 52]`` float32 ARKit blendshape weights in [0, 1], :data:`ARKIT_NAMES` order.
        rotations: ``[T, 55, 4]`` float32 SMPL-X local joint rotations relative to the rest pose (T-pose,
            flat hands), unit quaternions ``(x, y, z, w)``, right-handed, +Y up, facing +Z.
        translation: ``[T, 3]`` float32 root translation in metres (zeros when the root is locked).
        meta: JSON-serialisable dict (model version, seed, style, intensities, ``audio_source``,
            ``audio_offset_s``, ``format_version``).

    Raises:
        ClipError: on wrong shapes, non-finite values, face weights outside [0, 1] (beyond 1e-4) or
            non-unit quaternions (beyond 1e-3). Small excursions are clipped / renormalised.
    """

    fps: float
    face: np.ndarray
    rotations: np.ndarray
    translation: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fps = float(self.fps)
        if not np.isfinite(self.fps) or self.fps <= 0:
            raise ClipError(f"fps must be a positive number, got {self.fps}")
        self.face = np.asarray(self.face, dtype=np.float32)
        self.rotations = np.asarray(self.rotations, dtype=np.float32)
        if self.face.ndim != 2 or self.face.shape[1] != NUM_ARKIT:
            raise ClipError(f"face must be [T, {NUM_ARKIT}], got {list(self.face.shape)}")
        T = self.face.shape[0]
        if self.rotations.shape != (T, NUM_JOINTS, 4):
            raise ClipError(f"rotations must be [{T}, {NUM_JOINTS}, 4], got {list(self.rotations.shape)}")
        if self.translation is None:
            self.translation = np.zeros((T, 3), np.float32)
        self.translation = np.asarray(self.translation, dtype=np.float32)
        if self.translation.shape != (T, 3):
            raise ClipError(f"translation must be [{T}, 3], got {list(self.translation.shape)}")
        for name in ("face", "rotations", "translation"):
            if not np.isfinite(getattr(self, name)).all():
                raise ClipError(f"{name} contains NaN or infinite values")
        if T and (self.face.min() < -1e-4 or self.face.max() > 1 + 1e-4):
            raise ClipError(f"face weights must be in [0, 1], got [{self.face.min():.4f}, {self.face.max():.4f}]")
        self.face = np.clip(self.face, 0.0, 1.0)
        norms = np.linalg.norm(self.rotations, axis=-1)
        if T and np.abs(norms - 1).max() > 1e-3:
            raise ClipError(f"rotations must be unit quaternions (max |norm-1| = {np.abs(norms - 1).max():.4f})")
        if T:
            self.rotations = canonical_quat(self.rotations / norms[..., None])
        self.meta = dict(self.meta)
        self.meta.setdefault("format_version", FORMAT_VERSION)

    # ---------------------------------------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        return int(self.face.shape[0])

    @property
    def duration(self) -> float:
        """Length in seconds (``num_frames / fps``)."""
        return self.num_frames / self.fps

    @classmethod
    def rest(cls, num_frames: int, fps: float = 30.0, meta: dict | None = None) -> "MotionClip":
        """A neutral clip: zero face weights, identity rotations, zero translation."""
        rot = np.zeros((num_frames, NUM_JOINTS, 4), np.float32)
        rot[..., 3] = 1
        return cls(fps, np.zeros((num_frames, NUM_ARKIT), np.float32), rot, None, meta or {})

    # ---------------------------------------------------------------------------------------------
    def slice(self, start: int, stop: int) -> "MotionClip":
        """Frames ``[start, stop)`` (Python slice semantics); ``meta["audio_offset_s"]`` advances."""
        s = slice(start, stop)
        first = range(self.num_frames)[s].start if self.num_frames else 0
        meta = dict(self.meta)
        meta["audio_offset_s"] = float(meta.get("audio_offset_s", 0.0)) + first / self.fps
        return MotionClip(self.fps, self.face[s], self.rotations[s], self.translation[s], meta)

    def resample(self, fps: float) -> "MotionClip":
        """Resample to ``fps``: linear for face and translation, slerp for rotations.

        The result covers the same duration; frame ``i`` is at ``i / fps`` seconds.
        """
        fps = float(fps)
        if fps <= 0 or not np.isfinite(fps):
            raise ClipError(f"fps must be positive, got {fps}")
        T = self.num_frames
        if T == 0 or fps == self.fps:
            return MotionClip(fps, self.face, self.rotations, self.translation, dict(self.meta))
        t_src = np.arange(T) / self.fps
        n_dst = max(1, int(round(T * fps / self.fps)))
        t_dst = np.minimum(np.arange(n_dst) / fps, t_src[-1])
        face = np.stack([np.interp(t_dst, t_src, self.face[:, c]) for c in range(NUM_ARKIT)], -1)
        trans = np.stack([np.interp(t_dst, t_src, self.translation[:, c]) for c in range(3)], -1)
        rot = slerp_resample(self.rotations, t_src, t_dst)
        return MotionClip(fps, face, rot, trans, dict(self.meta))

    @staticmethod
    def concat(clips: list["MotionClip"]) -> "MotionClip":
        """Join clips end to end; they must share ``fps``. ``meta`` is the first clip's."""
        if not clips:
            raise ClipError("concat needs at least one clip")
        fps = clips[0].fps
        if any(abs(c.fps - fps) > 1e-6 for c in clips):
            raise ClipError("concat needs clips at the same fps; resample first")
        return MotionClip(fps, np.concatenate([c.face for c in clips]),
                          np.concatenate([c.rotations for c in clips]),
                          np.concatenate([c.translation for c in clips]), dict(clips[0].meta))

    # ---------------------------------------------------------------------------------------------
    def to_npz_dict(self) -> dict[str, np.ndarray]:
        return {
            "fps": np.asarray(self.fps, np.float32),
            "face": self.face,
            "face_names": np.asarray(ARKIT_NAMES),
            "rotations": self.rotations,
            "joint_names": np.asarray(SMPLX_JOINT_NAMES),
            "parents": np.asarray(SMPLX_PARENTS, np.int32),
            "translation": self.translation,
            "meta": np.asarray(json.dumps(self.meta)),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the ``.npz`` atomically (:func:`motion.fileio.atomic_output`); returns the path.

        Raises:
            ChatAnyoneError: the folder is missing or not writable.
        """
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        with atomic_output(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **self.to_npz_dict())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "MotionClip":
        """Read a clip ``.npz``; channels are matched **by name** (face_names, joint_names).

        Raises:
            ClipError: missing file, missing keys, unknown names, or invalid values.
        """
        path = Path(path)
        if not path.is_file():
            raise ClipError(f"{path}: no such file")
        try:
            with np.load(path, allow_pickle=False) as z:
                d = {k: z[k] for k in z.files}
        except Exception as e:  # zipfile/ValueError/OSError: not an npz
            raise ClipError(f"{path}: not a readable .npz file ({e.__class__.__name__})") from None
        missing = [k for k in NPZ_KEYS if k not in d]
        if missing:
            raise ClipError(f"{path}: missing keys {missing}")
        face_names = [str(n) for n in d["face_names"]]
        joint_names = [str(n) for n in d["joint_names"]]
        unknown = sorted(set(face_names) - set(ARKIT_NAMES)) + sorted(set(joint_names) - set(SMPLX_JOINT_NAMES))
        if unknown:
            raise ClipError(f"{path}: unknown channel names {unknown[:5]}")
        T = d["face"].shape[0]
        face = np.zeros((T, NUM_ARKIT), np.float32)
        face[:, [ARKIT_NAMES.index(n) for n in face_names]] = d["face"]
        rot = np.zeros((T, NUM_JOINTS, 4), np.float32)
        rot[..., 3] = 1
        rot[:, [SMPLX_JOINT_NAMES.index(n) for n in joint_names]] = d["rotations"]
        try:
            meta = json.loads(str(d["meta"]))
        except json.JSONDecodeError:
            raise ClipError(f"{path}: meta is not valid JSON") from None
        return cls(float(d["fps"]), face, rot, d["translation"], meta)
