"""The source portrait and its driving keypoints (ChatAnyone §3.2, explicit facial keypoints).

* :func:`load_portrait`: read an image, detect its face (MediaPipe FaceLandmarker, IMAGE mode), crop the
  largest 2:3 (w:h) rectangle that fits in the image around the face and scale it to the output size
  (default 512 x 768): for an image wider than 2:3 the crop takes the full height and is centred on the face
  horizontally; for a taller one it takes the full width with the face centre at :data:`FACE_Y_FRACTION`
  of the crop height; both clamped to the image. The face is then detected again on the output-size crop.
* :class:`KeypointDriver`: per frame, driving keypoints = the portrait's own landmarks + (model(frame) -
  model(the portrait's own blendshapes and head rotation)), the canonical delta mapped into the image by
  the portrait's head pose (similarity Procrustes, :func:`generator.face_keypoints.canonicalize`), then the
  whole face rotated by the head rotation delta about a pivot behind the face at ear height, and projected
  orthographically (x, y of the image; depth dropped).

Image coordinates are pixels, x right, y down, origin at the top-left pixel's corner.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from motion.errors import ChatAnyoneError

from .face_keypoints import (CHIN, FACE_OVAL, INNER_LIP_LOWER, INNER_LIP_UPPER, FaceKeypointModel,
                             FaceNotFoundError, FaceObservation, canonicalize, create_face_landmarker,
                             detect_face, image_to_ours)

OUTPUT_SIZE = (512, 768)  # (width, height) pixels
FACE_Y_FRACTION = 0.3
#: Pivot of head rotations: at the height of the ear landmarks (234, 454), behind the face centre by this
#: many outer eye-corner distances.
PIVOT_DEPTH = 1.0
#: Largest head rotation delta applied by the 2D warp (degrees); larger ones are scaled down to it.
MAX_HEAD_DEG = 20.0
EARS = (234, 454)


class PortraitError(ChatAnyoneError):
    """The portrait image cannot be read."""


@dataclass
class Portrait:
    """A source portrait, cropped and scaled to the output size.

    Attributes:
        image: ``[H, W, 3]`` uint8 RGB at the output size.
        face: the face detected on ``image`` (pixel units of ``image``).
        crop: ``(x0, y0, width, height)`` of the crop in the original image (pixels).
        path: the source file.
    """

    image: np.ndarray
    face: FaceObservation
    crop: tuple[int, int, int, int]
    path: Path


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file (png/jpg/webp/...) as ``[H, W, 3]`` uint8 RGB (alpha composited on white).

    Raises:
        PortraitError: missing, a folder, or not a decodable image.
    """
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.exists():
        raise PortraitError(f"portrait {p}: no such file")
    if p.is_dir():
        raise PortraitError(f"portrait {p} is a folder, not an image")
    try:
        with Image.open(p) as im:
            im.load()
            if im.mode in ("RGBA", "LA", "P"):
                im = im.convert("RGBA")
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, im)
            arr = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise PortraitError(f"portrait {p} is not a readable image ({e.__class__.__name__})") from None
    if min(arr.shape[:2]) < 16:
        raise PortraitError(f"portrait {p} is too small ({arr.shape[1]}x{arr.shape[0]} pixels)")
    return np.ascontiguousarray(arr)


def crop_box(width: int, height: int, face_center: tuple[float, float], aspect: float = OUTPUT_SIZE[0] / OUTPUT_SIZE[1]
             ) -> tuple[int, int, int, int]:
    """The largest ``aspect`` (w/h) rectangle inside a ``width x height`` image placed around the face
    (see the module docstring). Returns ``(x0, y0, w, h)`` in pixels."""
    cx, cy = face_center
    if width / height >= aspect:
        h = height
        w = min(width, int(round(h * aspect)))
        x0 = int(round(np.clip(cx - w / 2, 0, width - w)))
        return x0, 0, w, h
    w = width
    h = min(height, int(round(w / aspect)))
    y0 = int(round(np.clip(cy - FACE_Y_FRACTION * h, 0, height - h)))
    return 0, y0, w, h


def load_portrait(path: str | os.PathLike, size: tuple[int, int] = OUTPUT_SIZE, landmarker=None) -> Portrait:
    """Read, detect, crop and scale a portrait (module docstring).

    Raises:
        PortraitError: unreadable image. FaceNotFoundError: ``no face detected in PORTRAIT``.
    """
    import cv2

    p = Path(path)
    img = read_image(p)
    own = landmarker is None
    lmk = create_face_landmarker("image") if own else landmarker
    try:
        obs = detect_face(img, lmk)
        if obs is None:
            raise FaceNotFoundError(f"no face detected in {p}")
        c = obs.landmarks[:, :2].mean(0)
        x0, y0, w, h = crop_box(img.shape[1], img.shape[0], (float(c[0]), float(c[1])), size[0] / size[1])
        crop = img[y0:y0 + h, x0:x0 + w]
        interp = cv2.INTER_AREA if w > size[0] else cv2.INTER_CUBIC
        out = np.ascontiguousarray(cv2.resize(crop, size, interpolation=interp))
        face = detect_face(out, lmk)
        if face is None:
            raise FaceNotFoundError(f"no face detected in {p} (the face is too small after cropping to "
                                    f"{size[0]}x{size[1]})")
    finally:
        if own:
            lmk.close()
    return Portrait(out, face, (x0, y0, w, h), p)


@dataclass
class DrivingFrames:
    """Driving keypoints for ``T`` frames.

    Attributes:
        points: ``[T, K, 2]`` float32 image pixels (x right, y down), in the model's ``indices`` order.
        head_affine: ``[T, 2, 3]`` float32: the 2D affine map (source pixels -> frame pixels) of the head's
            rigid motion alone (least squares over the keypoints), for points around the face (hair, ears).
    """

    points: np.ndarray
    head_affine: np.ndarray


def head_rotation_deltas(rotations: np.ndarray, max_deg: float = MAX_HEAD_DEG) -> np.ndarray:
    """Camera-frame head rotation deltas ``[T, 3, 3]`` from a clip's ``rotations [T, 55, 4]`` (xyzw).

    The head orientation is neck * head (local rotations; the spine is taken as static: the warp engine
    does not move the body). Deltas are relative to the clip's mean head orientation, so that the portrait
    keeps its own pose on average: ``D_t = R_t R_mean^-1`` (ours axes = camera axes: the avatar faces the
    camera). Rotations larger than ``max_deg`` are scaled down to it.
    """
    from motion.conventions import JOINT_INDEX

    q = np.asarray(rotations, np.float64)
    R = Rotation.from_quat(q[:, JOINT_INDEX["neck"]]) * Rotation.from_quat(q[:, JOINT_INDEX["head"]])
    D = R * R.mean().inv()
    rv = D.as_rotvec()
    ang = np.linalg.norm(rv, axis=1, keepdims=True)
    lim = np.deg2rad(max_deg)
    rv = np.where(ang > lim, rv * lim / np.maximum(ang, 1e-12), rv)
    return Rotation.from_rotvec(rv).as_matrix()


def _fit_affine(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares 2D affine ``[2, 3]`` with ``dst ~ A @ [src, 1]``."""
    X = np.concatenate([src, np.ones((len(src), 1))], 1)
    A, *_ = np.linalg.lstsq(X, dst, rcond=None)
    return A.T


class KeypointDriver:
    """Driving keypoints on a portrait from face motion (module docstring).

    Args:
        model: the fitted :class:`~generator.face_keypoints.FaceKeypointModel`.
        face: the portrait's detected face (pixel units of the output-size portrait).
    """

    def __init__(self, model: FaceKeypointModel, face: FaceObservation) -> None:
        self.model = model
        self.face = face
        idx = model.indices
        _, self.pose = canonicalize(face.landmarks, model.template_rigid.astype(np.float64))
        self.src3 = image_to_ours(face.landmarks[idx])  # [K, 3] ours axes, pixels
        self.src2 = face.landmarks[idx, :2].astype(np.float64)
        self.R_src = Rotation.from_matrix(face.head)
        self.ref = model.predict(face.blendshapes[None], self.R_src.as_rotvec()[None])[0]
        ears = image_to_ours(face.landmarks[list(EARS)]).mean(0)
        centre = self.src3.mean(0)
        self.pivot = np.array([centre[0], ears[1], centre[2] - PIVOT_DEPTH * self.pose.scale])
        self.inner_upper = model.local(INNER_LIP_UPPER[1:-1])
        self.inner_lower = model.local(INNER_LIP_LOWER[1:-1])

    def canonical_offsets(self, face: np.ndarray, head: np.ndarray) -> np.ndarray:
        """Model(frame) - model(portrait) in image-space ours axes (pixels): ``[T, K, 3]``."""
        r = (Rotation.from_matrix(head) * self.R_src).as_rotvec()
        delta = self.model.predict(face, r) - self.ref
        return self.pose.scale * delta @ self.pose.R.T

    def __call__(self, face: np.ndarray, head: np.ndarray) -> DrivingFrames:
        """``face [T, 52]`` ARKit weights, ``head [T, 3, 3]`` rotation deltas -> :class:`DrivingFrames`."""
        face = np.atleast_2d(np.asarray(face, np.float64))
        head = np.asarray(head, np.float64).reshape(-1, 3, 3)
        Q = self.src3[None] + self.canonical_offsets(face, head) - self.pivot
        Q = np.einsum("tij,tkj->tki", head, Q) + self.pivot
        pts = Q[..., :2] * np.array([1.0, -1.0])
        # the lower inner lip never crosses above the upper one (a flipped triangle would fold the warp)
        up, lo = pts[:, self.inner_upper, 1], pts[:, self.inner_lower, 1]
        cross = lo < up
        mid = (up + lo) / 2
        pts[:, self.inner_upper, 1] = np.where(cross, mid, up)
        pts[:, self.inner_lower, 1] = np.where(cross, mid, lo)
        rigid = np.einsum("tij,kj->tki", head, self.src3 - self.pivot) + self.pivot
        rigid2 = rigid[..., :2] * np.array([1.0, -1.0])
        aff = np.stack([_fit_affine(self.src2, r) for r in rigid2])
        return DrivingFrames(pts.astype(np.float32), aff.astype(np.float32))

    def open_mouth_reference(self, jaw_open: float = 0.6) -> np.ndarray:
        """Keypoints ``[K, 2]`` with the jaw opened by ``jaw_open`` more than the portrait's own, at its head
        pose: used to triangulate (inner lips apart, so no triangle collapses in the topology)."""
        f = self.face.blendshapes[None].astype(np.float64).copy()
        from motion.conventions import ARKIT_INDEX
        f[0, ARKIT_INDEX["jawOpen"]] = min(1.0, f[0, ARKIT_INDEX["jawOpen"]] + jaw_open)
        f[0, ARKIT_INDEX["mouthClose"]] = 0.0
        pts = self(f, np.eye(3)[None]).points[0].astype(np.float64)
        # make sure the inner lips are clearly apart in the reference whatever the model says
        w = np.linalg.norm(self.src2[self.model.local([INNER_LIP_UPPER[0]])[0]]
                           - self.src2[self.model.local([INNER_LIP_UPPER[-1]])[0]])
        need = max(0.0, 0.2 * w - float(np.min(pts[self.inner_lower, 1] - pts[self.inner_upper, 1])))
        if need > 0:  # move everything below the upper inner lip down together (keeps the ordering)
            below = pts[:, 1] > pts[self.inner_upper, 1].max() + 1e-3
            below[self.inner_upper] = False
            below[self.inner_lower] = True
            pts[below, 1] += need
        return pts


__all__ = ["OUTPUT_SIZE", "Portrait", "PortraitError", "FaceNotFoundError", "read_image", "crop_box",
           "load_portrait", "KeypointDriver", "DrivingFrames", "head_rotation_deltas", "CHIN", "FACE_OVAL"]
