"""Unit tests of the warp engine's pieces (no portrait data needed): the piecewise-affine warp, the crop box,
and the shipped facial keypoint model asset."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from scipy.spatial import Delaunay

from generator.driving import crop_box
from generator.face_keypoints import (DEFAULT_ASSET, INNER_LIP_LOWER, INNER_LIP_UPPER, MOUTH_CENTRE,
                                      FaceKeypointModel, KeypointModelError, umeyama)
from generator.warp import PiecewiseAffineWarp
from motion.conventions import ARKIT_INDEX, NUM_ARKIT

needs_cv2 = pytest.mark.skipif(importlib.util.find_spec("cv2") is None, reason="OpenCV (cv2, a mediapipe dependency) is not installed")


def _image(W=160, H=120, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    img = np.stack([(xx * 255 // W), (yy * 255 // H), ((xx + yy) * 3) % 256], -1).astype(np.uint8)
    img[::8] = rng.integers(0, 255, (img[::8].shape), dtype=np.uint8)  # texture so that a shift is visible
    return img


def _grid_points(W, H):
    pts = [(x, y) for x in np.linspace(0, W - 1, 5) for y in np.linspace(0, H - 1, 4)]
    return np.array(pts, np.float64)


@needs_cv2
def test_identity_warp_returns_the_image():
    img = _image()
    pts = _grid_points(160, 120)
    w = PiecewiseAffineWarp(pts, Delaunay(pts).simplices, (160, 120))
    assert np.array_equal(w(img, pts), img)


@needs_cv2
def test_inner_points_translation_moves_content_and_keeps_border():
    W, H = 160, 120
    img = _image(W, H)
    pts = _grid_points(W, H)
    inner = (pts[:, 0] > 0) & (pts[:, 0] < W - 1) & (pts[:, 1] > 0) & (pts[:, 1] < H - 1)
    dst = pts.copy()
    dst[inner] += [3.0, 2.0]
    w = PiecewiseAffineWarp(pts, Delaunay(pts).simplices, (W, H))
    out = w(img, dst)
    # inside the moved cell (between the inner points) the content is shifted by (3, 2)
    xs = np.sort(np.unique(pts[inner, 0]))
    ys = np.sort(np.unique(pts[inner, 1]))
    y0, y1, x0, x1 = int(ys[0]) + 4, int(ys[-1]) - 2, int(xs[0]) + 5, int(xs[-1]) - 2
    diff = np.abs(out[y0:y1, x0:x1].astype(int) - img[y0 - 2:y1 - 2, x0 - 3:x1 - 3].astype(int))
    assert diff.mean() < 1.0
    # the image border (fixed anchors) does not move
    (x0, y0, x1, y1), mx, my = w.maps(dst)
    assert (x0, y0, x1, y1) == (0, 0, W, H)
    yy, xx = np.mgrid[0:H, 0:W]
    ex, ey = np.abs(mx - xx), np.abs(my - yy)
    for e in (ex, ey):  # within 1/4 px (the maps are computed every 2nd pixel and upsampled)
        assert max(e[0].max(), e[-1].max(), e[:, 0].max(), e[:, -1].max()) < 0.25
    # and the warp is not the identity
    assert np.abs(out.astype(int) - img.astype(int)).mean() > 1.0


def test_crop_box_is_2_by_3_inside_the_image_around_the_face():
    x0, y0, w, h = crop_box(1024, 1024, (700.0, 300.0))
    assert (w, h) == (683, 1024) and y0 == 0 and 0 <= x0 <= 1024 - w and x0 < 700 < x0 + w
    x0, y0, w, h = crop_box(1024, 1024, (1000.0, 300.0))  # clamped at the right edge
    assert x0 + w == 1024
    x0, y0, w, h = crop_box(400, 1200, (200.0, 500.0))  # tall image: full width
    assert (x0, w, h) == (0, 400, 600) and y0 < 500 < y0 + h


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 3))
    from scipy.spatial.transform import Rotation
    R = Rotation.from_rotvec([0.2, -0.4, 0.1]).as_matrix()
    y = 2.5 * x @ R.T + [1.0, -2.0, 0.5]
    s = umeyama(x, y)
    assert np.allclose(s.R, R, atol=1e-9) and abs(s.scale - 2.5) < 1e-9
    assert np.allclose(s.inverse_apply(y), x, atol=1e-9)


def test_keypoint_asset_is_small_and_opens_the_mouth_with_jaw_open():
    assert DEFAULT_ASSET.stat().st_size < 1_000_000
    m = FaceKeypointModel.load()
    assert m.mean.shape == (m.num_keypoints, 3) and m.num_keypoints >= 100
    assert "holdout" in m.info and m.info["holdout"], "the asset records its held-out evaluation"
    face = np.zeros((2, NUM_ARKIT))
    face[1, ARKIT_INDEX["jawOpen"]] = 0.6
    P = m.predict(face, np.zeros((2, 3)))
    up, lo = m.local(MOUTH_CENTRE)
    gap = P[:, up, 1] - P[:, lo, 1]  # canonical +Y up: upper lip above lower lip
    assert gap[1] - gap[0] > 0.05, gap  # > 5 % of the eye-corner distance more opening
    # the lower inner lip moves down more than the upper one
    d = P[1] - P[0]
    assert d[m.local(INNER_LIP_LOWER[1:-1]), 1].mean() < d[m.local(INNER_LIP_UPPER[1:-1]), 1].mean()


def test_missing_or_bad_asset_is_a_clear_error(tmp_path):
    with pytest.raises(KeypointModelError, match="not found"):
        FaceKeypointModel.load(tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, indices=np.arange(3))
    with pytest.raises(KeypointModelError, match="malformed"):
        FaceKeypointModel.load(bad)
