"""Motion-quality metrics of the co-speech gesture literature, on ``MotionClip`` rotations.

Positions come from forward kinematics of our rest skeleton (:func:`motion.conventions.rest_offsets`,
metres). Sources:

* **Beat consistency (BC)**: Li et al., *AI Choreographer* (2021) and Liu et al., *BEAT* (2022) /
  *EMAGE* (2024): for each audio onset, ``exp(-d^2 / (2 sigma^2))`` with ``d`` the distance (seconds) to the
  nearest motion beat; averaged over onsets. Motion beats are local minima of the mean joint speed
  (``scipy.signal.argrelextrema``, order 2 frames) whose neighbourhood moves (speed above the 10th
  percentile); audio onsets from ``librosa.onset.onset_detect``. EMAGE uses ``sigma = 0.3`` s; we report it.
* **L1 diversity**: EMAGE's ``L1div``: mean over frames of the L1 distance of the joint positions (metres,
  all coordinates summed) to the clip's mean pose.
* **Jerk**: mean norm of the third finite difference of joint positions, in m/s^3.
* **Hellinger distance** between histograms of joint angular speed (rad/s, 0-12 in 48 bins):
  ``sqrt(1 - sum(sqrt(p q)))``, 0 = identical distributions, 1 = disjoint.
* **Seam ratio**: jerk at window joins / jerk elsewhere (1 = joins are invisible).
"""
from __future__ import annotations

import numpy as np
from scipy.signal import argrelextrema

from .conventions import JOINT_INDEX, SAMPLE_RATE, SMPLX_PARENTS, rest_offsets
from .rotations import forward_kinematics

#: Joints whose positions the body metrics use: arms and hands (the gesture joints). SMPL-X names.
GESTURE_JOINTS = ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
                  "left_index1", "right_index1", "left_middle3", "right_middle3", "left_thumb3", "right_thumb3")
BC_SIGMA_S = 0.3
SPEED_BINS = np.linspace(0.0, 12.0, 49)


def joint_positions(rotations: np.ndarray, joints=GESTURE_JOINTS) -> np.ndarray:
    """``[T, 55, 4]`` local quaternions -> ``[T, len(joints), 3]`` positions in metres (root at rest)."""
    pos, _ = forward_kinematics(np.asarray(rotations, np.float64), rest_offsets(), SMPLX_PARENTS)
    return pos[:, [JOINT_INDEX[n] for n in joints]]


def motion_beats(positions: np.ndarray, fps: float) -> np.ndarray:
    """Times (s) of motion beats: local minima of the mean joint speed ``[T-1]`` in moving stretches."""
    speed = np.linalg.norm(np.diff(positions, axis=0), axis=-1).mean(1) * fps
    if len(speed) < 5 or speed.max() < 1e-6:
        return np.zeros(0)
    mins = argrelextrema(speed, np.less, order=2)[0]
    floor = np.percentile(speed, 10)
    keep = [i for i in mins if speed[max(0, i - 5):i + 6].max() > floor + 1e-3]
    return (np.asarray(keep, float) + 0.5) / fps


def audio_onsets(audio: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Onset times (s) of 16 kHz mono ``audio`` (``librosa.onset.onset_detect``, 10 ms hop)."""
    import librosa
    return librosa.onset.onset_detect(y=np.asarray(audio, np.float32), sr=sr, hop_length=160, units="time")


def beat_consistency(onsets_s: np.ndarray, beats_s: np.ndarray, sigma: float = BC_SIGMA_S) -> float:
    """BC in [0, 1] (see module docstring); 0 when there are no motion beats."""
    if len(onsets_s) == 0:
        return float("nan")
    if len(beats_s) == 0:
        return 0.0
    d = np.abs(np.asarray(onsets_s)[:, None] - np.asarray(beats_s)[None, :]).min(1)
    return float(np.exp(-d ** 2 / (2 * sigma ** 2)).mean())


def l1_diversity(positions: np.ndarray) -> float:
    """EMAGE L1div of ``[T, J, 3]`` positions (metres)."""
    flat = positions.reshape(len(positions), -1)
    return float(np.abs(flat - flat.mean(0)).sum(1).mean())


def jerk(positions: np.ndarray, fps: float) -> np.ndarray:
    """``[T-3]`` mean joint jerk (m/s^3) per frame."""
    return np.linalg.norm(np.diff(positions, n=3, axis=0), axis=-1).mean(1) * fps ** 3


def speed_histogram(ang_speed: np.ndarray) -> np.ndarray:
    """Normalised histogram of angular speeds (rad/s) over :data:`SPEED_BINS` (values above clipped)."""
    h, _ = np.histogram(np.clip(np.ravel(ang_speed), 0, SPEED_BINS[-1] - 1e-9), bins=SPEED_BINS)
    return h / max(h.sum(), 1)


def hellinger(p: np.ndarray, q: np.ndarray) -> float:
    """Hellinger distance of two normalised histograms, in [0, 1]."""
    return float(np.sqrt(max(0.0, 1.0 - np.sum(np.sqrt(p * q)))))


def seam_ratio(positions: np.ndarray, fps: float, seams: list[int], radius: int = 2) -> float:
    """Mean jerk near the seams / mean jerk elsewhere (1 = the seams are invisible).

    A seam at frame ``s`` (a switch between frames ``s - 1`` and ``s``) reaches the jerk values
    ``j[s - 3] .. j[s - 1]`` (third differences span 4 frames); "near" is those widened by ``radius`` on
    each side. ``positions`` ``[T, ...]``; returns nan when near covers more than 60 % of the frames
    (seams too dense for this radius: nothing left to compare with, e.g. the 6-frame streaming hops need
    ``radius=0``).
    """
    j = jerk(positions, fps)
    near = np.zeros(len(j), bool)
    for s in seams:
        near[max(0, s - radius - 3):min(len(j), s + radius)] = True
    if not near.any() or near.mean() > 0.6:
        return float("nan")
    return float(j[near].mean() / max(j[~near].mean(), 1e-12))


def jerk_phase_profile(positions: np.ndarray, fps: float, period: int, offset: int = 0) -> np.ndarray:
    """``[period]`` mean jerk at each phase of a periodic process (jerk index ``i`` has phase
    ``(i - offset) mod period``) / the mean jerk: a periodic artifact, such as a streaming hop, shows as
    one phase well above 1."""
    j = jerk(positions, fps)
    ph = (np.arange(len(j)) - offset) % period
    prof = np.array([j[ph == k].mean() for k in range(period)])
    return prof / max(j.mean(), 1e-12)
