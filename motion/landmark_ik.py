"""Landmarks -> local joint rotations on our SMPL-X skeleton (per-bone direction fitting).

Method (documented in :func:`fit_rotations`):

* Input is the observed **direction of every bone** (the vector from a joint's parent to the joint), in
  our world axes (+Y up, facing +Z, right-handed), with a per-bone confidence. Directions, not positions,
  are used, so trackers whose bone lengths differ from our skeleton (MediaPipe's hand and pose models) and
  landmarks from different sources (pose world landmarks for the arm, hand world landmarks for the
  fingers, each with their own origin) can be combined.
* Joints are solved **parents first**. For joint ``j`` with parent global rotation ``G_p``:

  - two or more non-collinear observed child bones: ``G_j`` is the weighted least-squares rotation (Kabsch /
    Wahba, SVD) taking the rest child directions to the observed ones; this fixes twist too (pelvis, spine3,
    wrist from the five finger bases, head);
  - one observed child bone: ``G_j = S @ G_p`` where ``S`` is the minimal rotation (swing) taking
    ``G_p @ rest_dir`` onto the observed direction (twist inherited from the parent). Optionally
    (``hinge_twist=True``) the **twist** about the bone comes from a secondary direction where the child is
    a hinge (elbow, knee, finger PIP/DIP, :data:`HINGE_FLEX`): the bone is twisted so that the child's bend
    is a pure rotation about its rest hinge axis (see :func:`_hinge_twist`). It is off by default: measured
    on BEAT2 take 0_3_3 (synthetic landmarks = FK of its rotations), the median rotation error against the
    mocap rotations is shoulders 7.4 / 9.5 deg and index PIP 2.9 deg with plain swing versus 12.6 / 26.9 and
    9.7 deg with the hinge rule (SMPL-X elbows and fingers are not pure hinges about these axes), and with
    5 mm landmark noise the hinge rule amplifies noise on the short finger bones (index PIP 113 vs 28 deg);
    the hinge rule wins on elbows/wrists (16 vs 20 deg) only;
  - no observed child bone: identity, marked invalid.

  The local rotation is ``L_j = G_p^T G_j``. ``local_overrides`` give a joint's local rotation directly
  (root lock, spine from a torso fit, head from the face tracker).
* **Confidence** of a joint is the minimum confidence of the bones used; a local rotation is **valid** when
  that is ``>= min_confidence`` and the parent's global rotation is itself known (a swing result depends on
  the parent's twist; a Kabsch result does not, so finger rotations stay valid when the arm is not seen).
  Invalid joints get identity and ``valid = False``: nothing is invented.

Finger tips are not SMPL-X joints; :data:`EXT_NAMES` appends 10 tip "joints" (children of the ``*3``
joints, rest offset continuing the ``*2 -> *3`` bone at :data:`TIP_LENGTH_RATIO` of its length) so that the
distal finger rotations can be fitted from MediaPipe's tip landmarks.

Sources: SMPL-X skeleton and rest pose from :mod:`motion.conventions`; MediaPipe landmark indices
(:data:`motion.tracking.MP_POSE`, :data:`motion.tracking.MP_HAND_POINTS`) from the MediaPipe Tasks
documentation (pose landmarker: 33 points, hand landmarker: 21 points).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from .conventions import JOINT_INDEX, NUM_JOINTS, SMPLX_JOINT_NAMES, SMPLX_PARENTS, children_of, rest_offsets
# MediaPipe's landmark tables live with the tracker (re-exported here: hand_bone_dirs walks MP_HAND_POINTS)
from .tracking import MP_HAND_POINTS, MP_HAND_WRIST, MP_POSE  # noqa: F401

FINGERS = ("index", "middle", "pinky", "ring", "thumb")  # MANO order
TIP_LENGTH_RATIO = 0.8
#: Extended skeleton: the 55 SMPL-X joints, then 10 finger tips (left hand first, MANO finger order).
EXT_NAMES: tuple[str, ...] = SMPLX_JOINT_NAMES + tuple(f"{s}_{f}_tip" for s in ("left", "right") for f in FINGERS)
EXT_PARENTS: tuple[int, ...] = SMPLX_PARENTS + tuple(JOINT_INDEX[f"{s}_{f}3"] for s in ("left", "right")
                                                      for f in FINGERS)
NUM_EXT = len(EXT_NAMES)
EXT_INDEX = {n: i for i, n in enumerate(EXT_NAMES)}

#: Bend direction (rest frame) of the bone *after* the keyed joint when that joint flexes: elbows bend
#: the forearm forward (+Z), knees the shin backward (-Z), finger PIP/DIP joints curl towards the palm (-Y,
#: palms face down in the rest T-pose). Thumbs have no entry (no clean hinge in the rest pose).
HINGE_FLEX: dict[int, tuple[float, float, float]] = {
    JOINT_INDEX["left_elbow"]: (0.0, 0.0, 1.0), JOINT_INDEX["right_elbow"]: (0.0, 0.0, 1.0),
    JOINT_INDEX["left_knee"]: (0.0, 0.0, -1.0), JOINT_INDEX["right_knee"]: (0.0, 0.0, -1.0),
    **{JOINT_INDEX[f"{s}_{f}{k}"]: (0.0, -1.0, 0.0) for s in ("left", "right")
       for f in ("index", "middle", "pinky", "ring") for k in (2, 3)},
}
MIN_HINGE_BEND_RAD = np.deg2rad(10.0)



def ext_rest_offsets() -> np.ndarray:
    """Parent-relative rest offsets of the extended skeleton ``[65, 3]`` float64, metres."""
    off = rest_offsets().astype(np.float64)
    tips = [off[p] * TIP_LENGTH_RATIO for p in EXT_PARENTS[NUM_JOINTS:]]
    return np.concatenate([off, np.asarray(tips)], 0)


EXT_CHILDREN = children_of(EXT_PARENTS)


@dataclass
class IKFit:
    """Output of :func:`fit_rotations`.

    Attributes:
        rotations: ``[T, 55, 4]`` float32 local quaternions xyzw (identity where invalid).
        confidence: ``[T, 55]`` float32 in [0, 1] (minimum confidence of the bones a joint was fitted from).
        valid: ``[T, 55]`` bool, the local rotation is measured (see module docstring).
        global_rotations: ``[T, 55, 3, 3]`` float64 global rotations of the fit.
    """

    rotations: np.ndarray
    confidence: np.ndarray
    valid: np.ndarray
    global_rotations: np.ndarray


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-12)


def _skew(v: np.ndarray) -> np.ndarray:
    z = np.zeros(v.shape[:-1])
    return np.stack([np.stack([z, -v[..., 2], v[..., 1]], -1),
                     np.stack([v[..., 2], z, -v[..., 0]], -1),
                     np.stack([-v[..., 1], v[..., 0], z], -1)], -2)


def swing_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minimal rotations ``[T, 3, 3]`` taking unit vectors ``a [T, 3]`` onto ``b [T, 3]`` (180 deg handled)."""
    a, b = _unit(a), _unit(b)
    v = np.cross(a, b)
    c = (a * b).sum(-1)
    K = _skew(v)
    R = np.eye(3) + K + (K @ K) / np.maximum(1.0 + c, 1e-12)[:, None, None]
    opp = c < -1 + 1e-9
    if opp.any():  # rotate pi about any axis perpendicular to a
        ax = np.cross(a[opp], np.array([1.0, 0.0, 0.0]))
        bad = np.linalg.norm(ax, axis=-1) < 1e-6
        ax[bad] = np.cross(a[opp][bad], np.array([0.0, 1.0, 0.0]))
        R[opp] = Rotation.from_rotvec(_unit(ax) * np.pi).as_matrix()
    return R


def _axis_angle_matrix(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    return Rotation.from_rotvec(_unit(axis) * angle[:, None]).as_matrix()


def kabsch(rest: np.ndarray, obs: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted rotations ``[T, 3, 3]`` taking rest directions ``[C, 3]`` onto observed ``[T, C, 3]``.

    Returns ``(R, ok)`` where ``ok [T]`` is False when the weighted directions are degenerate (fewer than
    two non-collinear ones).
    """
    H = np.einsum("tc,ci,tcj->tij", w, rest, obs)
    U, S, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(np.swapaxes(Vt, 1, 2) @ np.swapaxes(U, 1, 2)))
    D = np.tile(np.eye(3), (len(H), 1, 1))
    D[:, 2, 2] = np.where(d == 0, 1.0, d)
    R = np.swapaxes(Vt, 1, 2) @ D @ np.swapaxes(U, 1, 2)
    ok = S[:, 1] > 1e-3 * np.maximum(S[:, 0], 1e-12)
    return R, ok


def fit_rotations(bone_dirs: np.ndarray, bone_conf: np.ndarray, *,
                  local_overrides: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None,
                  min_confidence: float = 0.5, hinge_twist: bool = False) -> IKFit:
    """Fit local rotations of the 55 joints to observed bone directions (method: module docstring).

    Args:
        bone_dirs: ``[T, 65, 3]`` float, direction of the bone ending at each extended joint
            (``P[j] - P[parent[j]]``, any length, our axes); NaN where unobserved. Row 0 (root) is unused.
        bone_conf: ``[T, 65]`` float in [0, 1]; a bone is used when its confidence ``>= min_confidence``
            and its direction is finite and non-zero.
        local_overrides: joint -> ``(local rotation matrices [T, 3, 3], valid [T] bool, confidence [T])``;
            such a joint is not fitted, its global rotation is taken as known (e.g. a locked root).
        min_confidence: threshold for using a bone and for calling a joint valid.
        hinge_twist: twist single-child bones from the child's hinge bend (:data:`HINGE_FLEX`); default off
            (see the module docstring for the measured comparison).
    Returns:
        :class:`IKFit`.
    Raises:
        ValueError: wrong shapes.
    """
    d = np.asarray(bone_dirs, np.float64)
    conf = np.asarray(bone_conf, np.float64)
    if d.ndim != 3 or d.shape[1:] != (NUM_EXT, 3) or conf.shape != d.shape[:2]:
        raise ValueError(f"bone_dirs must be [T, {NUM_EXT}, 3] and bone_conf [T, {NUM_EXT}], "
                         f"got {list(d.shape)} and {list(conf.shape)}")
    T = d.shape[0]
    overrides = local_overrides or {}
    norm = np.linalg.norm(np.nan_to_num(d), axis=-1)
    use = np.isfinite(d).all(-1) & (norm > 1e-9) & (conf >= min_confidence)
    obs = np.where(use[..., None], np.nan_to_num(d) / np.maximum(norm, 1e-12)[..., None], 0.0)
    rest = _unit(ext_rest_offsets())
    eye = np.tile(np.eye(3), (T, 1, 1))

    G = np.empty((T, NUM_EXT, 3, 3))
    L = np.tile(np.eye(3), (T, NUM_JOINTS, 1, 1))
    g_ok = np.zeros((T, NUM_EXT), bool)
    out_conf = np.zeros((T, NUM_JOINTS))
    valid = np.zeros((T, NUM_JOINTS), bool)
    for j in range(NUM_JOINTS):
        p = EXT_PARENTS[j]
        Gp = G[:, p] if p >= 0 else eye
        gp_ok = g_ok[:, p] if p >= 0 else np.ones(T, bool)
        if j in overrides:
            R, v, c = overrides[j]
            L[:, j] = R
            G[:, j] = Gp @ R
            g_ok[:, j] = gp_ok
            valid[:, j] = np.asarray(v, bool) & gp_ok
            out_conf[:, j] = np.asarray(c, np.float64)
            continue
        ch = EXT_CHILDREN[j]
        Gj = Gp.copy()
        jconf = np.zeros(T)
        own_ok = np.zeros(T, bool)
        kabsch_ok = np.zeros(T, bool)
        if ch:
            w = use[:, ch].astype(np.float64)
            n_obs = w.sum(1)
            cmin = np.where(use[:, ch], conf[:, ch], np.inf).min(1)
            if len(ch) >= 2:
                Rk, ok = kabsch(rest[ch], obs[:, ch], w)
                kabsch_ok = ok & (n_obs >= 2)
                Gj[kabsch_ok] = Rk[kabsch_ok]
            # single-bone swing (also the fallback when the multi-child fit is degenerate)
            first = np.argmax(use[:, ch], axis=1)
            sw = ~kabsch_ok & (n_obs >= 1)
            if sw.any():
                c_idx = np.asarray(ch)[first[sw]]
                a = np.einsum("tij,tj->ti", Gp[sw], rest[c_idx])
                b = obs[sw, c_idx]
                Gs = swing_matrix(a, b) @ Gp[sw]
                if hinge_twist and len(ch) == 1 and ch[0] in HINGE_FLEX:
                    Gs = _hinge_twist(Gs, ch[0], obs[sw], use[sw], rest)
                Gj[sw] = Gs
            own_ok = kabsch_ok | sw
            jconf = np.where(own_ok, np.where(np.isfinite(cmin), cmin, 0.0), 0.0)
        G[:, j] = Gj
        g_ok[:, j] = kabsch_ok | (own_ok & ~kabsch_ok & gp_ok)
        valid[:, j] = own_ok & gp_ok
        Lj = np.swapaxes(Gp, 1, 2) @ Gj
        L[:, j] = np.where(valid[:, j, None, None], Lj, np.eye(3))
        G[:, j] = np.where(valid[:, j, None, None] | kabsch_ok[:, None, None], Gj, Gp @ L[:, j])
        out_conf[:, j] = jconf * valid[:, j]
    q = Rotation.from_matrix(L.reshape(-1, 3, 3)).as_quat().reshape(T, NUM_JOINTS, 4)
    q = np.where(q[..., 3:4] < 0, -q, q).astype(np.float32)
    return IKFit(q, out_conf.astype(np.float32), valid, G[:, :NUM_JOINTS])


def _hinge_twist(Gs: np.ndarray, c: int, obs: np.ndarray, use: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """Twist ``Gs`` (global of c's parent, already swung onto bone c) about bone c so that the observed
    next bone is reachable by a pure rotation of c about its rest hinge axis ``a = rest_c x flex``.

    A rotation about ``a`` keeps the component of the next bone along ``a``, so the twist ``phi`` solves
    ``(Rot(o_c, phi) Gs a) . o_g = a . rest_g`` (two solutions: the one giving flexion >= -20 deg, then the
    smaller ``|phi|``). Frames where the bend is under :data:`MIN_HINGE_BEND_RAD` keep the plain swing.
    """
    gch = EXT_CHILDREN[c]
    if len(gch) != 1:
        return Gs
    g = gch[0]
    oc, og = obs[:, c], obs[:, g]
    ok = use[:, c] & use[:, g]
    ok &= np.arccos(np.clip((oc * og).sum(-1), -1, 1)) > MIN_HINGE_BEND_RAD
    if not ok.any():
        return Gs
    a = _unit(np.cross(rest[c], np.asarray(HINGE_FLEX[c])))
    k = float(a @ rest[g])
    u = np.einsum("tij,j->ti", Gs, a)
    u_par = (u * oc).sum(-1, keepdims=True) * oc
    u_perp = u - u_par
    A = (u_perp * og).sum(-1)
    B = (np.cross(oc, u_perp) * og).sum(-1)
    Cc = (u_par * og).sum(-1)
    amp = np.maximum(np.hypot(A, B), 1e-12)
    base = np.arctan2(B, A)
    delta = np.arccos(np.clip((k - Cc) / amp, -1.0, 1.0))
    best_phi = np.zeros(len(Gs))
    best_key = np.full(len(Gs), np.inf)
    for phi in (base + delta, base - delta):
        phi = (phi + np.pi) % (2 * np.pi) - np.pi
        R = _axis_angle_matrix(oc, phi) @ Gs
        loc = np.einsum("tji,tj->ti", R, og)  # next bone in c's rest frame
        p_rest = rest[g] - k * a
        p_obs = loc - (loc @ a)[:, None] * a
        theta = np.arctan2((np.cross(p_rest, p_obs) @ a), p_obs @ p_rest)
        key = np.abs(phi) + np.where(theta < -np.deg2rad(20), 10.0, 0.0)
        better = key < best_key
        best_phi = np.where(better, phi, best_phi)
        best_key = np.where(better, key, best_key)
    best_phi = np.where(ok, best_phi, 0.0)
    return _axis_angle_matrix(np.where(ok[:, None], oc, np.array([1.0, 0, 0])), best_phi) @ Gs


def ext_forward_kinematics(rotations: np.ndarray) -> np.ndarray:
    """Positions ``[T, 65, 3]`` (metres) of the extended skeleton (tips included) from ``[T, 55, 4]``
    local rotations, root at its rest position."""
    from .rotations import forward_kinematics

    pos, grot = forward_kinematics(rotations, rest_offsets())
    off = ext_rest_offsets()
    tips = [pos[:, p] + np.einsum("tij,j->ti", grot[:, p], off[NUM_JOINTS + k])
            for k, p in enumerate(EXT_PARENTS[NUM_JOINTS:])]
    return np.concatenate([pos, np.stack(tips, 1)], 1)


def bone_directions(positions: np.ndarray) -> np.ndarray:
    """``[T, 65, 3]`` extended joint positions -> bone vectors ``P[j] - P[parent[j]]`` (root row: NaN)."""
    pos = np.asarray(positions, np.float64)
    out = np.full_like(pos, np.nan)
    par = np.asarray(EXT_PARENTS)
    out[:, 1:] = pos[:, 1:] - pos[:, par[1:]]
    return out


def mediapipe_to_ours(xyz: np.ndarray) -> np.ndarray:
    """MediaPipe world landmarks (x right in the image, y down, z away from the camera; metres) -> ours
    (+X = the subject's left when facing the camera, +Y up, +Z towards the camera): ``(x, -y, -z)``, a
    180 deg rotation about X (handedness kept)."""
    xyz = np.asarray(xyz, np.float64)
    return xyz * np.array([1.0, -1.0, -1.0])


def hand_bone_dirs(hand_world: np.ndarray, side: str) -> dict[int, np.ndarray]:
    """Bone directions of one hand from 21 MediaPipe hand world landmarks ``[T, 21, 3]`` (ours axes).

    Returns ``{extended joint index: [T, 3]}`` for the 15 finger joints and 5 tips of ``side``.
    """
    out = {}
    for f in FINGERS:
        chain = [MP_HAND_WRIST] + [MP_HAND_POINTS[f"{f}{k}"] for k in (1, 2, 3)] + [MP_HAND_POINTS[f"{f}_tip"]]
        names = [f"{side}_{f}{k}" for k in (1, 2, 3)] + [f"{side}_{f}_tip"]
        for a, b, n in zip(chain[:-1], chain[1:], names):
            out[EXT_INDEX[n]] = hand_world[:, b] - hand_world[:, a]
    return out


def torso_rotation(l_sh: np.ndarray, r_sh: np.ndarray, l_hip: np.ndarray | None = None,
                   r_hip: np.ndarray | None = None, hips_ok: np.ndarray | None = None) -> np.ndarray:
    """Global torso rotation ``[T, 3, 3]`` from shoulder (and hip) points ``[T, 3]`` (our axes).

    The rest shoulder line (right -> left shoulder) is aligned with the observed one; where ``hips_ok``
    the rest up vector (hip centre -> shoulder centre) is used as well (Kabsch on both directions),
    otherwise only the shoulder line (swing: yaw and roll, no pitch).
    """
    from .conventions import rest_joint_positions

    P = rest_joint_positions().astype(np.float64)
    J = JOINT_INDEX
    rest_line = _unit(P[J["left_shoulder"]] - P[J["right_shoulder"]])
    rest_up = _unit((P[J["left_shoulder"]] + P[J["right_shoulder"]]) / 2 - (P[J["left_hip"]] + P[J["right_hip"]]) / 2)
    line = _unit(l_sh - r_sh)
    T = len(line)
    R = swing_matrix(np.tile(rest_line, (T, 1)), line)
    if l_hip is not None and hips_ok is not None and np.any(hips_ok):
        up = _unit((l_sh + r_sh) / 2 - (l_hip + r_hip) / 2)
        Rk, ok = kabsch(np.stack([rest_line, rest_up]), np.stack([line, up], 1), np.ones((T, 2)))
        m = ok & hips_ok
        R[m] = Rk[m]
    return R


def split_rotation(R: np.ndarray, n: int) -> np.ndarray:
    """``R^(1/n)`` ``[T, 3, 3]`` (same axis, angle / n); composing ``n`` copies gives ``R``."""
    rv = Rotation.from_matrix(R).as_rotvec() / n
    return Rotation.from_rotvec(rv).as_matrix()
