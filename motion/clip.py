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

from .conventions import ARKIT_NAMES, MODEL_FPS, NUM_ARKIT, NUM_JOINTS, SMPLX_JOINT_NAMES, SMPLX_PARENTS
from .errors import ClipError
from .fileio import atomic_output

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
        try:
            self.fps = float(self.fps)
        except (TypeError, ValueError):
            raise ClipError(f"fps must be a number, got {self.fps!r}") from None
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
            # motion.rotations.canonical_quat (w >= 0) done in place on the one normalised copy: hours of
            # motion would otherwise hold three [T, 55, 4] copies at once
            rot = self.rotations / norms[..., None]
            np.negative(rot, out=rot, where=rot[..., 3:4] < 0)
            self.rotations = rot
        if not isinstance(self.meta, dict):
            raise ClipError(f"meta must be a dict, got {type(self.meta).__name__}")
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
    def rest(cls, num_frames: int, fps: float = MODEL_FPS, meta: dict | None = None) -> "MotionClip":
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
        from .rotations import slerp_resample
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

        Every key is checked before use: ``fps`` a positive finite scalar, ``face`` ``[T, F]`` with
        ``F`` unique ARKit names in ``face_names [F]``, ``rotations`` ``[T, J, 4]`` with ``J`` unique
        SMPL-X names in ``joint_names [J]``, ``translation`` ``[T, 3]``, ``meta`` a JSON object. Missing
        face channels read 0, missing joints identity.

        Raises:
            ClipError: missing file or a folder, not an ``.npz``, missing keys, wrong shapes or dtypes,
                unknown or duplicate names, invalid values (one line naming the file and the key).
        """
        path = Path(path)
        if path.is_dir():
            raise ClipError(f"{path}: is a folder, not a MotionClip .npz file")
        if not path.is_file():
            raise ClipError(f"{path}: no such file")
        try:
            with np.load(path, allow_pickle=False) as z:
                d = {k: z[k] for k in z.files}
        except Exception as e:  # zipfile/ValueError/OSError: not an npz (or an object array: pickle refused)
            raise ClipError(f"{path}: not a readable .npz file ({e.__class__.__name__})") from None
        missing = [k for k in NPZ_KEYS if k not in d]
        if missing:
            raise ClipError(f"{path}: missing keys {missing}")

        def names(key: str, table: tuple[str, ...]) -> list[int]:
            a = d[key]
            if a.ndim != 1 or a.dtype.kind not in "US":
                raise ClipError(f"{path}: {key} must be a 1-D array of strings, got {a.dtype} {list(a.shape)}")
            got = [str(n) for n in a]
            unknown = sorted(set(got) - set(table))
            if unknown:
                raise ClipError(f"{path}: unknown channel names in {key}: {unknown[:5]}")
            dup = sorted({n for n in got if got.count(n) > 1})
            if dup:
                raise ClipError(f"{path}: duplicate channel names in {key}: {dup[:5]}")
            return [table.index(n) for n in got]

        def numeric(key: str, shape: tuple) -> np.ndarray:
            a = d[key]
            if a.dtype.kind not in "fiu":
                raise ClipError(f"{path}: {key} must be numbers, got dtype {a.dtype}")
            want = "[" + ", ".join("T" if s is None else str(s) for s in shape) + "]"
            if a.ndim != len(shape) or any(s is not None and a.shape[i] != s for i, s in enumerate(shape)):
                raise ClipError(f"{path}: {key} must have shape {want}, got {list(a.shape)}")
            return a

        face_idx = names("face_names", ARKIT_NAMES)
        joint_idx = names("joint_names", SMPLX_JOINT_NAMES)
        fps = numeric("fps", ())
        face_in = numeric("face", (None, len(face_idx)))
        T = face_in.shape[0]
        rot_in = numeric("rotations", (T, len(joint_idx), 4))
        trans = numeric("translation", (T, 3))
        parents = d["parents"]
        if parents.dtype.kind not in "iu" or parents.shape != (len(joint_idx),):
            raise ClipError(f"{path}: parents must be [{len(joint_idx)}] integers, got {parents.dtype} "
                            f"{list(parents.shape)}")
        face = np.zeros((T, NUM_ARKIT), np.float32)
        face[:, face_idx] = face_in
        rot = np.zeros((T, NUM_JOINTS, 4), np.float32)
        rot[..., 3] = 1
        rot[:, joint_idx] = rot_in
        if d["meta"].ndim != 0 or d["meta"].dtype.kind not in "US":
            raise ClipError(f"{path}: meta must be one JSON string, got {d['meta'].dtype} {list(d['meta'].shape)}")
        try:
            meta = json.loads(str(d["meta"]))
        except json.JSONDecodeError:
            raise ClipError(f"{path}: meta is not valid JSON") from None
        if not isinstance(meta, dict):
            raise ClipError(f"{path}: meta must be a JSON object, got {type(meta).__name__}")
        try:
            return cls(float(fps), face, rot, trans, meta)
        except ClipError as e:
            raise ClipError(f"{path}: {e}") from None
