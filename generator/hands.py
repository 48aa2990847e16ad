"""Hand control images (ChatAnyone §3.3): the two hands drawn as skeleton maps at the output resolution.

Per frame, the finger joints of the motion are placed by **forward kinematics** of our skeleton
(:func:`motion.rotations.forward_kinematics` on :mod:`motion.landmark_ik`'s extended skeleton: the 55 SMPL-X
joints of :mod:`motion.conventions` plus the 10 finger tips, rest offsets
:func:`motion.landmark_ik.ext_rest_offsets`; the root is locked, as in every MotionClip), projected into the
portrait by an orthographic camera (:class:`HandCamera`) and drawn as lines (bones) and discs (joints).

Camera: fitted to the portrait's detected face: the skeleton's rest-pose eye joints (``left_eye_smplhf``,
``right_eye_smplhf``, 62 mm apart) are mapped onto the portrait's two iris centres (MediaPipe face
landmarks 468 and 473), which fixes the scale (pixels per metre) and the offset; world +X (the avatar's
left) is image right, world +Y (up) is image up, depth is dropped. The portrait's own arm pose is not
detected, so hands land where the skeleton puts them relative to the face.

Output of :meth:`HandControl.maps`: ``[T, 2, H, W]`` uint8 (0 or up to 255, anti-aliased), channel 0 the
subject's **left** hand, channel 1 the right; a hand whose joints are not valid in a frame (``joint_valid``
of a prepared clip) is left empty. The neural generator (:mod:`generator.neural`) injects these maps into
its decoder.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from motion.conventions import JOINT_INDEX, LEFT_HAND_JOINTS, RIGHT_HAND_JOINTS, NUM_JOINTS
from motion.landmark_ik import EXT_INDEX, EXT_PARENTS, FINGERS, NUM_EXT, ext_rest_offsets
from motion.rotations import forward_kinematics

from .face_keypoints import FaceObservation

#: MediaPipe face landmarks at the two iris centres (478-point model: 468 and 473).
IRIS_CENTRES = (468, 473)
EYE_JOINTS = (JOINT_INDEX["left_eye_smplhf"], JOINT_INDEX["right_eye_smplhf"])
SIDES = ("left", "right")
#: Extended-skeleton joints of one hand in drawing order: wrist, then per finger (MANO order) joints 1-3
#: and the tip: 21 points, the same count and meaning as MediaPipe's hand landmarks (different order).
HAND_POINTS: dict[str, tuple[int, ...]] = {
    s: (EXT_INDEX[f"{s}_wrist"],) + tuple(EXT_INDEX[f"{s}_{f}{k}"] for f in FINGERS for k in ("1", "2", "3"))
    + tuple(EXT_INDEX[f"{s}_{f}_tip"] for f in FINGERS) for s in SIDES}
#: Bones of one hand as ``(parent, child)`` positions in :data:`HAND_POINTS` order (from the skeleton's parents).
HAND_BONES: tuple[tuple[int, int], ...] = tuple(
    (HAND_POINTS["left"].index(EXT_PARENTS[j]), k) for k, j in enumerate(HAND_POINTS["left"]) if k > 0)
BONE_WIDTH_M = 0.012  # drawn bone thickness, metres (about a finger's width)
JOINT_RADIUS_M = 0.008


@dataclass
class HandCamera:
    """Orthographic camera: ``x = cx + scale * (X - ref_x)``, ``y = cy - scale * (Y - ref_y)`` (pixels).

    Attributes:
        scale: pixels per metre. centre: ``(cx, cy)`` pixel where ``ref`` lands. ref: ``[3]`` metres (world).
    """

    scale: float
    centre: tuple[float, float]
    ref: np.ndarray

    def project(self, p: np.ndarray) -> np.ndarray:
        """World points ``[..., 3]`` metres -> image ``[..., 2]`` float64 pixels (x right, y down)."""
        p = np.asarray(p, np.float64)
        x = self.centre[0] + self.scale * (p[..., 0] - self.ref[0])
        y = self.centre[1] - self.scale * (p[..., 1] - self.ref[1])
        return np.stack([x, y], -1)


def ext_rotations(rotations: np.ndarray) -> np.ndarray:
    """``[T, 55, 4]`` xyzw local rotations -> ``[T, 65, 4]`` with identity for the 10 finger tips."""
    q = np.asarray(rotations, np.float64)
    tips = np.zeros(q.shape[:1] + (NUM_EXT - NUM_JOINTS, 4))
    tips[..., 3] = 1.0
    return np.concatenate([q, tips], 1)


def skeleton_positions(rotations: np.ndarray) -> np.ndarray:
    """World joint positions ``[T, 65, 3]`` float64 metres of the extended skeleton (root locked)."""
    pos, _ = forward_kinematics(ext_rotations(rotations), ext_rest_offsets(), EXT_PARENTS)
    return pos


def fit_camera(face: FaceObservation) -> HandCamera:
    """The camera that puts the rest-pose eye joints on the portrait's iris centres (module docstring)."""
    rest = skeleton_positions(np.tile([0.0, 0.0, 0.0, 1.0], (1, NUM_JOINTS, 1)))[0]
    eyes_w = rest[list(EYE_JOINTS)]
    eyes_px = np.asarray(face.landmarks, np.float64)[list(IRIS_CENTRES), :2]
    scale = float(np.linalg.norm(eyes_px[0] - eyes_px[1]) / np.linalg.norm(eyes_w[0, :2] - eyes_w[1, :2]))
    c = eyes_px.mean(0)
    return HandCamera(scale, (float(c[0]), float(c[1])), eyes_w.mean(0))


def draw_hands(points: np.ndarray, size: tuple[int, int], scale: float, valid=(True, True)) -> np.ndarray:
    """Draw two hands: ``points [2, 21, 2]`` pixels (left, right; :data:`HAND_POINTS` order) ->
    ``[2, H, W]`` uint8 maps for ``size = (W, H)``; line width :data:`BONE_WIDTH_M` x ``scale`` px (>= 1)."""
    import cv2

    W, H = size
    out = np.zeros((2, H, W), np.uint8)
    sh = 4  # fractional bits of the drawing coordinates
    w = max(1, int(round(BONE_WIDTH_M * scale)))
    r = max(1, int(round(JOINT_RADIUS_M * scale)))
    for s in range(2):
        if not valid[s]:
            continue
        p = np.asarray(points[s], np.float64)
        if not np.isfinite(p).all():
            continue
        q = np.round(p * (1 << sh)).astype(np.int64)
        # skip what is far outside the image (cv2 clips lines, but huge coordinates overflow)
        if np.abs(q).max() > (1 << 28):
            continue
        img = np.zeros((H, W), np.uint8)
        for a, b in HAND_BONES:
            cv2.line(img, tuple(int(v) for v in q[a]), tuple(int(v) for v in q[b]), 255, w, cv2.LINE_AA, sh)
        for k in range(len(q)):
            cv2.circle(img, tuple(int(v) for v in q[k]), r << sh, 255, -1, cv2.LINE_AA, sh)
        out[s] = img
    return out


class HandControl:
    """Hand control images for a portrait (module docstring).

    Args:
        face: the portrait's detected face (pixel units of the output-size image).
        size: ``(width, height)`` of the maps (the output size, 512 x 768).
    """

    def __init__(self, face: FaceObservation, size: tuple[int, int]) -> None:
        self.size = size
        self.camera = fit_camera(face)

    def points(self, rotations: np.ndarray) -> np.ndarray:
        """Projected hand points ``[T, 2, 21, 2]`` float64 pixels (left, right) for ``rotations [T, 55, 4]``."""
        pos = skeleton_positions(rotations)
        return np.stack([self.camera.project(pos[:, list(HAND_POINTS[s])]) for s in SIDES], 1)

    def maps(self, rotations: np.ndarray, joint_valid: np.ndarray | None = None) -> np.ndarray:
        """``[T, 2, H, W]`` uint8 hand maps; ``joint_valid [T, 55]`` bool (optional) hides a hand in frames
        where any of its finger joints or its wrist is not valid."""
        pts = self.points(rotations)
        T = len(pts)
        if joint_valid is None:
            valid = np.ones((T, 2), bool)
        else:
            jv = np.asarray(joint_valid, bool)
            valid = np.stack([jv[:, list(LEFT_HAND_JOINTS) + [JOINT_INDEX["left_wrist"]]].all(1),
                              jv[:, list(RIGHT_HAND_JOINTS) + [JOINT_INDEX["right_wrist"]]].all(1)], 1)
        return np.stack([draw_hands(pts[t], self.size, self.camera.scale, valid[t]) for t in range(T)])


__all__ = ["HandCamera", "HandControl", "HAND_POINTS", "HAND_BONES", "IRIS_CENTRES", "fit_camera",
           "draw_hands", "skeleton_positions"]
