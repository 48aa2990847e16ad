"""Rotation helpers on top of ``scipy.spatial.transform.Rotation``.

Quaternions are ``(x, y, z, w)`` (scipy's scalar-last order), unit length; axis-angle vectors are in
radians; 6D rotations are the first two columns of the rotation matrix (Zhou et al., "On the Continuity of
Rotation Representations in Neural Networks", CVPR 2019), flattened column-wise ``[c0, c1]``.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from .conventions import SMPLX_PARENTS


def _flat(x: np.ndarray, n: int) -> tuple[np.ndarray, tuple[int, ...]]:
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(-1, n), x.shape[:-1]


def axis_angle_to_quat(aa: np.ndarray) -> np.ndarray:
    """``[..., 3]`` axis-angle (radians) -> ``[..., 4]`` float32 quaternion xyzw."""
    f, lead = _flat(aa, 3)
    return Rotation.from_rotvec(f).as_quat().reshape(*lead, 4).astype(np.float32)


def quat_to_axis_angle(q: np.ndarray) -> np.ndarray:
    """``[..., 4]`` xyzw -> ``[..., 3]`` axis-angle (radians), float64 for exact round trips."""
    f, lead = _flat(q, 4)
    return Rotation.from_quat(f).as_rotvec().reshape(*lead, 3)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """``[..., 4]`` xyzw -> ``[..., 3, 3]`` rotation matrices (float64)."""
    f, lead = _flat(q, 4)
    return Rotation.from_quat(f).as_matrix().reshape(*lead, 3, 3)


def quat_to_6d(q: np.ndarray) -> np.ndarray:
    """``[..., 4]`` xyzw -> ``[..., 6]`` float32 (first two matrix columns)."""
    m = quat_to_matrix(q)
    return np.concatenate([m[..., :, 0], m[..., :, 1]], axis=-1).astype(np.float32)


def sixd_to_quat(d6: np.ndarray) -> np.ndarray:
    """``[..., 6]`` -> ``[..., 4]`` float32 unit quaternion xyzw, by Gram-Schmidt."""
    d6 = np.asarray(d6, dtype=np.float64)
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = a1 / np.maximum(np.linalg.norm(a1, axis=-1, keepdims=True), 1e-8)
    a2 = a2 - (b1 * a2).sum(-1, keepdims=True) * b1
    b2 = a2 / np.maximum(np.linalg.norm(a2, axis=-1, keepdims=True), 1e-8)
    b3 = np.cross(b1, b2)
    m = np.stack([b1, b2, b3], axis=-1)
    f = m.reshape(-1, 3, 3)
    q = Rotation.from_matrix(f).as_quat().reshape(*d6.shape[:-1], 4)
    return q.astype(np.float32)


def canonical_quat(q: np.ndarray) -> np.ndarray:
    """Flip quaternions to ``w >= 0`` (q and -q are the same rotation)."""
    q = np.asarray(q, dtype=np.float32)
    return np.where(q[..., 3:4] < 0, -q, q)


def mirror_quat(q: np.ndarray) -> np.ndarray:
    """Mirror local rotations across the body's sagittal (YZ) plane: ``(x, y, z, w) -> (x, -y, -z, w)``.

    Combine with :data:`motion.conventions.JOINT_MIRROR` to swap left and right joints.
    """
    return np.asarray(q, dtype=np.float32) * np.array([1, -1, -1, 1], dtype=np.float32)


def slerp_resample(q: np.ndarray, t_src: np.ndarray, t_dst: np.ndarray) -> np.ndarray:
    """Resample rotations ``[T, J, 4]`` given at times ``t_src`` (seconds) to ``t_dst`` by slerp."""
    q = np.asarray(q, dtype=np.float64)
    T, J, _ = q.shape
    t_dst = np.clip(t_dst, t_src[0], t_src[-1])
    out = np.empty((len(t_dst), J, 4))
    if T == 1:
        out[:] = q[0]
        return out.astype(np.float32)
    for j in range(J):
        out[:, j] = Slerp(t_src, Rotation.from_quat(q[:, j]))(t_dst).as_quat()
    return out.astype(np.float32)


def forward_kinematics(rotations: np.ndarray, offsets: np.ndarray, parents=SMPLX_PARENTS,
                       root_translation: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Global joint positions and rotations from local rotations.

    Args:
        rotations: ``[T, J, 4]`` local quaternions xyzw relative to the rest pose.
        offsets: ``[J, 3]`` parent-relative rest offsets in metres (root: its rest position).
        parents: ``J`` parent indices (``-1`` for the root), parents before children.
        root_translation: optional ``[T, 3]`` metres added to the root.
    Returns:
        ``(positions [T, J, 3] metres, global_rotations [T, J, 3, 3])``, float64.
    """
    R = quat_to_matrix(rotations)
    T, J = R.shape[:2]
    g_rot = np.empty_like(R)
    g_pos = np.empty((T, J, 3))
    offsets = np.asarray(offsets, dtype=np.float64)
    for j in range(J):
        p = parents[j]
        if p < 0:
            g_rot[:, j] = R[:, j]
            g_pos[:, j] = offsets[j] + (0 if root_translation is None else root_translation)
        else:
            g_rot[:, j] = g_rot[:, p] @ R[:, j]
            g_pos[:, j] = g_pos[:, p] + np.einsum("tij,j->ti", g_rot[:, p], offsets[j])
    return g_pos, g_rot


def nearest_rotation_matrix(m: np.ndarray) -> np.ndarray:
    """The rotation matrix closest to ``m [3, 3]`` in the Frobenius norm (SVD projection, determinant +1;
    Kabsch 1976). Used to strip scale and shear from MediaPipe's facial transformation matrices."""
    u, _, vt = np.linalg.svd(m)
    r = u @ vt
    if np.linalg.det(r) < 0:
        u[:, -1] *= -1
        r = u @ vt
    return r
