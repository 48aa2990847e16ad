"""The warp engine: a 2D piecewise-affine warp of the portrait from source to driving keypoints.

The fallback of ChatAnyone's renderer (issue 7, item 3): it needs no trained network, so ``render`` yields a
moving, lip-synced portrait on a fresh machine.

* **Control points**: the facial keypoints (:class:`generator.driving.KeypointDriver`), a *head ring*
  (the face oval scaled by :attr:`WarpConfig.head_ring_scale` about the face centre: hair, ears, neck) that
  follows the head's rigid 2D motion (weight 1 above the chin, :attr:`WarpConfig.neck_weight` below it), a
  fixed *anchor ring* (scale :attr:`WarpConfig.anchor_ring_scale`) and fixed image-border points, so the
  background and body stay put.
* **Triangulation**: Delaunay (``scipy.spatial.Delaunay``) of the control points with the mouth opened
  (:meth:`~generator.driving.KeypointDriver.open_mouth_reference`), so the inner lips never share a
  triangle edge across the mouth; the same topology serves every frame.
* **Warp**: backward mapping. Each driving triangle's pixels (rasterised with ``cv2.fillConvexPoly`` into a
  triangle-id map, only inside the bounding box of the triangles that move) take the source position given
  by that triangle's affine map, then ``cv2.remap`` (bilinear) samples the source.
* **Mouth interior**: where the driving mouth opens wider than the source's, the inner-lip polygon is
  painted with a dark cavity and an upper (and a thinner lower) teeth band, blended by the fraction of the
  opening that is new (the source's own mouth interior is kept when it was already that open).

Output size = the portrait's (512 x 768 by default, :data:`generator.driving.OUTPUT_SIZE`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .driving import DrivingFrames, KeypointDriver, Portrait
from .face_keypoints import (CHIN, FACE_OVAL, INNER_LIP_LOWER, INNER_LIP_UPPER, MOUTH_CENTRE, OUTER_LIP_LOWER,
                             OUTER_LIP_UPPER, FaceKeypointModel)

SUBPIXEL_SHIFT = 4  # cv2 drawing: fractional bits of the vertex coordinates
MAP_STEP = 2  # backward maps are computed every MAP_STEP pixels and upsampled bilinearly


@dataclass
class WarpConfig:
    """Options of the warp engine.

    Attributes:
        head_ring_scale: head ring radius / face-oval radius (about the face centre).
        anchor_ring_scale: fixed ring radius / face-oval radius.
        neck_weight: share of the head motion given to head-ring points below the chin.
        border_points: fixed points per image side (corners included).
        cavity_rgb: mouth cavity colour (before the portrait's brightness factor).
        teeth_rgb: teeth colour (before the brightness factor).
        upper_teeth: upper teeth band height / mouth opening; capped at ``teeth_cap`` x mouth width.
        lower_teeth: lower teeth band height / mouth opening.
        teeth_cap: cap of the band heights as a fraction of the mouth width.
    """

    head_ring_scale: float = 1.45
    anchor_ring_scale: float = 2.4
    neck_weight: float = 0.35
    border_points: int = 5
    cavity_rgb: tuple[int, int, int] = (58, 22, 24)
    teeth_rgb: tuple[int, int, int] = (205, 198, 186)
    upper_teeth: float = 0.32
    lower_teeth: float = 0.08
    teeth_cap: float = 0.16


class PiecewiseAffineWarp:
    """Backward piecewise-affine warp over a fixed triangulation.

    Args:
        src_points: ``[N, 2]`` float source control points (pixels, x right, y down).
        triangles: ``[M, 3]`` int vertex indices.
        size: ``(width, height)`` of the output (and source) image.
    """

    def __init__(self, src_points: np.ndarray, triangles: np.ndarray, size: tuple[int, int]) -> None:
        self.src = np.asarray(src_points, np.float64)
        self.tri = np.asarray(triangles, np.int64)
        self.size = size
        self._src_tri = self.src[self.tri]  # [M, 3, 2]

    def maps(self, dst_points: np.ndarray, moving_tol: float = 0.05
             ) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray] | None:
        """Backward maps on the region that moves: ``((x0, y0, x1, y1), map_x, map_y)`` (float32, ROI
        shape) or None when nothing moves."""
        import cv2

        W, H = self.size
        dst = np.asarray(dst_points, np.float64)
        moved = np.linalg.norm(dst - self.src, axis=1) > moving_tol
        act = np.flatnonzero(moved[self.tri].any(1))
        if len(act) == 0:
            return None
        dtri = dst[self.tri[act]]  # [m, 3, 2]
        lo = np.floor(np.minimum(dtri.reshape(-1, 2).min(0), self._src_tri[act].reshape(-1, 2).min(0)))
        hi = np.ceil(np.maximum(dtri.reshape(-1, 2).max(0), self._src_tri[act].reshape(-1, 2).max(0))) + 1
        x0, y0 = int(np.clip(lo[0], 0, W)), int(np.clip(lo[1], 0, H))
        x1, y1 = int(np.clip(hi[0], 0, W)), int(np.clip(hi[1], 0, H))
        if x1 <= x0 or y1 <= y0:
            return None
        # affine dst -> src per triangle: A = S @ inv(D), D = [[x], [y], [1]] columns per vertex
        D = np.concatenate([dtri.transpose(0, 2, 1), np.ones((len(act), 1, 3))], 1)  # [m, 3, 3]
        det = np.linalg.det(D)
        good = np.abs(det) > 1e-6
        A = np.zeros((len(act), 2, 3))
        A[good] = self._src_tri[act][good].transpose(0, 2, 1) @ np.linalg.inv(D[good])
        # maps on every MAP_STEP-th pixel (coarse (i, j) = fine (x0 + s*i, y0 + s*j), covering the ROI),
        # then bilinear upsampling: a piecewise-affine map is continuous, so this only rounds its kinks off
        st = MAP_STEP
        h, w = y1 - y0, x1 - x0
        hc, wc = (h - 1) // st + 2, (w - 1) // st + 2
        ids = np.zeros((hc, wc), np.int32)
        scale = 1 << SUBPIXEL_SHIFT
        pix = np.round((dtri - [x0, y0]) / st * scale).astype(np.int32)
        for k in np.flatnonzero(good):
            cv2.fillConvexPoly(ids, pix[k], int(k) + 1, lineType=cv2.LINE_8, shift=SUBPIXEL_SHIFT)
        # a last coarse row/column past the image edge continues the triangles inside (linear extrapolation)
        if y0 + st * (hc - 1) > H - 1:
            ids[-1] = ids[-2]
        if x0 + st * (wc - 1) > W - 1:
            ids[:, -1] = ids[:, -2]
        yy, xx = np.mgrid[0:hc, 0:wc].astype(np.float32)
        xx = xx * st + x0
        yy = yy * st + y0
        Aext = np.concatenate([np.array([[[1, 0, 0], [0, 1, 0]]], np.float64), A], 0).astype(np.float32)
        M = Aext[ids]  # [hc, wc, 2, 3]; id 0 -> identity
        mx = M[..., 0, 0] * xx + M[..., 0, 1] * yy + M[..., 0, 2]
        my = M[..., 1, 0] * xx + M[..., 1, 1] * yy + M[..., 1, 2]
        mx, my = _upsample(mx, st)[:h, :w], _upsample(my, st)[:h, :w]
        return (x0, y0, x1, y1), mx, my

    def __call__(self, image: np.ndarray, dst_points: np.ndarray) -> np.ndarray:
        """Warp ``image [H, W, 3]`` uint8 so that the source points land on ``dst_points [N, 2]``."""
        import cv2

        out = image.copy()
        m = self.maps(dst_points)
        if m is None:
            return out
        (x0, y0, x1, y1), mx, my = m
        out[y0:y1, x0:x1] = cv2.remap(image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        return out


def _upsample(c: np.ndarray, st: int) -> np.ndarray:
    """Bilinear upsampling of samples at every ``st``-th pixel (corners aligned): ``[h, w]`` ->
    ``[st*(h-1)+1, st*(w-1)+1]`` float32 (``st`` in 1, 2)."""
    if st == 1:
        return np.ascontiguousarray(c)
    if st != 2:
        raise ValueError("MAP_STEP must be 1 or 2")
    h, w = c.shape
    f = np.empty((2 * h - 1, 2 * w - 1), np.float32)
    f[::2, ::2] = c
    f[1::2, ::2] = (c[:-1] + c[1:]) / 2
    f[:, 1::2] = (f[:, :-1:2] + f[:, 2::2]) / 2
    return f


def _ring(points: np.ndarray, centre: np.ndarray, scale: float) -> np.ndarray:
    return centre + scale * (points - centre)


class WarpEngine:
    """Portrait + face motion -> frames by piecewise-affine warping (module docstring).

    Args:
        portrait: the cropped portrait (:func:`generator.driving.load_portrait`).
        model: the facial keypoint model.
        config: :class:`WarpConfig`.
    """

    def __init__(self, portrait: Portrait, model: FaceKeypointModel, config: WarpConfig | None = None) -> None:
        from scipy.spatial import Delaunay

        self.cfg = config or WarpConfig()
        self.portrait = portrait
        self.driver = KeypointDriver(model, portrait.face)
        H, W = portrait.image.shape[:2]
        self.size = (W, H)
        lm = portrait.face.landmarks[:, :2].astype(np.float64)
        oval = lm[list(FACE_OVAL)]
        self.centre = oval.mean(0)
        self.head_ring = _ring(oval, self.centre, self.cfg.head_ring_scale)
        anchor = _ring(oval[::2], self.centre, self.cfg.anchor_ring_scale)
        n = self.cfg.border_points
        t = np.linspace(0, 1, n)
        border = np.concatenate([np.stack([t * (W - 1), np.zeros(n)], 1), np.stack([t * (W - 1), np.full(n, H - 1.0)], 1),
                                 np.stack([np.zeros(n - 2), t[1:-1] * (H - 1)], 1),
                                 np.stack([np.full(n - 2, W - 1.0), t[1:-1] * (H - 1)], 1)])
        # keep only anchors inside the image and away from the border points
        inside = (anchor[:, 0] > 2) & (anchor[:, 0] < W - 3) & (anchor[:, 1] > 2) & (anchor[:, 1] < H - 3)
        self.fixed = np.concatenate([anchor[inside], border])
        chin_y = lm[CHIN, 1]
        self.ring_weight = np.where(self.head_ring[:, 1] > chin_y, self.cfg.neck_weight, 1.0)
        self.K = self.driver.model.num_keypoints
        src = np.concatenate([self.driver.src2, self.head_ring, self.fixed])
        ref = np.concatenate([self.driver.open_mouth_reference(), self.head_ring, self.fixed])
        self.triangles = Delaunay(ref).simplices
        self.warp = PiecewiseAffineWarp(src, self.triangles, self.size)
        m = self.driver.model
        self._inner = m.local(list(INNER_LIP_UPPER) + list(INNER_LIP_LOWER[::-1][1:-1]))
        self._upper = m.local(INNER_LIP_UPPER)
        self._lower = m.local(INNER_LIP_LOWER)
        self._centre = m.local(MOUTH_CENTRE)
        self._corners = m.local((INNER_LIP_UPPER[0], INNER_LIP_UPPER[-1]))
        self.src_opening = self._opening(self.driver.src2)
        outer = lm[list(OUTER_LIP_UPPER) + list(OUTER_LIP_LOWER)]
        skin = self._region_mean(portrait.image, outer.mean(0), np.ptp(outer[:, 0]))
        self.brightness = float(np.clip(skin.mean() / 170.0, 0.45, 1.15))

    @staticmethod
    def _region_mean(img: np.ndarray, c: np.ndarray, w: float) -> np.ndarray:
        x0, x1 = int(max(0, c[0] - w)), int(min(img.shape[1], c[0] + w))
        y0, y1 = int(max(0, c[1] - w)), int(min(img.shape[0], c[1] + w))
        return img[y0:y1, x0:x1].reshape(-1, 3).mean(0) if x1 > x0 and y1 > y0 else np.full(3, 170.0)

    def _opening(self, pts: np.ndarray) -> float:
        return float(pts[self._centre[1], 1] - pts[self._centre[0], 1])

    def control_points(self, drive: DrivingFrames, t: int) -> np.ndarray:
        """All control points ``[N, 2]`` for frame ``t`` (keypoints, head ring, fixed)."""
        A = drive.head_affine[t].astype(np.float64)
        moved = self.head_ring @ A[:, :2].T + A[:, 2]
        ring = self.head_ring + self.ring_weight[:, None] * (moved - self.head_ring)
        return np.concatenate([drive.points[t].astype(np.float64), ring, self.fixed])

    def fill_mouth(self, img: np.ndarray, kp: np.ndarray) -> np.ndarray:
        """Paint the mouth cavity and teeth inside the driving inner-lip polygon (in place; returns img)."""
        import cv2

        opening = self._opening(kp)
        if opening < 1.0:
            return img
        # share of the opening that the source does not show (its own interior is kept up to its opening)
        new = float(np.clip(2.0 * (opening - max(self.src_opening, 0.0)) / opening, 0.0, 1.0))
        if new <= 0.02:
            return img
        poly = kp[self._inner]
        x0, y0 = np.floor(poly.min(0)).astype(int) - 3
        x1, y1 = np.ceil(poly.max(0)).astype(int) + 4
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, img.shape[1]), min(y1, img.shape[0])
        if x1 - x0 < 2 or y1 - y0 < 2:
            return img
        h, w = y1 - y0, x1 - x0
        s = 1 << SUBPIXEL_SHIFT
        P = lambda q: np.round((q - [x0, y0]) * s).astype(np.int32)  # noqa: E731
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask, [P(poly)], 255, lineType=cv2.LINE_AA, shift=SUBPIXEL_SHIFT)
        mask = cv2.dilate(mask, np.ones((2, 2), np.uint8))  # cover the stretched lip crease at the edge
        width = float(np.linalg.norm(kp[self._corners[1]] - kp[self._corners[0]]))
        up_h = min(self.cfg.upper_teeth * opening, self.cfg.teeth_cap * width)
        lo_h = min(self.cfg.lower_teeth * opening, 0.6 * self.cfg.teeth_cap * width)
        upper, lower = kp[self._upper], kp[self._lower]
        # teeth bands hang from the inner lips, tapering to nothing at the mouth corners
        sn = np.sin(np.pi * np.linspace(0, 1, len(upper)))[:, None]
        prof_up = np.clip(1.6 * sn - 0.3, 0, 1) * [0.0, 1.0]
        prof_lo = np.clip(2.0 * sn - 1.2, 0, 1) * [0.0, 1.0]
        teeth = np.zeros((h, w), np.uint8)
        for lip, prof, hgt in ((upper, prof_up, up_h), (lower, prof_lo, -lo_h)):
            on = np.flatnonzero(prof[:, 1] > 0)
            if len(on) == 0 or abs(hgt) < 0.5:
                continue
            seg = slice(max(on[0] - 1, 0), on[-1] + 2)  # only where the band has height (no rim elsewhere)
            band = np.concatenate([lip[seg], (lip + hgt * prof)[seg][::-1]])
            cv2.fillPoly(teeth, [P(band)], 255, cv2.LINE_AA, shift=SUBPIXEL_SHIFT)
        teeth = np.minimum(cv2.GaussianBlur(teeth, (3, 3), 0.8), mask)
        cav = np.array(self.cfg.cavity_rgb, np.float32) * self.brightness
        tee = np.array(self.cfg.teeth_rgb, np.float32) * min(1.0, self.brightness * 1.05)
        ta = (teeth.astype(np.float32) / 255.0)[..., None]
        interior = cav * (1 - ta) + tee * ta
        # darker towards the back of the mouth: shade by distance from the polygon's edge
        dist = cv2.distanceTransform((mask > 127).astype(np.uint8), cv2.DIST_L2, 3)
        shade = 1.0 - 0.35 * np.clip(dist / max(opening * 0.5, 1.0), 0, 1)
        interior = interior * shade[..., None]
        interior = cv2.GaussianBlur(interior, (3, 3), 0.7)
        a = (cv2.GaussianBlur(mask, (3, 3), 0.8).astype(np.float32) / 255.0 * new)[..., None]
        roi = img[y0:y1, x0:x1].astype(np.float32)
        img[y0:y1, x0:x1] = np.clip(roi * (1 - a) + interior * a, 0, 255).astype(np.uint8)
        return img

    def drive(self, face: np.ndarray, head: np.ndarray) -> DrivingFrames:
        """Driving keypoints for ``face [T, 52]`` and head rotation deltas ``head [T, 3, 3]``."""
        return self.driver(face, head)

    def render(self, drive: DrivingFrames, t: int) -> np.ndarray:
        """Frame ``t`` as ``[H, W, 3]`` uint8 RGB."""
        pts = self.control_points(drive, t)
        out = self.warp(self.portrait.image, pts)
        return self.fill_mouth(out, pts[: self.K])


__all__ = ["WarpConfig", "PiecewiseAffineWarp", "WarpEngine"]
