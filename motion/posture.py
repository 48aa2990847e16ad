"""Standing posture: the captured pelvis orientation, and world-space head pitch and torso lean.

Why this module exists
----------------------
The BEAT2 speaker stands with his pelvis tipped back: the take's global orientation is a near-constant
rotation of about -17 deg about X (mean axis-angle ``(-0.30, 0.04, -0.06)`` rad over the training frames),
and his spine leans forward to compensate, so that chest and head are upright. Our training data lock the
root (:func:`motion.datasets.load_beat2`, identity pelvis) but keep the spine, so the model's raw output
stoops: seen from the side the torso leans 13-15 deg forward and the head is pitched 35-38 deg down.

:func:`upright` (applied by :meth:`motion.inference.MotionGenerator.finish`, so offline and streaming
output alike) puts a constant pelvis orientation on the generated clip: the capture's mean pelvis
orientation (:data:`BEAT2_PELVIS_ROTVEC`) composed with a small correction of the body stage's own mean
posture (:data:`BODY_STAGE_POSTURE_CORRECTION_ROTVEC`, fitted on its training audio: the model's chest is
on average 3-4 deg more stooped than the capture it learned from). Both hip joints are counter-rotated so
the legs keep their world direction (straight down, as in the capture, whose legs compensate the same
way); the root *translation* stays locked; no joint the model generates is changed.
``python -m motion.posture`` refits the correction for a checkpoint and prints the posture table.

Posture measure
---------------
:func:`posture` runs forward kinematics on the rest skeleton (:func:`motion.conventions.rest_offsets`,
SMPL-X proportions, metres) and reports per frame, in the body's heading frame (forward = the pelvis's +Z
projected onto the floor, up = +Y):

* **head pitch** (degrees, > 0 looks down): the angle of the head joint's forward axis (+Z; the rest pose
  looks along +Z) below the horizontal plane, ``atan2(-f_y, |f_xz|)`` (independent of head yaw);
* **torso lean** (degrees, > 0 leans forward): the angle of the pelvis -> neck vector from +Y in the
  sagittal plane (forward, up).

At rest (identity rotations) the head pitch is 0 and the torso lean -5.0 deg (the SMPL-X rest spine
curves back).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from .conventions import JOINT_INDEX, MODEL_FPS, SAMPLE_RATE, SMPLX_PARENTS, rest_offsets
from .rotations import forward_kinematics

#: The BEAT2 capture's mean pelvis orientation (global orientation), axis-angle radians in our axes: the
#: chordal mean (``scipy.spatial.transform.Rotation.mean``) of ``poses[:, 0:3]`` over the body stage's
#: training frames (``2_scott_0_1_1`` and the first 80 % of ``2_scott_0_3_3``; 3533 frames). As intrinsic
#: YXZ Euler angles: yaw 2.7 deg, pitch -16.8 deg (tipped back), roll -4.1 deg.
#: Recomputed from the data by :func:`capture_pelvis_orientation` (tests/motion/test_posture.py).
BEAT2_PELVIS_ROTVEC: tuple[float, float, float] = (-0.295527, 0.036114, -0.064717)
#: Correction of the shipped body stage's mean posture (axis-angle radians, applied at the pelvis after
#: :data:`BEAT2_PELVIS_ROTVEC`): the rotation taking the mean world orientation of spine3 (the chest) in the
#: model's output on its own training audio (BEAT2 ``2_scott_0_1_1`` and the first 80 % of ``0_3_3``,
#: seeds 0 and 1, root locked) to the mean in the root-locked capture of the same frames (chordal means):
#: 5.1 deg (pitch -3.5 deg back, yaw -2.3, roll 2.9). Fitted with ``python -m motion.posture --fit`` on
#: checkpoint 0.4.0 (its body stage, which 0.5.0 reused). It is the fallback for checkpoints that do not
#: store their own (``sampling.posture_correction_rotvec``, :func:`checkpoint_posture_correction`): a body
#: stage trained again stores the fit for itself (:func:`motion.train.add_posture_correction`).
BODY_STAGE_POSTURE_CORRECTION_ROTVEC: tuple[float, float, float] = (-0.062059, -0.038104, 0.049857)


def checkpoint_posture_correction(info: dict) -> tuple[float, float, float]:
    """The posture correction of a checkpoint (``info["sampling"]["posture_correction_rotvec"]``, axis-angle
    radians ``[3]``), else :data:`BODY_STAGE_POSTURE_CORRECTION_ROTVEC`.

    Raises:
        ValueError: a stored value that is not 3 finite numbers.
    """
    v = (info.get("sampling") or {}).get("posture_correction_rotvec")
    if v is None:
        return BODY_STAGE_POSTURE_CORRECTION_ROTVEC
    a = np.asarray(v, np.float64)
    if a.shape != (3,) or not np.isfinite(a).all():
        raise ValueError(f"sampling.posture_correction_rotvec must be 3 finite numbers, got {v!r}")
    return tuple(float(x) for x in a)


_HIPS = (JOINT_INDEX["left_hip"], JOINT_INDEX["right_hip"])


@dataclass
class Posture:
    """Per-frame posture angles of a clip (see the module docstring for the definitions).

    Attributes:
        head_pitch_deg: ``[T]`` float64 degrees, > 0 = the head looks down.
        torso_lean_deg: ``[T]`` float64 degrees, > 0 = the torso (pelvis -> neck) leans forward.
    """

    head_pitch_deg: np.ndarray
    torso_lean_deg: np.ndarray

    @property
    def median_head_pitch_deg(self) -> float:
        return float(np.median(self.head_pitch_deg))

    @property
    def median_torso_lean_deg(self) -> float:
        return float(np.median(self.torso_lean_deg))


def posture(rotations: np.ndarray) -> Posture:
    """Head pitch and torso lean per frame of ``rotations [T, 55, 4]`` (local xyzw quaternions, the
    pelvis's rotation included; translation does not matter).

    Raises:
        ValueError: ``rotations`` is not ``[T, 55, 4]``.
    """
    rot = np.asarray(rotations, np.float64)
    if rot.ndim != 3 or rot.shape[1:] != (len(SMPLX_PARENTS), 4):
        raise ValueError(f"rotations must be [T, {len(SMPLX_PARENTS)}, 4], got {list(rot.shape)}")
    pos, glob = forward_kinematics(rot, rest_offsets(), SMPLX_PARENTS)
    z = np.array([0.0, 0.0, 1.0])
    fwd = glob[:, JOINT_INDEX["pelvis"]] @ z
    fwd[:, 1] = 0.0
    n = np.linalg.norm(fwd, axis=1, keepdims=True)
    fwd = np.where(n > 1e-9, fwd / np.maximum(n, 1e-12), z)     # pelvis facing straight up/down: use +Z
    torso = pos[:, JOINT_INDEX["neck"]] - pos[:, JOINT_INDEX["pelvis"]]
    lean = np.degrees(np.arctan2((torso * fwd).sum(1), torso[:, 1]))
    head = glob[:, JOINT_INDEX["head"]] @ z
    pitch = np.degrees(np.arctan2(-head[:, 1], np.hypot(head[:, 0], head[:, 2])))
    return Posture(pitch, lean)


def capture_pelvis_orientation(global_orient: np.ndarray) -> np.ndarray:
    """Mean pelvis orientation of a capture: ``global_orient [T, 3]`` axis-angle radians (e.g. BEAT2's
    ``poses[:, 0:3]``, frames of several takes concatenated) -> ``[3]`` float64 axis-angle, the chordal
    L2 mean of the rotations (``scipy.spatial.transform.Rotation.mean``).

    Raises:
        ValueError: not ``[T, 3]`` with ``T >= 1``.
    """
    g = np.asarray(global_orient, np.float64)
    if g.ndim != 2 or g.shape[1] != 3 or len(g) == 0:
        raise ValueError(f"global_orient must be [T >= 1, 3], got {list(g.shape)}")
    return Rotation.from_rotvec(g).mean().as_rotvec()


def carry_pelvis(rotations: np.ndarray, pelvis_rotvec=BEAT2_PELVIS_ROTVEC) -> np.ndarray:
    """Give a root-locked clip the capture's pelvis orientation, legs unchanged.

    The pelvis joint's rotation ``Q`` becomes ``P Q`` (``P`` = ``pelvis_rotvec``, default
    :data:`BEAT2_PELVIS_ROTVEC`), which tilts everything above the pelvis (spine, head, arms) about the
    pelvis as the captured speaker stood; each hip's local rotation ``H`` becomes ``(P Q)^-1 Q H`` so the
    legs keep their world orientation. Root translation is not touched (the caller's clip keeps it).

    Args:
        rotations: ``[T, 55, 4]`` local xyzw quaternions (SMPL-X order).
        pelvis_rotvec: ``[3]`` axis-angle radians, in our axes (+Y up, facing +Z).
    Returns:
        A new ``[T, 55, 4]`` float32 array.
    """
    rot = np.array(rotations, dtype=np.float32, copy=True)
    if len(rot) == 0:
        return rot
    P = Rotation.from_rotvec(np.asarray(pelvis_rotvec, np.float64))
    Q = Rotation.from_quat(rot[:, JOINT_INDEX["pelvis"]].astype(np.float64))
    new_q = P * Q
    undo = new_q.inv() * Q
    rot[:, JOINT_INDEX["pelvis"]] = new_q.as_quat()
    for h in _HIPS:
        rot[:, h] = (undo * Rotation.from_quat(rot[:, h].astype(np.float64))).as_quat()
    return rot


def without_pelvis_orientation(rotations: np.ndarray) -> np.ndarray:
    """Undo the constant pelvis orientation :func:`upright` put on generated ``rotations [T, 55, 4]``
    (read from frame 0's pelvis): the root-locked output, legs kept (:func:`carry_pelvis` with its
    inverse). Returns a new float32 array."""
    rot = np.asarray(rotations)
    if len(rot) == 0:
        return np.array(rot, np.float32)
    return carry_pelvis(rot, Rotation.from_quat(rot[0, JOINT_INDEX["pelvis"]]).inv().as_rotvec())


def compose_rotvecs(*rotvecs) -> np.ndarray:
    """``a, b, ...`` axis-angle ``[3]`` -> the axis-angle of ``R(a) R(b) ...`` (``[3]`` float64)."""
    out = Rotation.identity()
    for r in rotvecs:
        out = out * Rotation.from_rotvec(np.asarray(r, np.float64))
    return out.as_rotvec()


def upright_pelvis_rotvec(correction=BODY_STAGE_POSTURE_CORRECTION_ROTVEC) -> np.ndarray:
    """The pelvis orientation :func:`upright` applies: :data:`BEAT2_PELVIS_ROTVEC` then ``correction``
    (``[3]`` float64 axis-angle radians; about -20.5 deg about X with the shipped correction)."""
    return compose_rotvecs(BEAT2_PELVIS_ROTVEC, correction)


def upright(rotations: np.ndarray, correction=BODY_STAGE_POSTURE_CORRECTION_ROTVEC) -> np.ndarray:
    """Generated root-locked ``rotations [T, 55, 4]`` -> standing as the BEAT2 speaker stood
    (:func:`carry_pelvis` with :func:`upright_pelvis_rotvec`). Returns a new float32 array."""
    return carry_pelvis(rotations, upright_pelvis_rotvec(correction))


def _chest_rotations(rotations: np.ndarray) -> Rotation:
    _, glob = forward_kinematics(np.asarray(rotations, np.float64), rest_offsets(), SMPLX_PARENTS)
    return Rotation.from_matrix(glob[:, JOINT_INDEX["spine3"]])


def fit_posture_correction(generated: np.ndarray, captured: np.ndarray) -> np.ndarray:
    """Rotation (axis-angle ``[3]``) taking the mean chest (spine3) world orientation of ``generated``
    to that of ``captured``: both ``[T, 55, 4]`` root-locked rotations (the model's output on audio it was
    trained on, and the capture of the same frames; chordal means, ``Rotation.mean``). See
    :data:`BODY_STAGE_POSTURE_CORRECTION_ROTVEC`."""
    return (_chest_rotations(captured).mean() * _chest_rotations(generated).mean().inv()).as_rotvec()


def main(argv: list[str] | None = None) -> int:
    """``python -m motion.posture [--checkpoint PATH] [--fit]``: generate on the BEAT2 training audio and
    the held-out tail (``2_scott_0_3_3``, last 20 %), print the posture table (median head pitch and torso
    lean of the capture with its pelvis orientation, and of the model's output raw, with the capture's
    pelvis, and upright); ``--fit`` also prints the refitted correction. Takes a few minutes on a CPU."""
    import argparse

    from .audio import load_audio
    from .datasets import beat2_rotations, data_root
    from .inference import MotionGenerator

    ap = argparse.ArgumentParser(prog="python -m motion.posture")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--fit", action="store_true", help="refit the checkpoint's posture correction (printed)")
    ap.add_argument("--seeds", type=int, default=2)
    a = ap.parse_args(argv)
    gen = MotionGenerator(a.checkpoint)
    d = data_root() / "beat2"
    takes = {t: np.load(d / f"{t}.smplxflame30.npz")["poses"] for t in ("2_scott_0_1_1", "2_scott_0_3_3")}
    cut = int(round(len(takes["2_scott_0_3_3"]) * 0.8))          # the training config's holdout_tail 0.2
    spans = {"train": [("2_scott_0_1_1", 0, len(takes["2_scott_0_1_1"])), ("2_scott_0_3_3", 0, cut)],
             "held-out tail": [("2_scott_0_3_3", cut, len(takes["2_scott_0_3_3"]))]}

    def run(span):
        cap, out = [], []
        for take, s, e in span:
            audio = load_audio(d / f"{take}.wav")[int(round(s / MODEL_FPS * SAMPLE_RATE)):int(round(e / MODEL_FPS * SAMPLE_RATE))]
            T = int(round(len(audio) / SAMPLE_RATE * MODEL_FPS))
            cap.append(takes[take][s:s + T])
            for seed in range(a.seeds):
                out.append(gen.generate(audio, seed=seed).rotations)
        return np.concatenate(cap), out

    cap_train, out_train = run(spans["train"])
    correction = np.asarray(gen.posture_correction)
    if a.fit:
        correction = fit_posture_correction(np.concatenate([without_pelvis_orientation(r) for r in out_train]),
                                            beat2_rotations(cap_train))
        print(f"posture correction = {tuple(round(float(v), 6) for v in correction)} "
              f"({np.degrees(np.linalg.norm(correction)):.1f} deg)")
    cap_tail, out_tail = run(spans["held-out tail"])
    print(f"checkpoint {gen.version}; median head pitch / torso lean (deg; > 0 = down / forward)")
    for name, cap, outs in (("train", cap_train, out_train), ("held-out tail", cap_tail, out_tail)):
        rows = [("BEAT2 capture with its pelvis orientation", [beat2_rotations(cap, lock_root=False)]),
                ("BEAT2 capture, root locked", [beat2_rotations(cap)]),
                ("model, root locked (raw)", [without_pelvis_orientation(r) for r in outs]),
                ("model + capture pelvis", [carry_pelvis(without_pelvis_orientation(r)) for r in outs]),
                ("model, upright (shipped)", [upright(without_pelvis_orientation(r), correction) for r in outs])]
        for label, rots in rows:
            ps = [posture(r) for r in rots]
            print(f"{name:14s} {label:42s} " + "  ".join(f"{p.median_head_pitch_deg:5.1f} / {p.median_torso_lean_deg:5.1f}"
                                                         for p in ps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
