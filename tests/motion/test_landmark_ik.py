"""Landmark -> rotation fitting (motion.landmark_ik): exact on synthetic data, FK round trip on BEAT2 poses."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from motion.conventions import JOINT_INDEX, NUM_JOINTS
from motion.landmark_ik import (EXT_INDEX, HINGE_FLEX, NUM_EXT, ext_rest_offsets, bone_directions, ext_forward_kinematics, fit_rotations,
                                kabsch, swing_matrix)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real data folder {DATA} is absent (a user's clone has no ../shared)")


def _angle(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    return (Rotation.from_quat(q1.reshape(-1, 4)).inv() * Rotation.from_quat(q2.reshape(-1, 4))).magnitude()


def test_swing_and_kabsch_are_exact():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 3))
    b = rng.normal(size=(50, 3))
    b[0] = -a[0]  # antiparallel case
    R = swing_matrix(a, b)
    got = np.einsum("tij,tj->ti", R, a / np.linalg.norm(a, axis=1, keepdims=True))
    np.testing.assert_allclose(got, b / np.linalg.norm(b, axis=1, keepdims=True), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-9)
    Rt = Rotation.random(20, random_state=1).as_matrix()
    rest = rng.normal(size=(4, 3))
    obs = np.einsum("tij,cj->tci", Rt, rest)
    Rk, ok = kabsch(rest, obs, np.ones((20, 4)))
    assert ok.all()
    np.testing.assert_allclose(Rk, Rt, atol=1e-9)


def test_unobserved_joints_are_masked_not_invented():
    T = 3
    fit = fit_rotations(np.full((T, NUM_EXT, 3), np.nan), np.zeros((T, NUM_EXT)))
    assert not fit.valid.any()
    np.testing.assert_allclose(fit.rotations[..., 3], 1.0)
    # a low-confidence bone is ignored too
    d = np.full((T, NUM_EXT, 3), np.nan)
    d[:, EXT_INDEX["left_wrist"]] = (0.0, -1.0, 0.0)
    c = np.zeros((T, NUM_EXT))
    c[:, EXT_INDEX["left_wrist"]] = 0.2
    assert not fit_rotations(d, c, min_confidence=0.5).valid.any()


def test_hinge_twist_recovers_shoulder_twist():
    """Shoulder rotation with twist + pure elbow flexion: the hinge rule recovers both exactly."""
    T = 40
    rng = np.random.default_rng(3)
    q = np.zeros((T, NUM_JOINTS, 4))
    q[..., 3] = 1
    sh, el = JOINT_INDEX["left_shoulder"], JOINT_INDEX["left_elbow"]
    q[:, sh] = Rotation.from_rotvec(rng.uniform(-0.8, 0.8, (T, 3))).as_quat()
    flex = rng.uniform(0.4, 1.8, T)  # elbow flexion about the rest hinge axis (about -Y for the left arm)
    rest_upper = ext_rest_offsets()[el]
    axis = np.cross(rest_upper, HINGE_FLEX[el])
    q[:, el] = Rotation.from_rotvec(np.outer(flex, axis / np.linalg.norm(axis))).as_quat()
    P = ext_forward_kinematics(q.astype(np.float32))
    d = np.full((T, NUM_EXT, 3), np.nan)
    for n in ("left_elbow", "left_wrist"):
        d[:, EXT_INDEX[n]] = bone_directions(P)[:, EXT_INDEX[n]]
    overrides = {j: (np.tile(np.eye(3), (T, 1, 1)), np.ones(T, bool), np.ones(T))
                 for j in (0, 3, 6, 9, JOINT_INDEX["left_collar"])}
    fit = fit_rotations(d, np.ones((T, NUM_EXT)), local_overrides=overrides, hinge_twist=True)
    assert fit.valid[:, [sh, el]].all()
    assert np.degrees(_angle(fit.rotations[:, sh], q[:, sh])).max() < 0.1
    # the elbow's own twist (forearm pronation) is not determined by the wrist position: the fit may only
    # differ from the truth by a rotation about the forearm bone
    err = (Rotation.from_quat(fit.rotations[:, el]).inv() * Rotation.from_quat(q[:, el])).as_rotvec()
    fore = ext_rest_offsets()[JOINT_INDEX["left_wrist"]]
    assert np.linalg.norm(np.cross(err, fore / np.linalg.norm(fore)), axis=1).max() < 1e-4


@needs_data
def test_fk_of_fitted_beat2_rotations_reproduces_positions():
    """Synthetic landmarks = FK of BEAT2 rotations on our skeleton (finger tips included); FK of the fit
    must land within 1 cm of every joint (root orientation included, i.e. lock_root=False)."""
    from motion.datasets import beat2_rotations

    with np.load(DATA / "beat2" / "2_scott_0_1_1.smplxflame30.npz") as z:
        q = beat2_rotations(z["poses"][::4], lock_root=False)
    P = ext_forward_kinematics(q)
    fit = fit_rotations(bone_directions(P), np.ones(P.shape[:2]))
    P2 = ext_forward_kinematics(fit.rotations)
    err = np.linalg.norm(P2 - P, axis=-1)
    assert err.max() < 0.01, err.max()
    # every joint with a child bone is valid; leaves without children (jaw, eyes, feet) are masked
    body = [JOINT_INDEX[n] for n in ("spine1", "spine3", "left_shoulder", "right_elbow", "left_wrist",
                                      "right_index3", "left_thumb3")]
    assert fit.valid[:, body].all()
    assert not fit.valid[:, JOINT_INDEX["jaw"]].any()
