"""Per-frame motion vectors the two diffusion stages denoise, and their masks.

* face stage vector ``[T, 39]``: the 27 mouth/jaw ARKit weights (``ARKIT_MOUTH``, in [0, 1]) then the
  neck and head local rotations as 6D (first two matrix columns, :func:`motion.rotations.quat_to_6d`).
* body stage vector ``[T, 246]``: the 41 joints of ``BODY_STAGE_JOINTS`` (11 upper-body + 30 finger joints)
  as 6D each, in that order.
"""
from __future__ import annotations

import numpy as np

from .clip import MotionClip
from .conventions import ARKIT_MOUTH, BODY_STAGE_JOINTS, HEAD_JOINTS, MODEL_FPS, NUM_ARKIT, NUM_JOINTS
from .rotations import quat_to_6d, sixd_to_quat

FACE_MOUTH_DIM = len(ARKIT_MOUTH)
FACE_DIM = FACE_MOUTH_DIM + 6 * len(HEAD_JOINTS)
BODY_DIM = 6 * len(BODY_STAGE_JOINTS)
_MOUTH = np.asarray(ARKIT_MOUTH)
_HEAD = np.asarray(HEAD_JOINTS)
_BODY = np.asarray(BODY_STAGE_JOINTS)


def face_vector(clip: MotionClip) -> np.ndarray:
    """``MotionClip`` -> face stage vector ``[T, FACE_DIM]`` float32."""
    head = quat_to_6d(clip.rotations[:, _HEAD]).reshape(clip.num_frames, -1)
    return np.concatenate([clip.face[:, _MOUTH], head], axis=1).astype(np.float32)


def body_vector(clip: MotionClip) -> np.ndarray:
    """``MotionClip`` -> body stage vector ``[T, BODY_DIM]`` float32."""
    return quat_to_6d(clip.rotations[:, _BODY]).reshape(clip.num_frames, -1).astype(np.float32)


def face_vector_mask(face_mask: np.ndarray, joint_mask: np.ndarray) -> np.ndarray:
    """Which face-vector channels are real: ``[..., 52]`` face and ``[..., 55]`` joint masks (per clip or
    per frame) -> ``[..., FACE_DIM]`` bool."""
    head = np.repeat(np.asarray(joint_mask, bool)[..., _HEAD], 6, axis=-1)
    return np.concatenate([np.asarray(face_mask, bool)[..., _MOUTH], head], axis=-1)


def body_vector_mask(joint_mask: np.ndarray) -> np.ndarray:
    """Which body-vector channels are real: ``[..., 55]`` joint mask -> ``[..., BODY_DIM]`` bool."""
    return np.repeat(np.asarray(joint_mask, bool)[..., _BODY], 6, axis=-1)


def assemble(face_vec: np.ndarray, body_vec: np.ndarray, fps: float = MODEL_FPS,
             face: np.ndarray | None = None, rotations: np.ndarray | None = None,
             meta: dict | None = None) -> MotionClip:
    """Stage vectors -> ``MotionClip``, writing into optional base ``face [T,52]``/``rotations [T,55,4]``.

    Mouth weights are clipped to [0, 1]; 6D rotations are orthonormalised (Gram-Schmidt).
    """
    T = face_vec.shape[0]
    face = np.zeros((T, NUM_ARKIT), np.float32) if face is None else face.copy()
    if rotations is None:
        rotations = np.zeros((T, NUM_JOINTS, 4), np.float32)
        rotations[..., 3] = 1
    else:
        rotations = rotations.copy()
    face[:, _MOUTH] = np.clip(face_vec[:, :FACE_MOUTH_DIM], 0, 1)
    rotations[:, _HEAD] = sixd_to_quat(face_vec[:, FACE_MOUTH_DIM:].reshape(T, len(_HEAD), 6))
    rotations[:, _BODY] = sixd_to_quat(body_vec.reshape(T, len(_BODY), 6))
    return MotionClip(fps, face, rotations, None, meta or {})
