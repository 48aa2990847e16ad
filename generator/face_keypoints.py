"""Explicit facial keypoints from face motion: (ARKit weights, head rotation) -> canonical 3D face landmarks.

ChatAnyone §3.2 drives its portrait generator with explicit facial keypoints. We obtain them from our
motion with a linear (ridge) model fitted on real talking videos tracked by **MediaPipe Tasks**'
FaceLandmarker, which gives per frame 478 landmarks, 52 blendshape scores in ARKit names (51 + ``_neutral``;
no ``tongueOut``) and a 4x4 facial transformation matrix.

Conventions
-----------
* **Tracked landmarks** (:class:`FaceObservation`, :class:`FaceTrack`) are in *image pixel units*:
  ``(x * W, y * H, z * W)`` from MediaPipe's normalised landmarks (x right, y down, z away from the camera,
  z on the same scale as x).
* **Canonical landmarks** are head-pose-removed 3D points in *ours axes* (+X the subject's left = image
  right, +Y up, +Z towards the camera; :func:`motion.landmark_ik.mediapipe_to_ours`), centred on the rigid
  points' centroid, rotated and scaled onto the model's template by a similarity Procrustes fit over
  :data:`RIGID_POINTS` (Umeyama 1991). The unit is the **outer eye-corner distance** (landmarks 33-263) of
  the template = 1.0 (an adult's is about 90 mm: :data:`EYE_CORNER_MM`, an assumption used only to quote
  errors in mm).
* **Head rotation** features are the rotation vector (radians, ours axes) of the orthonormalised 3x3 part of
  MediaPipe's facial transformation matrix (:mod:`motion.tracking`, as ``chatanyone prepare``; frontal =
  identity).
* Only a subset of the 478 landmarks is modelled (:data:`KEYPOINT_INDICES`): MediaPipe's face contours
  (oval, lips, eyes, brows), nose and a few cheek points.

Model: ``canonical [K, 3] = mean + reshape(W^T (features - feature_mean))`` with features = 51 ARKit weights
(``tongueOut`` dropped) + 3 head-rotation-vector components. Fitted with per-video centring (each video's
mean features and mean shape are removed before the ridge solve), so it predicts expression *deltas* and
identity does not leak into the weights; ``mean`` is the mean of the training videos' mean shapes.

Fit (writes :data:`DEFAULT_ASSET`, prints a held-out table)::

    python -m generator.face_keypoints --fit ../shared/data/videos --holdout WDA_KatieHill_000

Errors: :class:`FaceNotFoundError` (no face in an image), :class:`KeypointModelError` (asset missing/bad).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from motion.conventions import ARKIT_INDEX, ARKIT_NAMES, NUM_ARKIT
from motion.errors import ChatAnyoneError
# the tracker is motion.tracking's (shared with `chatanyone prepare`); these names are re-exported here
from motion.tracking import (VIDEO_EXTS, FaceObservation, Landmarkers, TrackingError,  # noqa: F401
                             create_face_landmarker, face_observation, iter_video_frames, mp_image, track_video,
                             video_files)

DEFAULT_ASSET = Path(__file__).resolve().parent / "assets" / "face_keypoints.npz"
ASSET_VERSION = 1
EYE_CORNER_MM = 90.0  # adult outer eye-corner (exocanthion) distance, approximate; for quoting errors only

#: Landmarks of MediaPipe's canonical face mesh that are (nearly) rigid: forehead, nose bridge, eye corners,
#: temples, cheekbones. Used for the similarity Procrustes fit that removes head pose.
RIGID_POINTS = (33, 133, 362, 263, 168, 6, 197, 195, 5, 4, 1, 10, 151, 9, 8, 234, 454, 127, 356, 21, 251,
                54, 284, 103, 332, 109, 338, 67, 297)
#: Outer eye corners (subject's right, left): the unit of the canonical frame.
EYE_CORNERS = (33, 263)
#: Inner lip contour (MediaPipe face mesh): upper lip left-to-right in the image, lower lip likewise.
INNER_LIP_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
INNER_LIP_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
OUTER_LIP_UPPER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
OUTER_LIP_LOWER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
#: Mouth-centre inner-lip pair (upper, lower): the mouth opening.
MOUTH_CENTRE = (13, 14)
#: Face oval contour in order (MediaPipe FACE_LANDMARKS_FACE_OVAL), starting at the forehead top.
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
             148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
CHIN = 152
#: Extra interior points (cheeks, nasolabial area, jaw) that help a 2D warp follow the jaw.
EXTRA_POINTS = (50, 280, 205, 425, 36, 266, 147, 376, 187, 411, 192, 416, 214, 434, 135, 364, 207, 427,
                216, 436, 57, 287, 202, 422, 210, 430, 169, 394, 32, 262, 200, 199, 175)


def _mediapipe_sets() -> list[int]:
    from mediapipe.tasks.python.vision.face_landmarker import FaceLandmarksConnections as C

    idx: set[int] = set()
    for name in ("FACE_LANDMARKS_CONTOURS", "FACE_LANDMARKS_NOSE"):
        for c in getattr(C, name):
            idx.update((c.start, c.end))
    return sorted(idx)


def keypoint_indices() -> np.ndarray:
    """The modelled landmark subset ``[K]`` int: MediaPipe contours + nose + rigid + extra points (sorted)."""
    idx = set(_mediapipe_sets()) | set(RIGID_POINTS) | set(EXTRA_POINTS) | set(INNER_LIP_UPPER) \
        | set(INNER_LIP_LOWER) | set(OUTER_LIP_UPPER) | set(OUTER_LIP_LOWER) | set(FACE_OVAL)
    return np.array(sorted(idx), np.int64)


class FaceNotFoundError(ChatAnyoneError):
    """No face was detected in an image."""


class KeypointModelError(ChatAnyoneError):
    """The facial keypoint model asset is missing or malformed."""


# --------------------------------------------------------------------------------------------------
# MediaPipe FaceLandmarker (motion.tracking: landmarkers, task files, frames; FaceObservation re-exported)
# --------------------------------------------------------------------------------------------------
def detect_face(image: np.ndarray, landmarker=None) -> FaceObservation | None:
    """Detect one face in ``image [H, W, 3]`` uint8 RGB (MediaPipe IMAGE mode); None when there is none.

    Raises:
        motion.tracking.TrackingError: ``mediapipe`` or the model file is missing (``landmarker`` not given).
    """
    import mediapipe as mp

    own = landmarker is None
    lmk = create_face_landmarker("image") if own else landmarker
    try:
        return face_observation(lmk.detect(mp_image(mp, image)), image.shape[1], image.shape[0])
    finally:
        if own:
            lmk.close()


@dataclass
class FaceTrack:
    """Face landmarker output over a video's frames (``N`` frames; invalid frames are zeros).

    Attributes:
        landmarks ``[N, 478, 3]`` float32 pixel units; blendshapes ``[N, 52]`` float32; head ``[N, 3, 3]``;
        ok ``[N]`` bool; frame_index ``[N]`` int (index in the decoded video); size ``(W, H)``; name;
        frames ``[N, H, W, 3]`` uint8 RGB when kept, else None.
    """

    landmarks: np.ndarray
    blendshapes: np.ndarray
    head: np.ndarray
    ok: np.ndarray
    frame_index: np.ndarray
    size: tuple[int, int]
    name: str
    frames: np.ndarray | None = None


def track_face_video(path: str | os.PathLike, *, stride: int = 1, max_frames: int | None = None,
                     keep_frames: bool = False, landmarker=None) -> FaceTrack:
    """Run the FaceLandmarker (VIDEO mode) on every ``stride``-th frame of a video, at most ``max_frames``
    (:func:`motion.tracking.track_video`, face only, automatic decoder threads).

    Raises:
        ChatAnyoneError: the video cannot be opened, or ``mediapipe`` / the model file is missing.
    """
    own = landmarker is None
    lm = Landmarkers(pose=False, hands=False) if own else Landmarkers.of(landmarker)
    try:
        tr = track_video(path, lm, stride=stride, max_frames=max_frames, face_landmarks=True,
                         keep_frames=keep_frames, threads=None)
    except TrackingError as e:
        raise ChatAnyoneError(f"cannot read video {path}: {e}") from None
    finally:
        if own:
            lm.close()
    return FaceTrack(tr.face_landmarks, tr.face.astype(np.float32), tr.head, tr.face_ok, tr.frame_index,
                     tr.size, Path(path).stem, tr.frames)


# --------------------------------------------------------------------------------------------------
# Canonical frame
# --------------------------------------------------------------------------------------------------
def image_to_ours(p: np.ndarray) -> np.ndarray:
    """Pixel-unit landmarks ``[..., 3]`` (x right, y down, z away) -> ours axes ``(x, -y, -z)``."""
    return np.asarray(p, np.float64) * np.array([1.0, -1.0, -1.0])


@dataclass
class Similarity:
    """``y = scale * R @ x + t`` (``R [3, 3]``, ``t [3]``)."""

    R: np.ndarray
    scale: float
    t: np.ndarray

    def apply(self, x: np.ndarray) -> np.ndarray:
        return self.scale * np.asarray(x) @ self.R.T + self.t

    def inverse_apply(self, y: np.ndarray) -> np.ndarray:
        return (np.asarray(y) - self.t) @ self.R / self.scale


def umeyama(src: np.ndarray, dst: np.ndarray) -> Similarity:
    """Least-squares similarity ``dst ~ s R src + t`` for ``[N, 3]`` point sets (Umeyama 1991, proper R)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    cov = b.T @ a / len(src)
    U, S, Vt = np.linalg.svd(cov)
    D = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[2, 2] = -1
    R = U @ D @ Vt
    var = (a ** 2).sum() / len(src)
    s = float(np.trace(np.diag(S) @ D) / var)
    return Similarity(R, s, mu_d - s * R @ mu_s)


def canonicalize(landmarks_px: np.ndarray, template_rigid: np.ndarray) -> tuple[np.ndarray, Similarity]:
    """Remove head pose: ``[478, 3]`` pixel-unit landmarks -> canonical ``[478, 3]`` (ours axes, template units).

    Returns ``(canonical, pose)`` where ``pose`` maps canonical -> ours-axes pixel units
    (``image_to_ours(landmarks) ~ pose.apply(canonical)``).
    """
    P = image_to_ours(landmarks_px)
    pose = umeyama(template_rigid, P[list(RIGID_POINTS)])
    return pose.inverse_apply(P), pose


def _generalized_procrustes(shapes: list[np.ndarray], iters: int = 4) -> np.ndarray:
    """Template of the rigid points ``[len(RIGID_POINTS), 3]``, ours axes, eye-corner distance 1, centred."""
    rig = list(RIGID_POINTS)
    ec = [rig.index(i) for i in EYE_CORNERS]
    ref = image_to_ours(shapes[0])[rig]
    for _ in range(iters):
        ref = ref - ref.mean(0)
        ref = ref / np.linalg.norm(ref[ec[0]] - ref[ec[1]])
        acc = np.zeros_like(ref)
        for s in shapes:
            P = image_to_ours(s)[rig]
            acc += umeyama(P, ref).apply(P)
        ref = acc / len(shapes)
    ref = ref - ref.mean(0)
    return ref / np.linalg.norm(ref[ec[0]] - ref[ec[1]])


# --------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------
FEATURE_ARKIT = tuple(n for n in ARKIT_NAMES if n != "tongueOut")


def features(face: np.ndarray, head_rotvec: np.ndarray) -> np.ndarray:
    """``face [T, 52]`` ARKit weights + ``head_rotvec [T, 3]`` (radians, ours axes) -> ``[T, 54]`` float64."""
    face = np.atleast_2d(np.asarray(face, np.float64))
    hr = np.atleast_2d(np.asarray(head_rotvec, np.float64))
    cols = [ARKIT_INDEX[n] for n in FEATURE_ARKIT]
    return np.concatenate([face[:, cols], hr], axis=1)


@dataclass
class FaceKeypointModel:
    """Linear map (ARKit weights, head rotation) -> canonical 3D landmarks.

    Attributes:
        indices: ``[K]`` int, MediaPipe landmark ids modelled.
        mean: ``[K, 3]`` float32 canonical mean shape (template units: eye-corner distance 1).
        weights: ``[54, K * 3]`` float32 ridge weights on :func:`features`.
        feature_mean: ``[54]`` float32.
        template_rigid: ``[len(RIGID_POINTS), 3]`` float32, the Procrustes template.
        info: dict: training videos, held-out metrics, ridge alpha.
    """

    indices: np.ndarray
    mean: np.ndarray
    weights: np.ndarray
    feature_mean: np.ndarray
    template_rigid: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_keypoints(self) -> int:
        return len(self.indices)

    def local(self, landmark_ids) -> np.ndarray:
        """Positions in ``indices`` of MediaPipe landmark ids (``[n]`` int)."""
        pos = {int(i): k for k, i in enumerate(self.indices)}
        return np.array([pos[int(i)] for i in landmark_ids], np.int64)

    def predict(self, face: np.ndarray, head_rotvec: np.ndarray) -> np.ndarray:
        """Canonical landmarks ``[T, K, 3]`` float64 for ``face [T, 52]`` and ``head_rotvec [T, 3]``."""
        x = features(face, head_rotvec) - self.feature_mean
        return self.mean[None].astype(np.float64) + (x @ self.weights).reshape(len(x), -1, 3)

    def save(self, path: str | os.PathLike) -> Path:
        from motion.fileio import atomic_output

        path = Path(path)
        with atomic_output(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, version=np.int64(ASSET_VERSION), indices=self.indices,
                                    mean=self.mean.astype(np.float32), weights=self.weights.astype(np.float32),
                                    feature_mean=self.feature_mean.astype(np.float32),
                                    template_rigid=self.template_rigid.astype(np.float32),
                                    feature_names=np.array(list(FEATURE_ARKIT) + ["head_rx", "head_ry", "head_rz"]),
                                    info=np.array(json.dumps(self.info)))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> "FaceKeypointModel":
        """Load the asset (default :data:`DEFAULT_ASSET`).

        Raises:
            KeypointModelError: missing file or wrong keys/shapes.
        """
        p = Path(path or DEFAULT_ASSET)
        if not p.is_file():
            raise KeypointModelError(f"facial keypoint model {p} not found (fit it: python -m generator.face_keypoints --fit VIDEOS)")
        try:
            with np.load(p, allow_pickle=False) as z:
                m = cls(z["indices"].astype(np.int64), z["mean"], z["weights"], z["feature_mean"],
                        z["template_rigid"], json.loads(str(z["info"])))
                version = int(z["version"])
        except (KeyError, ValueError, OSError) as e:
            raise KeypointModelError(f"facial keypoint model {p} is malformed: {e}") from None
        K = len(m.indices)
        if version != ASSET_VERSION or m.mean.shape != (K, 3) or m.weights.shape != (len(FEATURE_ARKIT) + 3, K * 3):
            raise KeypointModelError(f"facial keypoint model {p} has version {version} or shapes that do not match")
        return m


# --------------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------------
def _track_data(track: FaceTrack, template: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Valid frames of a track -> (features [n, 54], canonical keypoints [n, K, 3])."""
    ok = track.ok
    Y = np.stack([canonicalize(track.landmarks[i], template)[0][idx] for i in np.flatnonzero(ok)])
    hr = Rotation.from_matrix(track.head[ok]).as_rotvec()
    return features(track.blendshapes[ok], hr), Y


def fit(tracks: list[FaceTrack], alpha: float = 0.1) -> FaceKeypointModel:
    """Ridge fit with per-video centring (see the module docstring). ``alpha``: ridge strength on the
    per-video-centred normal equations, in units of frames (the penalty is ``alpha * n_frames * I / 100``)."""
    idx = keypoint_indices()
    shapes = [t.landmarks[i] for t in tracks for i in np.flatnonzero(t.ok)[:: max(1, t.ok.sum() // 60)]]
    template = _generalized_procrustes(shapes)
    Xs, Ys, xm, ym = [], [], [], []
    for t in tracks:
        X, Y = _track_data(t, template, idx)
        xm.append(X.mean(0))
        ym.append(Y.mean(0))
        Xs.append(X - X.mean(0))
        Ys.append((Y - Y.mean(0)).reshape(len(Y), -1))
    X = np.concatenate(Xs)
    Y = np.concatenate(Ys)
    A = X.T @ X + alpha * len(X) / 100.0 * np.eye(X.shape[1])
    W = np.linalg.solve(A, X.T @ Y)
    return FaceKeypointModel(idx, np.mean(ym, 0).astype(np.float32), W.astype(np.float32),
                             np.mean(xm, 0).astype(np.float32), template.astype(np.float32),
                             {"train_videos": [t.name for t in tracks], "train_frames": int(len(X)),
                              "ridge_alpha": alpha})


def evaluate(model: FaceKeypointModel, track: FaceTrack) -> dict[str, float]:
    """Held-out landmark errors (mean Euclidean distance per keypoint, template units x 100 = % of the
    outer eye-corner distance) on a track's valid frames:

    * ``mean_shape``: the model's mean shape, every frame; ``model``: the model's prediction;
    * ``first_frame``: the video's first valid frame's canonical shape, every frame (a frozen source);
    * ``first_frame+delta``: first frame + (prediction(frame) - prediction(first frame)), as ``render`` does;
    * ``*_mouth``: the same over the lip points only.
    """
    X, Y = _track_data(track, model.template_rigid.astype(np.float64), model.indices)
    F = len(FEATURE_ARKIT)
    P = model.predict(_face52(X[:, :F]), X[:, F:])
    mouth = model.local(sorted(set(INNER_LIP_UPPER + INNER_LIP_LOWER + OUTER_LIP_UPPER + OUTER_LIP_LOWER)))
    preds = {
        "mean_shape": np.broadcast_to(model.mean, Y.shape),
        "model": P,
        "first_frame": np.broadcast_to(Y[0], Y.shape),
        "first_frame+delta": Y[0] + P - P[0],
    }
    out = {"frames": float(len(Y))}
    for k, v in preds.items():
        d = np.linalg.norm(v - Y, axis=-1)
        out[k] = 100 * float(d.mean())
        out[k + "_mouth"] = 100 * float(d[:, mouth].mean())
    return out


def _face52(f51: np.ndarray) -> np.ndarray:
    out = np.zeros((len(f51), NUM_ARKIT))
    out[:, [ARKIT_INDEX[n] for n in FEATURE_ARKIT]] = f51
    return out


def load_or_track(path: Path, cache: Path | None, max_frames: int, stride: int) -> FaceTrack:
    """Track a video (face only), with an optional ``.npz`` cache per video in ``cache``."""
    key = f"{path.parent.name}__{path.stem}__s{stride}_n{max_frames}.npz"
    if cache is not None and (cache / key).is_file():
        with np.load(cache / key) as z:
            return FaceTrack(z["landmarks"], z["blendshapes"], z["head"], z["ok"], z["frame_index"],
                             tuple(int(v) for v in z["size"]), path.stem)
    tr = track_face_video(path, stride=stride, max_frames=max_frames)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache / key, landmarks=tr.landmarks, blendshapes=tr.blendshapes, head=tr.head,
                            ok=tr.ok, frame_index=tr.frame_index, size=np.array(tr.size))
    return tr


def format_table(rows: list[tuple[str, dict[str, float]]]) -> str:
    """Markdown table of :func:`evaluate` results (errors in % of the eye-corner distance and ~mm)."""
    keys = ["mean_shape", "model", "first_frame", "first_frame+delta"]
    lines = ["| video | frames | " + " | ".join(f"{k} all / mouth" for k in keys) + " |",
             "|---|---|" + "---|" * len(keys)]
    for name, r in rows:
        cells = [f"{r[k]:.2f} / {r[k + '_mouth']:.2f} ({r[k] * EYE_CORNER_MM / 100:.1f} / "
                 f"{r[k + '_mouth'] * EYE_CORNER_MM / 100:.1f} mm)" for k in keys]
        lines.append(f"| {name} | {int(r['frames'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m generator.face_keypoints",
                                 description="Fit the (ARKit, head rotation) -> canonical face landmark model.")
    ap.add_argument("--fit", nargs="+", required=True, metavar="VIDEO_OR_FOLDER", help="talking videos")
    ap.add_argument("--holdout", action="append", default=[], help="video stem(s) held out for evaluation")
    ap.add_argument("--exclude", action="append", default=[], help="video stem(s) not used at all")
    ap.add_argument("--out", default=str(DEFAULT_ASSET), help=f"asset path (default {DEFAULT_ASSET})")
    ap.add_argument("--cache", default="runs/face_keypoints_cache", help="tracking cache folder ('' = none)")
    ap.add_argument("--max-frames", type=int, default=400, help="frames tracked per video (default 400)")
    ap.add_argument("--stride", type=int, default=1, help="track every n-th frame (default 1)")
    ap.add_argument("--alpha", type=float, default=0.1, help="ridge strength (default 0.1)")
    a = ap.parse_args(argv)
    try:
        vids = video_files(a.fit, a.exclude)
        if not vids:
            raise ChatAnyoneError("no videos found")
        cache = Path(a.cache) if a.cache else None
        tracks = []
        t0 = time.perf_counter()
        for v in vids:
            tr = load_or_track(v, cache, a.max_frames, a.stride)
            print(f"{v.name}: {int(tr.ok.sum())}/{len(tr.ok)} frames with a face ({time.perf_counter() - t0:.0f} s)",
                  file=sys.stderr)
            if tr.ok.sum() >= 10:
                tracks.append(tr)
        held = [t for t in tracks if t.name in a.holdout]
        train = [t for t in tracks if t.name not in a.holdout]
        if not train:
            raise ChatAnyoneError("every video is held out")
        model = fit(train, a.alpha)
        rows = [(t.name, evaluate(model, t)) for t in held]
        model.info["holdout"] = {n: {k: round(v, 3) for k, v in r.items()} for n, r in rows}
        model.info["units"] = "errors: % of the template's outer eye-corner distance (landmarks 33-263)"
        model.save(a.out)
        print(f"fitted on {len(train)} videos, {model.info['train_frames']} frames; "
              f"{model.num_keypoints} keypoints; wrote {a.out} ({Path(a.out).stat().st_size / 1024:.0f} KiB)")
        if rows:
            print("held-out landmark error, mean per keypoint, % of the eye-corner distance (~mm at "
                  f"{EYE_CORNER_MM:g} mm):")
            print(format_table(rows))
    except ChatAnyoneError as e:
        print(f"face_keypoints: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
