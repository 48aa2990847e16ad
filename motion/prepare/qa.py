"""Quality checks and what is recorded about each prepared clip: the A/V lag of a jaw signal against the
audio (and the ``--fix-sync`` shift), the real channels, and the contact sheet PNG."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..clip import MotionClip
from ..conventions import ARKIT_INDEX, ARKIT_NAMES, JOINT_INDEX, SMPLX_JOINT_NAMES
from .common import FPS, MAX_LAG_FRAMES, Prepared


def sync_qa(jaw: np.ndarray, jaw_valid: np.ndarray, audio: np.ndarray) -> dict[str, Any]:
    """Lag of a jaw signal against the audio's log energy (:func:`motion.evaluate.pearson_best_lag`).

    Returns ``{"r_lag0", "r_best", "lag_frames"}``; positive lag: the motion is late by that many frames.
    Invalid jaw frames are filled with the median of the valid ones.
    """
    from ..evaluate import log_energy, pearson_best_lag

    T = len(jaw)
    e = log_energy(audio, T)
    x = np.asarray(jaw, np.float64).copy()
    if jaw_valid.any():
        x[~jaw_valid] = np.median(x[jaw_valid])
    r0, rb, lag = pearson_best_lag(x, e, max_lag=MAX_LAG_FRAMES)
    return {"r_lag0": round(float(r0), 4), "r_best": round(float(rb), 4), "lag_frames": int(lag)}


def shift_motion(p: Prepared, lag: int) -> Prepared:
    """Shift motion by ``lag`` frames (positive: motion was late -> moved earlier). Frames with no data
    after the shift hold the edge value and are masked out."""
    if lag == 0:
        return p
    T = p.clip.num_frames
    idx = np.clip(np.arange(T) + lag, 0, T - 1)
    inside = (np.arange(T) + lag >= 0) & (np.arange(T) + lag < T)
    c = p.clip
    clip = MotionClip(c.fps, c.face[idx], c.rotations[idx], c.translation[idx], dict(c.meta))
    fv = p.face_valid[idx] & inside[:, None]
    jv = p.joint_valid[idx] & inside[:, None]
    curves = {k: (v[idx] if k != "energy" else v) for k, v in p.curves.items()}
    return Prepared(clip, p.audio, fv, jv, p.entry, curves)


def _channels_real(face_valid: np.ndarray, joint_valid: np.ndarray) -> dict[str, Any]:
    fv, jv = face_valid.mean(0), joint_valid.mean(0)
    return {"face": [n for n, v in zip(ARKIT_NAMES, fv) if v >= 0.5],
            "joints": [n for n, v in zip(SMPLX_JOINT_NAMES, jv) if v >= 0.5],
            "rule": "a channel is listed when valid in >= 50% of the frames (per-frame masks in the npz)"}


def head_angles_deg(rotations: np.ndarray) -> np.ndarray:
    """Head yaw/pitch/roll ``[T, 3]`` degrees of neck * head (intrinsic Y, X, Z; yaw + = face's left,
    pitch + = down)."""
    from scipy.spatial.transform import Rotation

    r = Rotation.from_quat(rotations[:, JOINT_INDEX["neck"]]) * Rotation.from_quat(rotations[:, JOINT_INDEX["head"]])
    return np.degrees(r.as_euler("YXZ"))


def contact_sheet(path: Path, title: str, p: Prepared, energy: np.ndarray) -> None:
    """PNG of the extracted curves: jawOpen (or BEAT2 jaw angle) with energy, blinks, head angles,
    log energy. Written to ``path`` (the caller wraps it in :func:`atomic_output`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    T = p.clip.num_frames
    t = np.arange(T) / FPS
    fig, ax = plt.subplots(4, 1, figsize=(12, 8), sharex=True)
    jaw = p.curves.get("jaw", p.clip.face[:, ARKIT_INDEX["jawOpen"]])
    jv = p.face_valid[:, ARKIT_INDEX["jawOpen"]] if "jaw" not in p.curves else np.ones(T, bool)
    ax[0].plot(t, np.where(jv, jaw, np.nan), lw=0.8, label="jaw angle (rad)" if "jaw" in p.curves else "jawOpen")
    ax[0].legend(loc="upper right", fontsize=7)
    for n in ("eyeBlinkLeft", "eyeBlinkRight"):
        i = ARKIT_INDEX[n]
        ax[1].plot(t, np.where(p.face_valid[:, i], p.clip.face[:, i], np.nan), lw=0.8, label=n)
    ax[1].legend(loc="upper right", fontsize=7)
    ang = head_angles_deg(p.clip.rotations)
    hv = p.joint_valid[:, JOINT_INDEX["head"]]
    for k, n in enumerate(("yaw", "pitch", "roll")):
        ax[2].plot(t, np.where(hv, ang[:, k], np.nan), lw=0.8, label=f"head {n} (deg)")
    ax[2].legend(loc="upper right", fontsize=7)
    ax[3].plot(t, energy, lw=0.8, color="k", label="audio log energy")
    ax[3].legend(loc="upper right", fontsize=7)
    ax[3].set_xlabel("seconds")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=80)
    plt.close(fig)
